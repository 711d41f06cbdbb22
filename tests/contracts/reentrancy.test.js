// Reentrancy: a hostile token that calls back from inside every transfer, and a hostile contract
// participant (a node, a sponsor) that re-enters from its receive hook. Every attempt fails with
// ReentrancyGuardReentrantCall, nothing is paid twice, and conservation holds afterwards.
import { expect } from "chai";
import { network } from "hardhat";
import { MaxUint256 } from "ethers";
import { PROTOCOL, TOKEN, REWARD, FUNDING, deployProtocol, jobParams, digest, signerOf, expectConservation, REPORT_HASH } from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

async function hostileFixture({ ethers: e }) {
  const signers = await e.getSigners();
  const [admin, sponsor, verifier1, verifier2, node2] = signers;
  const token = await e.deployContract("ReentrantToken", [admin.address, PROTOCOL.tokenSupply]);
  const deployed = await deployProtocol(e, admin, { token });
  const { stakes, market, settlement } = deployed;
  const attacker = await e.deployContract("Reenterer");
  const stakesAddr = await stakes.getAddress();
  const marketAddr = await market.getAddress();
  for (const p of [sponsor, verifier1, verifier2, node2]) {
    await (await token.transfer(p.address, FUNDING)).wait();
    await (await token.connect(p).approve(stakesAddr, MaxUint256)).wait();
    await (await token.connect(p).approve(marketAddr, MaxUint256)).wait();
  }
  await (await token.transfer(await attacker.getAddress(), FUNDING)).wait();
  const exec = (target, fn, args) => attacker.exec(target, target.interface.encodeFunctionData(fn, args));
  await (await exec(token, "approve", [stakesAddr, MaxUint256])).wait();
  await (await exec(token, "approve", [marketAddr, MaxUint256])).wait();
  await (await exec(stakes, "stake", [300n * TOKEN])).wait();
  for (const v of [verifier1, verifier2]) {
    await (await stakes.connect(v).stake(PROTOCOL.minVerifierStake)).wait();
    await (await stakes.connect(v).registerVerifier()).wait();
  }
  await networkHelpers.mine(PROTOCOL.drawLag + 1n); // the verifiers' warm-up
  // the attacker is also a sponsor: job 1 is its own, job 2 is the honest sponsor's
  await (await exec(market, "createJob", [jobParams({ slotsPerRound: 1 }), "s", "g"])).wait();
  await (await market.connect(sponsor).createJob(jobParams({ slotsPerRound: 2 }), "s", "g")).wait();
  // the attacker works slot 0 of job 2 and is paid
  const id = await submitAs(exec, market, 2n, 0n);
  await networkHelpers.mine();
  await (await settlement.recordSeed(id)).wait();
  const v = signerOf(signers, (await settlement.verification(id)).verifier);
  await (await settlement.connect(v).attest(id, true, "r", REPORT_HASH)).wait();
  await networkHelpers.time.increase(PROTOCOL.challengeWindow);
  await (await settlement.finalize(id)).wait();
  const attackerAddr = await attacker.getAddress();
  return {
    token,
    ...deployed,
    attacker,
    attackerAddr,
    exec,
    admin,
    sponsor,
    node2,
    signers,
    accounts: [admin, sponsor, verifier1, verifier2, node2].map((s) => s.address).concat([attackerAddr]),
  };
}

async function submitAs(exec, market, jobId, slot) {
  await (await exec(market, "claimSlot", [jobId, 0n, slot])).wait();
  const rx = await (
    await exec(market, "submitContribution", [jobId, 0n, slot, digest("o"), digest("t"), "o", "m"])
  ).wait();
  for (const log of rx.logs) {
    try {
      const parsed = market.interface.parseLog(log);
      if (parsed?.name === "ContributionSubmitted") return parsed.args.contributionId;
    } catch {
      // another contract's log
    }
  }
  throw new Error("no submission");
}

/** Arm the token so that its next transfer makes the attacker call `fn(args)` on `target`. */
async function armReentry(f, target, fn, args) {
  await (await f.attacker.setReentry(await target.getAddress(), target.interface.encodeFunctionData(fn, args))).wait();
  await (await f.token.arm(f.attackerAddr, f.attacker.interface.encodeFunctionData("reenter", []))).wait();
}

/** The reentrant call failed with OpenZeppelin's ReentrancyGuardReentrantCall. */
async function expectBlocked(f, contract) {
  expect(await f.token.attempts()).to.equal(1n);
  expect(await f.token.lastSuccess()).to.equal(false);
  const data = await f.token.lastReturn();
  expect(data.slice(0, 10)).to.equal(contract.interface.getError("ReentrancyGuardReentrantCall").selector);
}

describe("reentrancy", function () {
  it("a receiver re-entering withdraw from its transfer hook is refused; it is paid once", async function () {
    const f = await loadFixture(hostileFixture);
    const { stakes, token, attackerAddr } = f;
    expect(await stakes.creditsOf(attackerAddr)).to.equal(REWARD);
    await armReentry(f, stakes, "withdraw", []);
    const before = await token.balanceOf(attackerAddr);
    await (await f.exec(stakes, "withdraw", [])).wait();
    await expectBlocked(f, stakes);
    expect(await token.balanceOf(attackerAddr)).to.equal(before + REWARD);
    expect(await stakes.creditsOf(attackerAddr)).to.equal(0n);
    await expectConservation(f);
  });

  it("re-entering withdrawUnbonded from its own payout is refused", async function () {
    const f = await loadFixture(hostileFixture);
    const { stakes, token, attackerAddr } = f;
    await (await f.exec(stakes, "requestUnbond", [50n * TOKEN])).wait();
    await networkHelpers.time.increase(PROTOCOL.unbondingDelay);
    await armReentry(f, stakes, "withdrawUnbonded", []);
    const before = await token.balanceOf(attackerAddr);
    await (await f.exec(stakes, "withdrawUnbonded", [])).wait();
    await expectBlocked(f, stakes);
    expect(await token.balanceOf(attackerAddr)).to.equal(before + 50n * TOKEN);
    await expectConservation(f);
  });

  it("a sponsor re-entering refund from the refund's transfer is refused; it is refunded once", async function () {
    const f = await loadFixture(hostileFixture);
    const { market, token, attackerAddr } = f;
    await (await f.exec(market, "cancelJob", [1n])).wait();
    const amount = await market.refundable(1n);
    expect(amount).to.be.greaterThan(0n);
    await armReentry(f, market, "refund", [1n]);
    const before = await token.balanceOf(attackerAddr);
    await (await f.exec(market, "refund", [1n])).wait();
    await expectBlocked(f, market);
    expect(await token.balanceOf(attackerAddr)).to.equal(before + amount);
    expect((await market.jobState(1n)).escrow).to.equal(0n);
    await expectConservation(f);
  });

  it("a cross-contract re-entry (finalize from inside a withdraw) is refused by the vault and can run later", async function () {
    const f = await loadFixture(hostileFixture);
    const { stakes, settlement, market, node2, signers } = f;
    await (await stakes.connect(node2).stake(PROTOCOL.minNodeStake)).wait();
    await (await market.connect(node2).claimSlot(2n, 0n, 1n)).wait();
    const rx = await (await market.connect(node2).submitContribution(2n, 0n, 1n, digest("o"), digest("t"), "o", "m")).wait();
    const id = market.interface.parseLog(rx.logs.find((l) => l.address === market.target)).args.contributionId;
    await networkHelpers.mine();
    await (await settlement.recordSeed(id)).wait();
    const v = signerOf(signers, (await settlement.verification(id)).verifier);
    await (await settlement.connect(v).attest(id, true, "r", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await armReentry(f, settlement, "finalize", [id]);
    await (await f.exec(stakes, "withdraw", [])).wait();
    await expectBlocked(f, stakes);
    expect((await settlement.verification(id)).finalized).to.equal(false);
    await (await settlement.finalize(id)).wait();
    expect(await stakes.creditsOf(node2.address)).to.equal(REWARD);
    await expectConservation(f);
  });

  it("a hostile token re-entering stake from inside its transferFrom is refused", async function () {
    const f = await loadFixture(hostileFixture);
    const { stakes, attackerAddr } = f;
    await armReentry(f, stakes, "requestUnbond", [1n]);
    const staked = await stakes.stakeOf(attackerAddr);
    await (await f.exec(stakes, "stake", [5n])).wait();
    await expectBlocked(f, stakes);
    expect(await stakes.stakeOf(attackerAddr)).to.equal(staked + 5n);
    expect((await stakes.unbondingOf(attackerAddr)).amount).to.equal(0n);
    await expectConservation(f);
  });
});
