// StakeRegistry: every external function's success and every revert.
import { expect } from "chai";
import { network } from "hardhat";
import { PROTOCOL, TOKEN, BPS, deployFixture, jobFixture, expectConservation, drawMany } from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

const MAX_AMOUNT = 2n ** 96n - 1n;

/** deployFixture plus every registry role granted to the admin (an EOA), to reach internal checks. */
async function rolesToAdmin(conn) {
  const f = await deployFixture(conn);
  for (const role of [f.LOCKER_ROLE, f.SLASHER_ROLE, f.TREASURER_ROLE]) {
    await (await f.stakes.grantRole(role, f.admin.address)).wait();
  }
  return f;
}

describe("StakeRegistry: constructor", function () {
  const args = (o = {}) => {
    const p = { ...PROTOCOL, ...o };
    return [
      o.token ?? "0x000000000000000000000000000000000000dEaD",
      o.admin ?? "0x000000000000000000000000000000000000bEEF",
      p.minNodeStake,
      p.minVerifierStake,
      p.verifierLock,
      p.disputeBond,
      p.unbondingDelay,
      p.drawLag,
      p.slashRewardBps,
      p.committeeRewardBps,
    ];
  };
  const cases = [
    [{ token: ethers.ZeroAddress }, "address"],
    [{ admin: ethers.ZeroAddress }, "address"],
    [{ minNodeStake: 0n }, "minNodeStake"],
    [{ minNodeStake: MAX_AMOUNT + 1n }, "minNodeStake"],
    [{ minVerifierStake: 0n }, "minVerifierStake"],
    [{ minVerifierStake: MAX_AMOUNT + 1n }, "minVerifierStake"],
    [{ verifierLock: 0n }, "verifierLock"],
    [{ verifierLock: PROTOCOL.minVerifierStake + 1n }, "verifierLock"],
    [{ disputeBond: 0n }, "disputeBond"],
    [{ disputeBond: MAX_AMOUNT + 1n }, "disputeBond"],
    [{ unbondingDelay: 0n }, "unbondingDelay"],
    [{ unbondingDelay: 2n ** 32n }, "unbondingDelay"],
    [{ drawLag: 0n }, "drawLag"],
    [{ drawLag: 2n ** 32n }, "drawLag"],
    [{ slashRewardBps: 9_000n, committeeRewardBps: 1_001n }, "rewardBps"],
  ];
  for (const [o, reason] of cases) {
    it(`refuses ${JSON.stringify(o, (_, v) => (typeof v === "bigint" ? String(v) : v))}: "${reason}"`, async function () {
      const factory = await ethers.getContractFactory("StakeRegistry");
      await expect(factory.deploy(...args(o)))
        .to.be.revertedWithCustomError(factory, "StakeRegistryInvalidParams")
        .withArgs(reason);
    });
  }
  it("accepts the bounds: verifierLock == minVerifierStake, shares summing to 10000", async function () {
    const factory = await ethers.getContractFactory("StakeRegistry");
    const c = await factory.deploy(
      ...args({ verifierLock: PROTOCOL.minVerifierStake, slashRewardBps: 9_000n, committeeRewardBps: 1_000n }),
    );
    expect(await c.verifierLock()).to.equal(PROTOCOL.minVerifierStake);
    expect(await c.slashRewardBps()).to.equal(9_000n);
  });
});

describe("StakeRegistry: staking", function () {
  it("stake: zero, too large, without allowance", async function () {
    const { stakes, token, node1, outsider } = await loadFixture(deployFixture);
    await expect(stakes.connect(node1).stake(0n)).to.be.revertedWithCustomError(stakes, "StakeRegistryZeroAmount");
    await expect(stakes.connect(node1).stake(MAX_AMOUNT + 1n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryAmountTooLarge")
      .withArgs(MAX_AMOUNT + 1n);
    await (await token.connect(outsider).approve(await stakes.getAddress(), 0n)).wait();
    await expect(stakes.connect(outsider).stake(1n)).to.be.revertedWithCustomError(token, "ERC20InsufficientAllowance");
    await expect(stakes.connect(node1).stake(5n)).to.emit(stakes, "Staked").withArgs(node1.address, 5n, 5n);
    await expect(stakes.connect(node1).stake(7n)).to.emit(stakes, "Staked").withArgs(node1.address, 7n, 12n);
  });

  it("requestUnbond: zero, beyond the free stake (locked stake cannot leave)", async function () {
    const { stakes, market, node1 } = await loadFixture(jobFixture);
    await expect(stakes.connect(node1).requestUnbond(0n)).to.be.revertedWithCustomError(stakes, "StakeRegistryZeroAmount");
    await (await stakes.connect(node1).stake(PROTOCOL.minNodeStake)).wait(); // 200 staked
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait(); // 100 locked
    await expect(stakes.connect(node1).requestUnbond(PROTOCOL.minNodeStake + 1n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(node1.address, PROTOCOL.minNodeStake, PROTOCOL.minNodeStake + 1n);
    await expect(stakes.connect(node1).requestUnbond(PROTOCOL.minNodeStake)).to.emit(stakes, "UnbondRequested");
    expect(await stakes.stakeOf(node1.address)).to.equal(PROTOCOL.minNodeStake);
    expect(await stakes.freeStakeOf(node1.address)).to.equal(0n);
  });

  it("withdrawUnbonded: nothing unbonding; a second request moves the ready time", async function () {
    const { stakes, node1 } = await loadFixture(deployFixture);
    await expect(stakes.connect(node1).withdrawUnbonded()).to.be.revertedWithCustomError(stakes, "StakeRegistryNothingUnbonding");
    await (await stakes.connect(node1).stake(10n)).wait();
    await (await stakes.connect(node1).requestUnbond(4n)).wait();
    await networkHelpers.mine(10);
    const rx = await (await stakes.connect(node1).requestUnbond(6n)).wait();
    const ready = BigInt((await rx.getBlock()).timestamp) + PROTOCOL.unbondingDelay;
    expect(await stakes.unbondingOf(node1.address)).to.deep.equal([10n, ready]);
    await expect(stakes.connect(node1).withdrawUnbonded())
      .to.be.revertedWithCustomError(stakes, "StakeRegistryUnbondingNotReady")
      .withArgs(ready);
  });

  it("withdraw: nothing credited (twice: see the payout test)", async function () {
    const { stakes, node1 } = await loadFixture(deployFixture);
    await expect(stakes.connect(node1).withdraw())
      .to.be.revertedWithCustomError(stakes, "StakeRegistryNothingToWithdraw")
      .withArgs(node1.address);
  });

  it("verifier registration: below the minimum, twice, deregister when not one; unbonding or a slash below the minimum leaves", async function () {
    const f = await loadFixture(rolesToAdmin);
    const { stakes, verifier1, verifier2, admin } = f;
    const short = PROTOCOL.minVerifierStake - 1n;
    await (await stakes.connect(verifier1).stake(short)).wait();
    await expect(stakes.connect(verifier1).registerVerifier())
      .to.be.revertedWithCustomError(stakes, "StakeRegistryBelowVerifierMinimum")
      .withArgs(short, PROTOCOL.minVerifierStake);
    await (await stakes.connect(verifier1).stake(1n)).wait();
    await (await stakes.connect(verifier1).registerVerifier()).wait();
    await expect(stakes.connect(verifier1).registerVerifier()).to.be.revertedWithCustomError(stakes, "StakeRegistryAlreadyVerifier");
    await expect(stakes.connect(verifier2).deregisterVerifier()).to.be.revertedWithCustomError(stakes, "StakeRegistryNotVerifier");
    await expect(stakes.connect(verifier1).requestUnbond(1n)).to.emit(stakes, "VerifierDeregistered").withArgs(verifier1.address);
    expect(await stakes.verifierCount()).to.equal(0n);
    expect(await stakes.verifierListLength()).to.equal(1n); // the list is append-only
    expect(await stakes.isVerifier(verifier1.address)).to.equal(false);
    // a slash that takes the stake below the minimum also removes the verifier
    await (await stakes.connect(verifier2).stake(PROTOCOL.minVerifierStake)).wait();
    await (await stakes.connect(verifier2).registerVerifier()).wait();
    await (await stakes.connect(admin).lock(verifier2.address, 1n)).wait();
    await expect(stakes.connect(admin).slash(verifier2.address, 1n, ethers.ZeroAddress, []))
      .to.emit(stakes, "VerifierDeregistered")
      .withArgs(verifier2.address);
    await expect(stakes.connect(verifier2).deregisterVerifier()).to.be.revertedWithCustomError(stakes, "StakeRegistryNotVerifier");
    await expectConservation(f);
  });
});

describe("StakeRegistry: protocol-only functions", function () {
  it("lock, unlock, slash, drawAndLock, depositEscrow, releaseEscrow, payout without the role", async function () {
    const { stakes, outsider, node1, LOCKER_ROLE, SLASHER_ROLE, TREASURER_ROLE } = await loadFixture(deployFixture);
    const calls = [
      [() => stakes.connect(outsider).lock(node1.address, 1n), LOCKER_ROLE],
      [() => stakes.connect(outsider).unlock(node1.address, 1n), LOCKER_ROLE],
      [() => stakes.connect(outsider).slash(node1.address, 1n, outsider.address, []), SLASHER_ROLE],
      [() => stakes.connect(outsider).drawAndLock(ethers.ZeroHash, ethers.ZeroHash, 1n, 1n, 0n, [node1.address, node1.address, node1.address], false), LOCKER_ROLE],
      [() => stakes.connect(outsider).slashWithPayment(node1.address, 1n, outsider.address, 0n), SLASHER_ROLE],
      [() => stakes.connect(outsider).depositEscrow(outsider.address, 1n), TREASURER_ROLE],
      [() => stakes.connect(outsider).releaseEscrow(outsider.address, 1n), TREASURER_ROLE],
      [() => stakes.connect(outsider).payout(node1.address, 0n, 1n, node1.address, 0n, 0n), TREASURER_ROLE],
    ];
    for (const [call, role] of calls) {
      await expect(call()).to.be.revertedWithCustomError(stakes, "AccessControlUnauthorizedAccount").withArgs(outsider.address, role);
    }
  });

  it("with the role: beyond the free or locked stake, too many voters or draws, beyond the escrow", async function () {
    const f = await loadFixture(rolesToAdmin);
    const { stakes, admin, node1, outsider } = f;
    await (await stakes.connect(node1).stake(10n)).wait();
    await expect(stakes.lock(node1.address, 11n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(node1.address, 10n, 11n);
    await expect(stakes.lock(node1.address, 4n)).to.emit(stakes, "StakeLocked").withArgs(node1.address, 4n, 4n);
    await expect(stakes.unlock(node1.address, 5n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientLockedStake")
      .withArgs(node1.address, 4n, 5n);
    await expect(stakes.slash(node1.address, 5n, admin.address, []))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientLockedStake")
      .withArgs(node1.address, 4n, 5n);
    const ten = Array(10).fill(outsider.address);
    await expect(stakes.slash(node1.address, 1n, admin.address, ten))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryTooManyBeneficiaries")
      .withArgs(10n, 9n);
    await expect(stakes.drawAndLock(ethers.ZeroHash, ethers.ZeroHash, 1n, 10n, 0n, [admin.address, admin.address, admin.address], false))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryTooManyDraws")
      .withArgs(10n, 9n);
    await expect(stakes.releaseEscrow(admin.address, 1n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientEscrow")
      .withArgs(0n, 1n);
    await expect(stakes.payout(node1.address, 0n, 1n, node1.address, 0n, 0n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientEscrow")
      .withArgs(0n, 1n);
    await (await f.token.transfer(await stakes.getAddress(), 100n)).wait(); // as JobMarket does before booking it
    await expect(stakes.depositEscrow(admin.address, 100n)).to.emit(stakes, "EscrowDeposited").withArgs(admin.address, 100n, 100n);
    await expect(stakes.payout(node1.address, 5n, 1n, outsider.address, 0n, 0n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientLockedStake")
      .withArgs(node1.address, 4n, 5n);
    // a slash: the winner's and voters' shares credited, the rest burned, never beyond the lock
    const supply = await f.token.totalSupply();
    const voters = [outsider.address, f.sponsor.address];
    const reward = (4n * PROTOCOL.slashRewardBps) / BPS;
    const each = (4n * PROTOCOL.committeeRewardBps) / BPS / 2n;
    await expect(stakes.slash(node1.address, 4n, admin.address, voters))
      .to.emit(stakes, "StakeSlashed")
      .withArgs(node1.address, 4n, admin.address, reward, each, 2n, 4n - reward - 2n * each);
    expect(await f.token.totalSupply()).to.equal(supply - (4n - reward - 2n * each));
    // slashWithPayment: a fixed payment to the payee, the rest burned, never beyond the lock
    await (await stakes.lock(node1.address, 3n)).wait();
    await expect(stakes.slashWithPayment(node1.address, 4n, outsider.address, 1n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientLockedStake")
      .withArgs(node1.address, 3n, 4n);
    await expect(stakes.slashWithPayment(node1.address, 3n, outsider.address, 4n)).to.be.revertedWithCustomError(
      stakes,
      "StakeRegistryInsufficientLockedStake",
    );
    await expect(stakes.slashWithPayment(node1.address, 3n, outsider.address, 1n))
      .to.emit(stakes, "StakeSlashed")
      .withArgs(node1.address, 3n, outsider.address, 1n, 0n, 0n, 2n);
    await (await stakes.connect(node1).stake(3n)).wait();
    // a payout releases a lock and credits from escrow, which then leaves by withdraw
    await (await stakes.lock(node1.address, 6n)).wait();
    await expect(stakes.payout(node1.address, 6n, 30n, outsider.address, 0n, 70n))
      .to.emit(stakes, "Credited")
      .withArgs(outsider.address, 70n, 71n); // 1 from the slashWithPayment above
    expect(await stakes.escrowed()).to.equal(0n);
    await expect(stakes.connect(node1).withdraw()).to.emit(stakes, "CreditsWithdrawn").withArgs(node1.address, 30n);
    await expect(stakes.connect(node1).withdraw()).to.be.revertedWithCustomError(stakes, "StakeRegistryNothingToWithdraw");
    await expect(stakes.releaseEscrow(admin.address, 0n)).to.emit(stakes, "EscrowReleased").withArgs(admin.address, 0n, 0n);
    await expectConservation(f);
  });

  it("drawAndLock: from an empty set draws nobody; never an excluded party or one without free stake", async function () {
    const f = await loadFixture(rolesToAdmin);
    const { stakes, verifiers, admin } = f;
    const block = BigInt(await ethers.provider.getBlockNumber());
    const none = await stakes.drawAndLock.staticCall(ethers.ZeroHash, ethers.ZeroHash, block, 3n, 0n, [admin.address, admin.address, admin.address], false);
    expect(none.drawn).to.deep.equal([]);
    expect(none.nextCounter).to.equal(32n);
    for (const v of verifiers.slice(0, 4)) {
      await (await stakes.connect(v).stake(PROTOCOL.minVerifierStake)).wait();
      await (await stakes.connect(v).registerVerifier()).wait();
    }
    // registered this block: not in a snapshot of this block (warm-up)
    const now = BigInt(await ethers.provider.getBlockNumber());
    expect((await stakes.drawAndLock.staticCall(ethers.ZeroHash, ethers.ZeroHash, now, 3n, 0n, [admin.address, admin.address, admin.address], false)).drawn).to.deep.equal([]);
    await networkHelpers.mine(PROTOCOL.drawLag + 1n);
    const snap = BigInt(await ethers.provider.getBlockNumber());
    await (await stakes.lock(verifiers[3].address, PROTOCOL.minVerifierStake - PROTOCOL.verifierLock + 1n)).wait();
    for (let i = 0; i < 20; i++) {
      const seed = ethers.keccak256(ethers.toUtf8Bytes(`draw ${i}`));
      const { drawn } = await stakes.drawAndLock.staticCall(seed, ethers.ZeroHash, snap, 3n, 0n, [verifiers[0].address, admin.address, admin.address], false);
      // stopAtLocked: the draw ends at the first ticket on a busy verifier, to be retried
      const snapshot = (await stakes.verifierSnapshot(snap)).accounts.map((a, k) => [a, 0n]);
      const weights = (await stakes.verifierSnapshot(snap)).weights;
      for (let k = 0; k < snapshot.length; k++) snapshot[k][1] = weights[k];
      const stop = await stakes.drawAndLock.staticCall(seed, ethers.ZeroHash, snap, 1n, 0n, [verifiers[0].address, admin.address, admin.address], true);
      const expected = drawMany(seed, ethers.ZeroHash, snapshot, 1, 0n, [verifiers[0].address], (a) => a !== verifiers[3].address, true);
      expect([stop.drawn, stop.nextCounter]).to.deep.equal([expected.drawn, expected.next]);
      expect(drawn.length).to.be.at.most(2);
      for (const d of drawn) expect([verifiers[0].address, verifiers[3].address]).to.not.include(d);
      expect(new Set(drawn).size).to.equal(drawn.length);
    }
  });
});

describe("TrainToken", function () {
  it("fixed supply to the holder, burnable, permit", async function () {
    const { token, admin, node1 } = await loadFixture(deployFixture);
    expect(await token.totalSupply()).to.equal(PROTOCOL.tokenSupply);
    await expect(token.connect(node1).burn(1n * TOKEN)).to.changeTokenBalance(ethers, token, node1, -TOKEN);
    expect(await token.totalSupply()).to.equal(PROTOCOL.tokenSupply - TOKEN);
    const deadline = 2n ** 255n;
    const { chainId } = await ethers.provider.getNetwork();
    const sig = await admin.signTypedData(
      { name: "OpenTrain Token", version: "1", chainId, verifyingContract: await token.getAddress() },
      { Permit: [{ name: "owner", type: "address" }, { name: "spender", type: "address" }, { name: "value", type: "uint256" }, { name: "nonce", type: "uint256" }, { name: "deadline", type: "uint256" }] },
      { owner: admin.address, spender: node1.address, value: 5n, nonce: 0n, deadline },
    );
    const { v, r, s } = ethers.Signature.from(sig);
    await (await token.permit(admin.address, node1.address, 5n, deadline, v, r, s)).wait();
    expect(await token.allowance(admin.address, node1.address)).to.equal(5n);
  });
});
