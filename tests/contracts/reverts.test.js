// Every revert of the external functions on the protocol's path, each with its custom error and
// arguments, and the boundaries around them (the last block that still works, the first that
// does not).
import { expect } from "chai";
import { network } from "hardhat";
import {
  PROTOCOL,
  REWARD,
  FEE,
  deployFixture,
  jobFixture,
  jobParams,
  escrowOf,
  digest,
  expectConservation,
  contributionIdFrom,
  executeNextAt,
  signerOf,
  claimSubmitSeed,
  SlotStatus,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

const nextBlock = async () => BigInt(await ethers.provider.getBlockNumber()) + 1n;

/** Claim and submit slot `slot` of job 1 as `node`; returns the contribution id and blocks. */
async function claimAndSubmit(f, node, slot = 0n) {
  const { market } = f;
  const claim = await (await market.connect(node).claimSlot(1n, 0n, slot)).wait();
  const rx = await (
    await market.connect(node).submitContribution(1n, 0n, slot, digest("out"), digest("trace"), "o", "m")
  ).wait();
  return { id: contributionIdFrom(market, rx), claimBlock: BigInt(claim.blockNumber), submitBlock: BigInt(rx.blockNumber) };
}

/** The other registered verifier (of the two in jobFixture). */
function otherVerifier(f, assigned) {
  return assigned.address === f.verifier1.address ? f.verifier2 : f.verifier1;
}

describe("StakeRegistry reverts", function () {
  it("stake and requestUnbond of zero: StakeRegistryZeroAmount", async function () {
    const { stakes, node1 } = await loadFixture(deployFixture);
    await expect(stakes.connect(node1).stake(0n)).to.be.revertedWithCustomError(stakes, "StakeRegistryZeroAmount");
    await expect(stakes.connect(node1).requestUnbond(0n)).to.be.revertedWithCustomError(
      stakes,
      "StakeRegistryZeroAmount",
    );
  });

  it("requestUnbond beyond the free stake: StakeRegistryInsufficientFreeStake", async function () {
    const f = await loadFixture(jobFixture);
    const { stakes, market, node1 } = f;
    await (await stakes.connect(node1).stake(PROTOCOL.minNodeStake)).wait(); // 200 staked
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait(); // 100 locked
    await expect(stakes.connect(node1).requestUnbond(PROTOCOL.minNodeStake + 1n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(node1.address, PROTOCOL.minNodeStake, PROTOCOL.minNodeStake + 1n);
    await expect(stakes.connect(node1).requestUnbond(PROTOCOL.minNodeStake)).to.emit(stakes, "UnbondRequested");
    await expectConservation(f);
  });

  it("withdrawUnbonded with nothing unbonding, and one block too early", async function () {
    const f = await loadFixture(deployFixture);
    const { stakes, node1 } = f;
    await expect(stakes.connect(node1).withdrawUnbonded()).to.be.revertedWithCustomError(
      stakes,
      "StakeRegistryNothingUnbonding",
    );
    await (await stakes.connect(node1).stake(PROTOCOL.minNodeStake)).wait();
    const rx = await (await stakes.connect(node1).requestUnbond(PROTOCOL.minNodeStake)).wait();
    const ready = BigInt(rx.blockNumber) + PROTOCOL.unbondingDelay;
    expect((await stakes.unbondingOf(node1.address)).readyBlock).to.equal(ready);
    await executeNextAt(ethers, networkHelpers, ready - 1n);
    await expect(stakes.connect(node1).withdrawUnbonded())
      .to.be.revertedWithCustomError(stakes, "StakeRegistryUnbondingNotReady")
      .withArgs(ready);
    await executeNextAt(ethers, networkHelpers, ready);
    await expect(stakes.connect(node1).withdrawUnbonded())
      .to.emit(stakes, "UnbondWithdrawn")
      .withArgs(node1.address, PROTOCOL.minNodeStake);
    await expect(stakes.connect(node1).withdrawUnbonded()).to.be.revertedWithCustomError(
      stakes,
      "StakeRegistryNothingUnbonding",
    );
    await expectConservation(f);
  });

  it("verifier registration: below the minimum, twice, deregister when not one; unbonding below the minimum leaves", async function () {
    const { stakes, verifier1 } = await loadFixture(deployFixture);
    const short = PROTOCOL.minVerifierStake - 1n;
    await (await stakes.connect(verifier1).stake(short)).wait();
    await expect(stakes.connect(verifier1).registerVerifier())
      .to.be.revertedWithCustomError(stakes, "StakeRegistryBelowVerifierMinimum")
      .withArgs(short, PROTOCOL.minVerifierStake);
    await (await stakes.connect(verifier1).stake(1n)).wait();
    await (await stakes.connect(verifier1).registerVerifier()).wait();
    await expect(stakes.connect(verifier1).registerVerifier()).to.be.revertedWithCustomError(
      stakes,
      "StakeRegistryAlreadyVerifier",
    );
    await expect(stakes.connect(verifier1).requestUnbond(1n))
      .to.emit(stakes, "VerifierDeregistered")
      .withArgs(verifier1.address);
    expect(await stakes.verifierCount()).to.equal(0n);
    await expect(stakes.connect(verifier1).deregisterVerifier()).to.be.revertedWithCustomError(
      stakes,
      "StakeRegistryNotVerifier",
    );
  });

  it("lock, unlock and slash without the role: AccessControlUnauthorizedAccount", async function () {
    const { stakes, admin, outsider, node1, LOCKER_ROLE, SLASHER_ROLE } = await loadFixture(deployFixture);
    for (const caller of [outsider, admin]) {
      await expect(stakes.connect(caller).lock(node1.address, 1n))
        .to.be.revertedWithCustomError(stakes, "AccessControlUnauthorizedAccount")
        .withArgs(caller.address, LOCKER_ROLE);
      await expect(stakes.connect(caller).unlock(node1.address, 1n))
        .to.be.revertedWithCustomError(stakes, "AccessControlUnauthorizedAccount")
        .withArgs(caller.address, LOCKER_ROLE);
      await expect(stakes.connect(caller).slash(node1.address, 1n, caller.address, 0n))
        .to.be.revertedWithCustomError(stakes, "AccessControlUnauthorizedAccount")
        .withArgs(caller.address, SLASHER_ROLE);
    }
    // Only the admin wires roles.
    await expect(stakes.connect(outsider).grantRole(LOCKER_ROLE, outsider.address))
      .to.be.revertedWithCustomError(stakes, "AccessControlUnauthorizedAccount")
      .withArgs(outsider.address, await stakes.DEFAULT_ADMIN_ROLE());
  });

  it("lock, unlock and slash with the role but beyond the stake: Insufficient{Free,Locked}Stake", async function () {
    const { stakes, admin, node1, LOCKER_ROLE, SLASHER_ROLE } = await loadFixture(deployFixture);
    await (await stakes.grantRole(LOCKER_ROLE, admin.address)).wait();
    await (await stakes.grantRole(SLASHER_ROLE, admin.address)).wait();
    await (await stakes.connect(node1).stake(10n)).wait();
    await expect(stakes.lock(node1.address, 11n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(node1.address, 10n, 11n);
    await (await stakes.lock(node1.address, 4n)).wait();
    await expect(stakes.unlock(node1.address, 5n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientLockedStake")
      .withArgs(node1.address, 4n, 5n);
    await expect(stakes.slash(node1.address, 5n, admin.address, 0n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientLockedStake")
      .withArgs(node1.address, 4n, 5n);
    await expect(stakes.slash(node1.address, 4n, admin.address, 5n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientLockedStake")
      .withArgs(node1.address, 4n, 5n);
  });
});

describe("JobMarket reverts", function () {
  it("setSettlement: only once, never zero, admin only", async function () {
    const { market, outsider, admin } = await loadFixture(deployFixture);
    await expect(market.setSettlement(outsider.address))
      .to.be.revertedWithCustomError(market, "JobMarketInvalidParams")
      .withArgs("settlement");
    await expect(market.connect(outsider).setSettlement(outsider.address))
      .to.be.revertedWithCustomError(market, "AccessControlUnauthorizedAccount")
      .withArgs(outsider.address, await market.DEFAULT_ADMIN_ROLE());
    // A fresh market refuses the zero address.
    const fresh = await ethers.deployContract("JobMarket", [await market.token(), await market.stakes(), admin.address]);
    await expect(fresh.setSettlement(ethers.ZeroAddress))
      .to.be.revertedWithCustomError(fresh, "JobMarketInvalidParams")
      .withArgs("settlement");
  });

  const invalid = [
    ["rounds", { rounds: 0 }],
    ["rounds", { rounds: 1001 }],
    ["slotsPerRound", { slotsPerRound: 0 }],
    ["slotsPerRound", { slotsPerRound: 257 }],
    ["numSegments", { numSegments: 0, sampleCount: 0 }],
    ["numSegments", { numSegments: 4097 }],
    ["sampleCount", { sampleCount: 0 }],
    ["sampleCount", { numSegments: 4, sampleCount: 5 }],
    ["sampleCount", { numSegments: 64, sampleCount: 33 }],
    ["claimTimeout", { claimTimeout: 0 }],
    ["digest", { specDigest: ethers.ZeroHash }],
    ["digest", { initialModelDigest: ethers.ZeroHash }],
  ];
  for (const [reason, overrides] of invalid) {
    it(`createJob ${JSON.stringify(overrides)}: JobMarketInvalidParams("${reason}")`, async function () {
      const { market, sponsor } = await loadFixture(deployFixture);
      await expect(market.connect(sponsor).createJob(jobParams(overrides), "s", "g"))
        .to.be.revertedWithCustomError(market, "JobMarketInvalidParams")
        .withArgs(reason);
    });
  }

  it("createJob at every upper bound is accepted; without allowance it reverts in the token", async function () {
    const f = await loadFixture(deployFixture);
    const { market, token, sponsor, sponsor2 } = f;
    const edge = jobParams({
      rounds: 1000,
      slotsPerRound: 256,
      numSegments: 4096,
      sampleCount: 32,
      rewardPerSlot: 3n,
      verifierFee: 1n,
    });
    await expect(market.connect(sponsor).createJob(edge, "s", "g"))
      .to.emit(market, "JobCreated")
      .withArgs(1n, sponsor.address, (x) => x.length === 9, "s", "g", 1000n * 256n * 4n);
    await (await token.connect(sponsor2).approve(await market.getAddress(), 0n)).wait();
    await expect(market.connect(sponsor2).createJob(jobParams(), "s", "g"))
      .to.be.revertedWithCustomError(token, "ERC20InsufficientAllowance")
      .withArgs(await market.getAddress(), 0n, escrowOf(jobParams()));
    await expectConservation(f);
  });

  it("claimSlot: unknown job, wrong round, slot out of range", async function () {
    const { market, node1 } = await loadFixture(jobFixture);
    await expect(market.connect(node1).claimSlot(2n, 0n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketUnknownJob")
      .withArgs(2n);
    await expect(market.connect(node1).claimSlot(1n, 1n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketWrongRound")
      .withArgs(1n, 1n, 0n);
    await expect(market.connect(node1).claimSlot(1n, 0n, 2n))
      .to.be.revertedWithCustomError(market, "JobMarketSlotOutOfRange")
      .withArgs(2n, 2n);
  });

  it("claimSlot of a slot taken (up to and at its deadline), submitted or accepted: JobMarketSlotTaken", async function () {
    const f = await loadFixture(jobFixture);
    const { market, settlement, node1, node2, params } = f;
    const rx = await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    const deadline = BigInt(rx.blockNumber) + BigInt(params.claimTimeout);
    await expect(market.connect(node2).claimSlot(1n, 0n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketSlotTaken")
      .withArgs(1n, 0n, 0n);
    await executeNextAt(ethers, networkHelpers, deadline);
    await expect(market.connect(node2).claimSlot(1n, 0n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketSlotTaken")
      .withArgs(1n, 0n, 0n);
    // Submitted at its deadline: still the claimant's, and it never expires once submitted.
    const sub = await (
      await market.connect(node1).submitContribution(1n, 0n, 0n, digest("o"), digest("t"), "o", "m")
    ).wait();
    const id = contributionIdFrom(market, sub);
    await networkHelpers.mine(10);
    await expect(market.connect(node2).claimSlot(1n, 0n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketSlotTaken")
      .withArgs(1n, 0n, 0n);
    await (await settlement.recordSeed(id)).wait();
    const v = signerOf(f.signers, (await settlement.verification(id)).verifier);
    await (await settlement.connect(v).attest(id, true, "r")).wait();
    await networkHelpers.mine(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    await expect(market.connect(node2).claimSlot(1n, 0n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketSlotTaken")
      .withArgs(1n, 0n, 0n);
    await expectConservation(f);
  });

  it("claimSlot without free stake: StakeRegistryInsufficientFreeStake (unstaked, and all stake locked)", async function () {
    const { market, stakes, node1, outsider } = await loadFixture(jobFixture);
    await expect(market.connect(outsider).claimSlot(1n, 0n, 0n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(outsider.address, 0n, PROTOCOL.minNodeStake);
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    await expect(market.connect(node1).claimSlot(1n, 0n, 1n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(node1.address, 0n, PROTOCOL.minNodeStake);
  });

  it("an expired claim is taken over by another node (ClaimExpired) and the old claimant's lock is released", async function () {
    const f = await loadFixture(jobFixture);
    const { market, stakes, node1, node2, params } = f;
    const rx = await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    const deadline = BigInt(rx.blockNumber) + BigInt(params.claimTimeout);
    await executeNextAt(ethers, networkHelpers, deadline + 1n);
    const tx = market.connect(node2).claimSlot(1n, 0n, 0n);
    await expect(tx).to.emit(market, "ClaimExpired").withArgs(1n, 0n, 0n, node1.address);
    await expect(tx).to.emit(stakes, "StakeUnlocked").withArgs(node1.address, PROTOCOL.minNodeStake, 0n);
    await expect(tx)
      .to.emit(market, "SlotClaimed")
      .withArgs(1n, 0n, 0n, node2.address, deadline + 1n + BigInt(params.claimTimeout));
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    expect(await stakes.lockedOf(node2.address)).to.equal(PROTOCOL.minNodeStake);
    expect((await market.slotState(1n, 0n, 0n)).node).to.equal(node2.address);
    // The old claimant can no longer submit.
    await expect(market.connect(node1).submitContribution(1n, 0n, 0n, digest("o"), digest("t"), "o", "m"))
      .to.be.revertedWithCustomError(market, "JobMarketNotClaimant")
      .withArgs(node1.address, node2.address);
    await expectConservation(f);
  });

  it("an expired claim can be re-claimed by the same node", async function () {
    const f = await loadFixture(jobFixture);
    const { market, stakes, node1, params } = f;
    const rx = await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    const deadline = BigInt(rx.blockNumber) + BigInt(params.claimTimeout);
    await executeNextAt(ethers, networkHelpers, deadline + 1n);
    const tx = market.connect(node1).claimSlot(1n, 0n, 0n);
    await expect(tx).to.emit(market, "ClaimExpired").withArgs(1n, 0n, 0n, node1.address);
    await expect(tx)
      .to.emit(market, "SlotClaimed")
      .withArgs(1n, 0n, 0n, node1.address, deadline + 1n + BigInt(params.claimTimeout));
    expect(await stakes.lockedOf(node1.address)).to.equal(PROTOCOL.minNodeStake);
    await expectConservation(f);
  });

  it("submitContribution by a non-claimant: JobMarketNotClaimant", async function () {
    const { market, node1, node2 } = await loadFixture(jobFixture);
    const submit = (who, slot) =>
      market.connect(who).submitContribution(1n, 0n, slot, digest("o"), digest("t"), "o", "m");
    // Unclaimed slot.
    await expect(submit(node1, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketNotClaimant")
      .withArgs(node1.address, ethers.ZeroAddress);
    // Someone else's claim.
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    await expect(submit(node2, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketNotClaimant")
      .withArgs(node2.address, node1.address);
    // A second submission of the same claim.
    await (await submit(node1, 0n)).wait();
    await expect(submit(node1, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketNotClaimant")
      .withArgs(node1.address, node1.address);
  });

  it("submitContribution at the claim deadline works, one block later: JobMarketClaimExpired", async function () {
    const { market, node1, node2, params } = await loadFixture(jobFixture);
    const submit = (who, slot) =>
      market.connect(who).submitContribution(1n, 0n, slot, digest("o"), digest("t"), "o", "m");
    const rx1 = await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    const rx2 = await (await market.connect(node2).claimSlot(1n, 0n, 1n)).wait();
    const d1 = BigInt(rx1.blockNumber) + BigInt(params.claimTimeout);
    const d2 = BigInt(rx2.blockNumber) + BigInt(params.claimTimeout);
    expect(d2).to.equal(d1 + 1n);
    await executeNextAt(ethers, networkHelpers, d1 + 1n); // node1 one block late, node2 at its deadline
    await expect(submit(node1, 0n)).to.be.revertedWithCustomError(market, "JobMarketClaimExpired").withArgs(d1);
    await expect(submit(node2, 1n)).to.emit(market, "ContributionSubmitted");
  });

  it("postAggregate: unknown job, wrong round, round incomplete, unstaked caller, completed job", async function () {
    const f = await loadFixture(jobFixture);
    const { market, node1, node2, outsider } = f;
    const post = (who, jobId, round) => market.connect(who).postAggregate(jobId, round, digest("G_1"), "g1", 1n);
    await expect(post(node1, 9n, 0n)).to.be.revertedWithCustomError(market, "JobMarketUnknownJob").withArgs(9n);
    await expect(post(node1, 1n, 1n))
      .to.be.revertedWithCustomError(market, "JobMarketWrongRound")
      .withArgs(1n, 1n, 0n);
    await expect(post(node1, 1n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketRoundIncomplete")
      .withArgs(1n, 0n, 0n, 2n);
    for (const [node, slot] of [
      [node1, 0n],
      [node2, 1n],
    ]) {
      const { id, verifier } = await claimSubmitSeed(f, connection, { node, slot });
      await (await f.settlement.connect(verifier).attest(id, true, "r")).wait();
      await networkHelpers.mine(PROTOCOL.challengeWindow);
      await (await f.settlement.finalize(id)).wait();
    }
    // The round is complete now, but the caller has no stake.
    await expect(post(outsider, 1n, 0n)).to.be.revertedWithCustomError(market, "JobMarketNotStaked").withArgs(outsider.address);
    await expect(post(node1, 1n, 0n)).to.emit(market, "JobCompleted").withArgs(1n);
    await expect(post(node1, 1n, 1n)).to.be.revertedWithCustomError(market, "JobMarketJobNotOpen").withArgs(1n);
    await expect(market.connect(node1).claimSlot(1n, 1n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketJobNotOpen")
      .withArgs(1n);
    await expectConservation(f);
  });

  it("refund: unknown job, by a non-sponsor, before completion, with nothing left", async function () {
    const f = await loadFixture(jobFixture);
    const { market, sponsor, outsider, node1, node2 } = f;
    await expect(market.connect(sponsor).refund(7n)).to.be.revertedWithCustomError(market, "JobMarketUnknownJob").withArgs(7n);
    await expect(market.connect(outsider).refund(1n))
      .to.be.revertedWithCustomError(market, "JobMarketNotSponsor")
      .withArgs(outsider.address);
    await expect(market.connect(sponsor).refund(1n))
      .to.be.revertedWithCustomError(market, "JobMarketNotCompleted")
      .withArgs(1n);
    for (const [node, slot] of [
      [node1, 0n],
      [node2, 1n],
    ]) {
      const { id, verifier } = await claimSubmitSeed(f, connection, { node, slot });
      await (await f.settlement.connect(verifier).attest(id, true, "r")).wait();
      await networkHelpers.mine(PROTOCOL.challengeWindow);
      await (await f.settlement.finalize(id)).wait();
    }
    await (await market.connect(node1).postAggregate(1n, 0n, digest("G_1"), "g1", 1n)).wait();
    await expect(market.connect(outsider).refund(1n))
      .to.be.revertedWithCustomError(market, "JobMarketNotSponsor")
      .withArgs(outsider.address);
    await expect(market.connect(sponsor).refund(1n))
      .to.be.revertedWithCustomError(market, "JobMarketNothingToRefund")
      .withArgs(1n);
  });

  it("settleContribution only by Settlement: AccessControlUnauthorizedAccount", async function () {
    const { market, admin, outsider } = await loadFixture(jobFixture);
    const role = await market.SETTLEMENT_ROLE();
    for (const caller of [admin, outsider]) {
      await expect(market.connect(caller).settleContribution(1n, true))
        .to.be.revertedWithCustomError(market, "AccessControlUnauthorizedAccount")
        .withArgs(caller.address, role);
    }
  });

  it("pause blocks createJob and claimSlot but not submit, seed, attest, finalize or withdraw", async function () {
    const f = await loadFixture(jobFixture);
    const { market, settlement, admin, sponsor, node1, node2, outsider } = f;
    await expect(market.connect(outsider).pause())
      .to.be.revertedWithCustomError(market, "AccessControlUnauthorizedAccount")
      .withArgs(outsider.address, await market.GUARDIAN_ROLE());
    // node2 holds a claim from before the pause.
    await (await market.connect(node2).claimSlot(1n, 0n, 1n)).wait();
    await expect(market.connect(admin).pause()).to.emit(market, "Paused").withArgs(admin.address);

    await expect(market.connect(sponsor).createJob(jobParams(), "s", "g")).to.be.revertedWithCustomError(
      market,
      "EnforcedPause",
    );
    await expect(market.connect(node1).claimSlot(1n, 0n, 0n)).to.be.revertedWithCustomError(market, "EnforcedPause");

    // Work already claimed goes on to payment while paused.
    const rx = await (
      await market.connect(node2).submitContribution(1n, 0n, 1n, digest("o"), digest("t"), "o", "m")
    ).wait();
    const id = contributionIdFrom(market, rx);
    await networkHelpers.mine();
    await (await settlement.recordSeed(id)).wait();
    const v = signerOf(f.signers, (await settlement.verification(id)).verifier);
    await (await settlement.connect(v).attest(id, true, "r")).wait();
    await networkHelpers.mine(PROTOCOL.challengeWindow);
    await expect(settlement.finalize(id)).to.emit(settlement, "ContributionFinalized").withArgs(id, true, REWARD, FEE, 0n);
    await expect(settlement.connect(node2).withdraw()).to.emit(settlement, "CreditsWithdrawn").withArgs(node2.address, REWARD);

    await expect(market.connect(admin).unpause()).to.emit(market, "Unpaused");
    await expect(market.connect(node1).claimSlot(1n, 0n, 0n)).to.emit(market, "SlotClaimed");
    await expect(market.connect(sponsor).createJob(jobParams(), "s", "g")).to.emit(market, "JobCreated");
    await expectConservation(f);
  });
});

describe("Settlement reverts", function () {
  it("constructor: attestWindow 0, challengeWindow 0, slashRewardBps > 10000", async function () {
    const { token, stakes, market, admin } = await loadFixture(deployFixture);
    const factory = await ethers.getContractFactory("Settlement");
    const args = (a, c, b) => [token, stakes, market, admin.address, a, c, b];
    for (const [reason, a, c, b] of [
      ["attestWindow", 0n, 5n, 5000n],
      ["challengeWindow", 20n, 0n, 5000n],
      ["slashRewardBps", 20n, 5n, 10_001n],
    ]) {
      await expect(factory.deploy(...args(a, c, b)))
        .to.be.revertedWithCustomError(factory, "SettlementInvalidParams")
        .withArgs(reason);
    }
    const ok = await factory.deploy(...args(1n, 1n, 10_000n));
    expect(await ok.slashRewardBps()).to.equal(10_000n);
  });

  it("recordSeed of an unknown contribution: SettlementNotSubmitted", async function () {
    const { settlement } = await loadFixture(jobFixture);
    await expect(settlement.recordSeed(1n)).to.be.revertedWithCustomError(settlement, "SettlementNotSubmitted").withArgs(1n);
  });

  it("recordSeed in the submission's own block: SettlementSeedNotReady", async function () {
    const f = await loadFixture(jobFixture);
    const { market, settlement, node1 } = f;
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    const submitBlock = await nextBlock();
    await ethers.provider.send("evm_setAutomine", [false]);
    let submitTx;
    let seedTx;
    try {
      submitTx = await market
        .connect(node1)
        .submitContribution(1n, 0n, 0n, digest("o"), digest("t"), "o", "m", { gasLimit: 400_000n });
      seedTx = await settlement.recordSeed(1n, { gasLimit: 400_000n });
      await ethers.provider.send("evm_mine", []);
    } finally {
      await ethers.provider.send("evm_setAutomine", [true]);
    }
    const rx = await submitTx.wait();
    expect(BigInt(rx.blockNumber)).to.equal(submitBlock);
    await expect(seedTx)
      .to.be.revertedWithCustomError(settlement, "SettlementSeedNotReady")
      .withArgs(1n, submitBlock + 1n);
    const seedRx = await ethers.provider.getTransactionReceipt(seedTx.hash);
    expect(BigInt(seedRx.blockNumber)).to.equal(submitBlock);
    expect(seedRx.status).to.equal(0);
  });

  it("recordSeed in the seed block itself: SettlementSeedNotReady; one block later it works; twice: SeedAlreadyRecorded", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, node1 } = f;
    const { id, submitBlock } = await claimAndSubmit(f, node1);
    // The next transaction executes in submitBlock + 1 == seedBlock.
    expect(await nextBlock()).to.equal(submitBlock + 1n);
    await expect(settlement.recordSeed(id))
      .to.be.revertedWithCustomError(settlement, "SettlementSeedNotReady")
      .withArgs(id, submitBlock + 1n);
    await networkHelpers.mine();
    await expect(settlement.recordSeed(id)).to.emit(settlement, "SeedRecorded");
    await expect(settlement.recordSeed(id))
      .to.be.revertedWithCustomError(settlement, "SettlementSeedAlreadyRecorded")
      .withArgs(id);
  });

  it("recordSeed after the seed block's hash expired moves the seed block to an unknown future block", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, node1 } = f;
    const { id, submitBlock } = await claimAndSubmit(f, node1);
    await networkHelpers.mine(300); // blockhash(submitBlock + 1) is gone after 256 blocks
    const resetAt = await nextBlock();
    await expect(settlement.recordSeed(id)).to.emit(settlement, "SeedBlockReset").withArgs(id, resetAt + 1n);
    expect((await settlement.verification(id)).seed).to.equal(ethers.ZeroHash);
    expect((await settlement.verification(id)).seedBlock).to.equal(resetAt + 1n);
    await expect(settlement.recordSeed(id))
      .to.be.revertedWithCustomError(settlement, "SettlementSeedNotReady")
      .withArgs(id, resetAt + 1n);
    await networkHelpers.mine();
    const tx = settlement.recordSeed(id);
    await expect(tx).to.emit(settlement, "SeedRecorded");
    const v = await settlement.verification(id);
    expect(v.seedBlock).to.equal(resetAt + 1n);
    const block = await ethers.provider.getBlock(Number(resetAt + 1n));
    const coder = ethers.AbiCoder.defaultAbiCoder();
    expect(v.seed).to.equal(ethers.keccak256(coder.encode(["bytes32", "uint256"], [block.hash, id])));
    expect(resetAt).to.be.greaterThan(submitBlock + 256n);
  });

  it("recordSeed with no registered verifier: SettlementNoVerifiers", async function () {
    const f = await loadFixture(jobFixture);
    const { stakes, settlement, node1, verifier1, verifier2 } = f;
    await (await stakes.connect(verifier1).deregisterVerifier()).wait();
    await (await stakes.connect(verifier2).deregisterVerifier()).wait();
    const { id } = await claimAndSubmit(f, node1);
    await networkHelpers.mine();
    await expect(settlement.recordSeed(id)).to.be.revertedWithCustomError(settlement, "SettlementNoVerifiers");
  });

  it("recordSeed of a finalized contribution: SettlementNotSubmitted", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, node1 } = f;
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    await (await settlement.connect(verifier).attest(id, true, "r")).wait();
    await networkHelpers.mine(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    await expect(settlement.recordSeed(id)).to.be.revertedWithCustomError(settlement, "SettlementNotSubmitted").withArgs(id);
  });

  it("attest before the seed, by anyone but the assigned verifier, and twice", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, node1, outsider } = f;
    const { id } = await claimAndSubmit(f, node1);
    await expect(settlement.connect(f.verifier1).attest(id, true, "r"))
      .to.be.revertedWithCustomError(settlement, "SettlementSeedNotRecorded")
      .withArgs(id);
    await expect(settlement.sampledSegments(id))
      .to.be.revertedWithCustomError(settlement, "SettlementSeedNotRecorded")
      .withArgs(id);
    await networkHelpers.mine(); // reverted calls mine no block: move past the seed block
    await (await settlement.recordSeed(id)).wait();
    const assigned = signerOf(f.signers, (await settlement.verification(id)).verifier);
    for (const caller of [otherVerifier(f, assigned), outsider, node1]) {
      await expect(settlement.connect(caller).attest(id, true, "r"))
        .to.be.revertedWithCustomError(settlement, "SettlementNotAssignedVerifier")
        .withArgs(caller.address, assigned.address);
    }
    await (await settlement.connect(assigned).attest(id, true, "r")).wait();
    for (const pass of [true, false]) {
      await expect(settlement.connect(assigned).attest(id, pass, "r2"))
        .to.be.revertedWithCustomError(settlement, "SettlementAlreadyAttested")
        .withArgs(id);
    }
  });

  it("attest at the window's last block works, one block later: SettlementAttestWindowClosed", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, node1, node2 } = f;
    const a = await claimSubmitSeed(f, connection, { node: node1, slot: 0n });
    const b = await claimSubmitSeed(f, connection, { node: node2, slot: 1n });
    const deadlineA = a.verification.seedRecordedAt + PROTOCOL.attestWindow;
    const deadlineB = b.verification.seedRecordedAt + PROTOCOL.attestWindow;
    expect(deadlineB).to.be.greaterThan(deadlineA);
    await executeNextAt(ethers, networkHelpers, deadlineA + 1n);
    await expect(settlement.connect(a.verifier).attest(a.id, true, "r"))
      .to.be.revertedWithCustomError(settlement, "SettlementAttestWindowClosed")
      .withArgs(a.id, deadlineA);
    await executeNextAt(ethers, networkHelpers, deadlineB);
    await expect(settlement.connect(b.verifier).attest(b.id, true, "r")).to.emit(settlement, "Attested");
    await expect(settlement.connect(b.verifier).attest(b.id, true, "r"))
      .to.be.revertedWithCustomError(settlement, "SettlementAlreadyAttested")
      .withArgs(b.id);
  });

  it("finalize before attest, and twice", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, node1 } = f;
    await expect(settlement.finalize(5n)).to.be.revertedWithCustomError(settlement, "SettlementNotAttested").withArgs(5n);
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    await expect(settlement.finalize(id)).to.be.revertedWithCustomError(settlement, "SettlementNotAttested").withArgs(id);
    await (await settlement.connect(verifier).attest(id, false, "r")).wait();
    await networkHelpers.mine(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    await expect(settlement.finalize(id)).to.be.revertedWithCustomError(settlement, "SettlementAlreadyFinalized").withArgs(id);
    await expectConservation(f);
  });

  it("withdraw with nothing credited, and a second withdraw: SettlementNothingToWithdraw", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, node1, outsider } = f;
    await expect(settlement.connect(outsider).withdraw())
      .to.be.revertedWithCustomError(settlement, "SettlementNothingToWithdraw")
      .withArgs(outsider.address);
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    await (await settlement.connect(verifier).attest(id, true, "r")).wait();
    await networkHelpers.mine(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    await (await settlement.connect(node1).withdraw()).wait();
    await expect(settlement.connect(node1).withdraw())
      .to.be.revertedWithCustomError(settlement, "SettlementNothingToWithdraw")
      .withArgs(node1.address);
    // The slot is accepted and the claim cannot be submitted again.
    expect((await f.market.slotState(1n, 0n, 0n)).status).to.equal(SlotStatus.Accepted);
    await expectConservation(f);
  });
});
