// Availability on demand (issue 16): a job with a reveal window has its node publish only the
// manifest, output and update at submission, then reveal the sampled checkpoints within the
// window after the seed is recorded. No reveal: the contribution fails as a failed check (the
// node is slashed, the verifier gets exactly its fee); a late reveal reverts and pays nothing;
// the verifier cannot attest before the reveal, and its window runs from the reveal.
import { expect } from "chai";
import { network } from "hardhat";
import {
  ContributionStatus,
  PROTOCOL,
  Phase,
  REPORT_HASH,
  claimSubmitSeed,
  courtFixture,
  expectConservation,
  jobParams,
  timeOf,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

const REVEAL = 300n; // seconds

async function revealJob(conn) {
  const f = await courtFixture(conn);
  const params = jobParams({ revealWindow: Number(REVEAL) });
  await (await f.market.connect(f.sponsor).createJob(params, "bafy-spec-2", "bafy-g0")).wait();
  return { ...f, params, jobId: 2n };
}

async function seeded(conn) {
  const f = await revealJob(conn);
  const out = await claimSubmitSeed(f, conn, { node: f.node1, jobId: 2n });
  return { ...f, ...out, revealDeadline: out.seedRecordedAt + REVEAL };
}

describe("availability on demand: reveal", function () {
  it("recordSeed sets the reveal deadline; the verifier cannot attest before the reveal", async function () {
    const f = await loadFixture(seeded);
    const v = await f.settlement.verification(f.id);
    expect(v.revealDeadline).to.equal(f.revealDeadline);
    expect(v.revealedAt).to.equal(0n);
    await expect(f.settlement.connect(f.verifier).attest(f.id, true, "r", REPORT_HASH))
      .to.be.revertedWithCustomError(f.settlement, "SettlementNotRevealed")
      .withArgs(f.id);
    await expect(f.settlement.connect(f.verifier).attest(f.id, false, "r", REPORT_HASH))
      .to.be.revertedWithCustomError(f.settlement, "SettlementNotRevealed")
      .withArgs(f.id);
  });

  it("only the node reveals, once, and the attest window then runs from the reveal", async function () {
    const f = await loadFixture(seeded);
    await expect(f.settlement.connect(f.outsider).reveal(f.id))
      .to.be.revertedWithCustomError(f.settlement, "SettlementNotNode")
      .withArgs(f.outsider.address, f.node1.address);
    await networkHelpers.time.setNextBlockTimestamp(f.revealDeadline);
    const rx = await (await f.settlement.connect(f.node1).reveal(f.id)).wait();
    const at = await timeOf(rx);
    expect(at).to.equal(f.revealDeadline); // the last second of the window still counts
    await expect(rx).to.emit(f.settlement, "CheckpointsRevealed").withArgs(f.id, f.node1.address, at);
    const v = await f.settlement.verification(f.id);
    expect(v.revealedAt).to.equal(at);
    expect(v.attestDeadline).to.equal(at + PROTOCOL.attestWindow);
    await expect(f.settlement.connect(f.node1).reveal(f.id))
      .to.be.revertedWithCustomError(f.settlement, "SettlementAlreadyRevealed")
      .withArgs(f.id);
    await expect(f.settlement.failUnrevealed(f.id))
      .to.be.revertedWithCustomError(f.settlement, "SettlementAlreadyRevealed")
      .withArgs(f.id);
    // no takeover while the (moved) window is open
    await networkHelpers.time.setNextBlockTimestamp(f.seedRecordedAt + PROTOCOL.attestWindow + 1n);
    await expect(f.settlement.requestTakeover(f.id))
      .to.be.revertedWithCustomError(f.settlement, "SettlementAttestWindowOpen")
      .withArgs(f.id, at + PROTOCOL.attestWindow);
    await (await f.settlement.connect(f.verifier).attest(f.id, true, "r", REPORT_HASH)).wait();
  });

  it("a verifier waiting for an unrevealed node cannot be taken over", async function () {
    const f = await loadFixture(seeded);
    await networkHelpers.time.increase(PROTOCOL.attestWindow + 1n);
    await expect(f.settlement.requestTakeover(f.id))
      .to.be.revertedWithCustomError(f.settlement, "SettlementNotRevealed")
      .withArgs(f.id);
  });

  it("a node that never reveals is failed after the window: slashed, the verifier paid its fee", async function () {
    const f = await loadFixture(seeded);
    await networkHelpers.time.setNextBlockTimestamp(f.revealDeadline);
    await expect(f.settlement.failUnrevealed(f.id))
      .to.be.revertedWithCustomError(f.settlement, "SettlementRevealWindowOpen")
      .withArgs(f.id, f.revealDeadline);
    await networkHelpers.time.setNextBlockTimestamp(f.revealDeadline + 1n);
    const nodeStake = await f.stakes.stakeOf(f.node1.address);
    const verifierCredits = await f.stakes.creditsOf(f.verifier.address);
    const rx = await (await f.settlement.connect(f.outsider).failUnrevealed(f.id)).wait();
    await expect(rx).to.emit(f.settlement, "RevealMissed").withArgs(f.id, f.node1.address, f.revealDeadline);
    await expect(rx)
      .to.emit(f.settlement, "ContributionFinalized")
      .withArgs(f.id, false, 0n, f.params.verifierFee, PROTOCOL.minNodeStake);
    expect(await f.stakes.stakeOf(f.node1.address)).to.equal(nodeStake - PROTOCOL.minNodeStake);
    expect(await f.stakes.creditsOf(f.verifier.address)).to.equal(verifierCredits + f.params.verifierFee);
    expect(await f.stakes.lockedOf(f.verifier.address)).to.equal(0n);
    expect((await f.market.getContribution(f.id)).status).to.equal(ContributionStatus.Rejected);
    expect((await f.settlement.verification(f.id)).phase).to.equal(Phase.Rejected);
    const [, , slotStatus] = await f.market.slotState(2n, 0n, 0n);
    expect(slotStatus).to.equal(0n); // open again
    await expectConservation(f);
  });

  it("a node that reveals late is not paid: the reveal reverts and the contribution fails", async function () {
    const f = await loadFixture(seeded);
    await networkHelpers.time.setNextBlockTimestamp(f.revealDeadline + 1n);
    await expect(f.settlement.connect(f.node1).reveal(f.id))
      .to.be.revertedWithCustomError(f.settlement, "SettlementRevealWindowClosed")
      .withArgs(f.id, f.revealDeadline);
    await (await f.settlement.failUnrevealed(f.id)).wait();
    const credits = await f.stakes.creditsOf(f.node1.address);
    expect(credits).to.equal(0n);
    await expect(f.settlement.connect(f.verifier).attest(f.id, true, "r", REPORT_HASH))
      .to.be.revertedWithCustomError(f.settlement, "SettlementSeedNotRecorded")
      .withArgs(f.id);
  });

  it("a job without a reveal window needs no reveal (everything published at submission)", async function () {
    const f = await loadFixture(revealJob);
    const out = await claimSubmitSeed(f, connection, { node: f.node2, jobId: 1n });
    const v = await f.settlement.verification(out.id);
    expect(v.revealDeadline).to.equal(0n);
    await expect(f.settlement.connect(f.node2).reveal(out.id))
      .to.be.revertedWithCustomError(f.settlement, "SettlementInvalidParams")
      .withArgs("nothing to reveal");
    await expect(f.settlement.failUnrevealed(out.id))
      .to.be.revertedWithCustomError(f.settlement, "SettlementInvalidParams")
      .withArgs("nothing to reveal");
    await (await f.settlement.connect(out.verifier).attest(out.id, true, "r", REPORT_HASH)).wait();
  });

  it("the reveal window is capped at the attest window", async function () {
    const f = await loadFixture(courtFixture);
    const params = jobParams({ revealWindow: Number(PROTOCOL.attestWindow * 10n) });
    await (await f.market.connect(f.sponsor).createJob(params, "bafy-spec-3", "bafy-g0")).wait();
    const out = await claimSubmitSeed(f, connection, { node: f.node1, jobId: 2n });
    expect((await f.settlement.verification(out.id)).revealDeadline).to.equal(out.seedRecordedAt + PROTOCOL.attestWindow);
  });
});
