// Canaries (issue 18): the authority commits to a canary (job, node, secret, fault bitmap) before
// its submission; once the verifier has attested, the reveal settles the contribution as a canary
// and judges the verdict: a lazy pass of a faulty sample is slashed, a right fail earns twice the
// fee from the pool, a right pass the fee; no escrow moves and the slot reopens.
import { expect } from "chai";
import { network } from "hardhat";
import {
  ContributionStatus,
  PROTOCOL,
  Phase,
  REPORT_HASH,
  TOKEN,
  claimSubmitSeed,
  courtFixture,
  expectConservation,
  claimAndSubmit,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

const SECRET = ethers.id("canary secret");
const ALL_FAULTY = [(1n << 8n) - 1n]; // the fixture job has 8 segments

async function pooled(conn) {
  const f = await courtFixture(conn);
  await (await f.token.connect(f.admin).approve(await f.canaries.getAddress(), 10n * TOKEN)).wait();
  await (await f.canaries.connect(f.admin).fund(10n * TOKEN)).wait();
  return f;
}

async function committedCanary(f, conn, faults) {
  const commitment = await f.canaries.canaryCommitment(1n, f.node3.address, SECRET, faults);
  await (await f.canaries.connect(f.admin).commit([commitment, ethers.id("a decoy")])).wait();
  const out = await claimSubmitSeed(f, conn, { node: f.node3 });
  return { ...out, commitment };
}

describe("canaries", function () {
  it("a lazy pass of a faulty canary is slashed; the slot reopens and no escrow moves", async function () {
    const f = await loadFixture(pooled);
    const { id, verifier } = await committedCanary(f, connection, ALL_FAULTY);
    await (await f.settlement.connect(verifier).attest(id, true, "lazy", REPORT_HASH)).wait();
    const escrowBefore = (await f.market.jobState(1n)).escrow;
    const stakeBefore = await f.stakes.stakeOf(verifier.address);
    const rx = await (await f.canaries.connect(f.admin).reveal(id, SECRET, ALL_FAULTY)).wait();
    await expect(rx)
      .to.emit(f.canaries, "CanaryRevealed")
      .withArgs(id, verifier.address, true, false, 0n, PROTOCOL.verifierLock);
    expect(await f.stakes.stakeOf(verifier.address)).to.equal(stakeBefore - PROTOCOL.verifierLock);
    expect(await f.stakes.lockedOf(f.node3.address)).to.equal(0n); // the canary node is released
    expect((await f.market.getContribution(id)).status).to.equal(ContributionStatus.Rejected);
    expect((await f.settlement.verification(id)).phase).to.equal(Phase.Rejected);
    expect((await f.market.jobState(1n)).escrow).to.equal(escrowBefore);
    expect(await f.canaries.pool()).to.equal(10n * TOKEN);
    const [, , slotStatus] = await f.market.slotState(1n, 0n, 0n);
    expect(slotStatus).to.equal(0n);
    await expectConservation(f);
  });

  it("a right fail earns twice the fee from the pool; a right pass of a clean sample the fee", async function () {
    const f = await loadFixture(pooled);
    const caught = await committedCanary(f, connection, ALL_FAULTY);
    await (await f.settlement.connect(caught.verifier).attest(caught.id, false, "r", REPORT_HASH)).wait();
    const credits = await f.stakes.creditsOf(caught.verifier.address);
    await expect(f.canaries.connect(f.admin).reveal(caught.id, SECRET, ALL_FAULTY))
      .to.emit(f.canaries, "CanaryRevealed")
      .withArgs(caught.id, caught.verifier.address, true, true, 2n * f.params.verifierFee, 0n);
    expect(await f.stakes.creditsOf(caught.verifier.address)).to.equal(credits + 2n * f.params.verifierFee);
    expect(await f.stakes.lockedOf(caught.verifier.address)).to.equal(0n);

    // a clean canary (no faults) on slot 1: the right verdict is pass
    const secret2 = ethers.id("second");
    const commitment = await f.canaries.canaryCommitment(1n, f.node2.address, secret2, [0n]);
    await (await f.canaries.connect(f.admin).commit([commitment])).wait();
    const clean = await claimSubmitSeed(f, connection, { node: f.node2, slot: 1n });
    await (await f.settlement.connect(clean.verifier).attest(clean.id, true, "r", REPORT_HASH)).wait();
    await expect(f.canaries.connect(f.admin).reveal(clean.id, secret2, [0n]))
      .to.emit(f.canaries, "CanaryRevealed")
      .withArgs(clean.id, clean.verifier.address, false, true, f.params.verifierFee, 0n);
    expect(await f.canaries.pool()).to.equal(10n * TOKEN - 3n * f.params.verifierFee);
    await expectConservation(f);
  });

  it("a fail of a clean canary is slashed too (failing everything does not pay)", async function () {
    const f = await loadFixture(pooled);
    const { id, verifier } = await committedCanary(f, connection, [0n]);
    await (await f.settlement.connect(verifier).attest(id, false, "r", REPORT_HASH)).wait();
    await expect(f.canaries.connect(f.admin).reveal(id, SECRET, [0n]))
      .to.emit(f.canaries, "CanaryRevealed")
      .withArgs(id, verifier.address, false, false, 0n, PROTOCOL.verifierLock);
  });

  it("refuses a commitment posted at or after the submission, a wrong opening, a non-authority", async function () {
    const f = await loadFixture(pooled);
    const { id, submitBlock } = await claimAndSubmit(f, { node: f.node3 });
    const late = await f.canaries.canaryCommitment(1n, f.node3.address, SECRET, ALL_FAULTY);
    const rx = await (await f.canaries.connect(f.admin).commit([late])).wait();
    await networkHelpers.mine();
    await (await f.settlement.recordSeed(id)).wait();
    const v = await f.settlement.verification(id);
    const verifier = f.signers.find((s) => s.address === v.verifier);
    await (await f.settlement.connect(verifier).attest(id, true, "r", REPORT_HASH)).wait();
    await expect(f.canaries.connect(f.admin).reveal(id, SECRET, ALL_FAULTY))
      .to.be.revertedWithCustomError(f.canaries, "CanariesCommittedTooLate")
      .withArgs(late, BigInt(rx.blockNumber), submitBlock);
    await expect(f.canaries.connect(f.admin).reveal(id, ethers.id("wrong"), ALL_FAULTY)).to.be.revertedWithCustomError(
      f.canaries,
      "CanariesUnknownCommitment",
    );
    await expect(f.canaries.connect(f.outsider).reveal(id, SECRET, ALL_FAULTY)).to.be.revertedWithCustomError(
      f.canaries,
      "AccessControlUnauthorizedAccount",
    );
    await expect(f.canaries.connect(f.outsider).commit([late])).to.be.revertedWithCustomError(
      f.canaries,
      "AccessControlUnauthorizedAccount",
    );
    await expect(f.settlement.connect(f.outsider).settleCanary(id)).to.be.revertedWithCustomError(
      f.settlement,
      "AccessControlUnauthorizedAccount",
    );
  });

  it("refuses to reveal before the verdict and after finalize; an empty pool cannot pay", async function () {
    const f = await loadFixture(courtFixture);
    const { id, verifier } = await committedCanary(f, connection, ALL_FAULTY);
    await expect(f.canaries.connect(f.admin).reveal(id, SECRET, ALL_FAULTY))
      .to.be.revertedWithCustomError(f.settlement, "SettlementNotAttested")
      .withArgs(id);
    await (await f.settlement.connect(verifier).attest(id, false, "r", REPORT_HASH)).wait();
    await expect(f.canaries.connect(f.admin).reveal(id, SECRET, ALL_FAULTY))
      .to.be.revertedWithCustomError(f.canaries, "CanariesPoolTooSmall")
      .withArgs(0n, 2n * f.params.verifierFee);
    await networkHelpers.time.increase(PROTOCOL.challengeWindow + 1n);
    await (await f.settlement.finalize(id)).wait();
    await expect(f.canaries.connect(f.admin).reveal(id, SECRET, ALL_FAULTY))
      .to.be.revertedWithCustomError(f.settlement, "SettlementAlreadyFinalized")
      .withArgs(id);
  });
});
