// Canaries (issue 18): a canary's trace root is sealed with its fault commitment (job, round,
// slot, node, secret, fault bitmap) where an honest node's is sealed with random bytes; once the
// verifier has attested, the reveal opens the seal, settles the contribution as a canary and
// judges the verdict: a lazy pass of a faulty sample is slashed, a right fail earns twice the fee
// from the pool, a right pass the fee; no escrow moves and the slot reopens. A trace root opens
// one way only, so the authority cannot pick the faults after the verdict.
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
  digest,
  sealedRoot,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

const SECRET = ethers.id("canary secret");
const ALL_FAULTY = [(1n << 8n) - 1n]; // the fixture job has 8 segments
const CHECKPOINTS_ROOT = digest("the canary's checkpoint tree");

async function pooled(conn) {
  const f = await courtFixture(conn);
  await (await f.token.connect(f.admin).approve(await f.canaries.getAddress(), 10n * TOKEN)).wait();
  await (await f.canaries.connect(f.admin).fund(10n * TOKEN)).wait();
  return f;
}

/** Submit a canary by `node` on `slot` whose trace root is sealed with `faults`. */
async function sealedCanary(f, conn, faults, { node = f.node3, slot = 0n, secret = SECRET } = {}) {
  const seal = await f.canaries.canarySeal(1n, 0n, slot, node.address, secret, faults);
  const traceRoot = sealedRoot(CHECKPOINTS_ROOT, seal);
  const out = await claimSubmitSeed(f, conn, { node, slot, traceRoot });
  return { ...out, seal };
}

/** The reveal of `id` by the authority with this opening. */
const reveal = (f, id, faults, { root = CHECKPOINTS_ROOT, secret = SECRET } = {}) =>
  f.canaries.connect(f.admin).reveal(id, root, secret, faults);

describe("canaries", function () {
  it("a lazy pass of a faulty canary is slashed; the slot reopens and no escrow moves", async function () {
    const f = await loadFixture(pooled);
    const { id, verifier } = await sealedCanary(f, connection, ALL_FAULTY);
    await (await f.settlement.connect(verifier).attest(id, true, "lazy", REPORT_HASH)).wait();
    const escrowBefore = (await f.market.jobState(1n)).escrow;
    const stakeBefore = await f.stakes.stakeOf(verifier.address);
    const rx = await (await reveal(f, id, ALL_FAULTY)).wait();
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
    const caught = await sealedCanary(f, connection, ALL_FAULTY);
    await (await f.settlement.connect(caught.verifier).attest(caught.id, false, "r", REPORT_HASH)).wait();
    const credits = await f.stakes.creditsOf(caught.verifier.address);
    await expect(reveal(f, caught.id, ALL_FAULTY))
      .to.emit(f.canaries, "CanaryRevealed")
      .withArgs(caught.id, caught.verifier.address, true, true, 2n * f.params.verifierFee, 0n);
    expect(await f.stakes.creditsOf(caught.verifier.address)).to.equal(credits + 2n * f.params.verifierFee);
    expect(await f.stakes.lockedOf(caught.verifier.address)).to.equal(0n);

    // a clean canary (no faults) on slot 1: the right verdict is pass
    const secret = ethers.id("second");
    const clean = await sealedCanary(f, connection, [0n], { node: f.node2, slot: 1n, secret });
    await (await f.settlement.connect(clean.verifier).attest(clean.id, true, "r", REPORT_HASH)).wait();
    await expect(reveal(f, clean.id, [0n], { secret }))
      .to.emit(f.canaries, "CanaryRevealed")
      .withArgs(clean.id, clean.verifier.address, false, true, f.params.verifierFee, 0n);
    expect(await f.canaries.pool()).to.equal(10n * TOKEN - 3n * f.params.verifierFee);
    await expectConservation(f);
  });

  it("a fail of a clean canary is slashed too (failing everything does not pay)", async function () {
    const f = await loadFixture(pooled);
    const { id, verifier } = await sealedCanary(f, connection, [0n]);
    await (await f.settlement.connect(verifier).attest(id, false, "r", REPORT_HASH)).wait();
    await expect(reveal(f, id, [0n]))
      .to.emit(f.canaries, "CanaryRevealed")
      .withArgs(id, verifier.address, false, false, 0n, PROTOCOL.verifierLock);
  });

  it("a trace root opens one way only: no other faults, secret, root, slot or node; no honest trace", async function () {
    // The attack this closes: an authority holding two openings of one canary (faulty, clean)
    // would open whichever makes an honest verdict wrong. The seal is inside the trace root the
    // node submitted before the seed, and keccak256(abi.encode(domain, root, seal)) has one preimage.
    const f = await loadFixture(pooled);
    const { id, verifier } = await sealedCanary(f, connection, ALL_FAULTY);
    await (await f.settlement.connect(verifier).attest(id, false, "honest fail", REPORT_HASH)).wait();
    for (const [faults, opts] of [
      [[0n], {}], // "it was clean": would make the honest fail wrong
      [[1n], {}], // another fault set
      [ALL_FAULTY, { secret: ethers.id("another secret") }],
      [ALL_FAULTY, { root: digest("another checkpoint tree") }],
      [[], {}],
    ]) {
      await expect(reveal(f, id, faults, opts)).to.be.revertedWithCustomError(f.canaries, "CanariesSealMismatch");
    }
    // a seal made for another slot or another node does not open this contribution either
    const otherSlot = await f.canaries.canarySeal(1n, 0n, 1n, f.node3.address, SECRET, ALL_FAULTY);
    const otherNode = await f.canaries.canarySeal(1n, 0n, 0n, f.node2.address, SECRET, ALL_FAULTY);
    expect(sealedRoot(CHECKPOINTS_ROOT, otherSlot)).to.not.equal((await f.market.getContribution(id)).traceRoot);
    expect(sealedRoot(CHECKPOINTS_ROOT, otherNode)).to.not.equal((await f.market.getContribution(id)).traceRoot);
    await expect(f.canaries.connect(f.outsider).reveal(id, CHECKPOINTS_ROOT, SECRET, ALL_FAULTY)).to.be.revertedWithCustomError(
      f.canaries,
      "AccessControlUnauthorizedAccount",
    );
    await expect(f.settlement.connect(f.outsider).settleCanary(id)).to.be.revertedWithCustomError(
      f.settlement,
      "AccessControlUnauthorizedAccount",
    );
    // the one true opening settles it, once
    await expect(reveal(f, id, ALL_FAULTY)).to.emit(f.canaries, "CanaryRevealed");
    await expect(reveal(f, id, ALL_FAULTY)).to.be.revert(ethers);

    // an honest node's trace (random seal) cannot be revealed as a canary
    const honest = await claimSubmitSeed(f, connection, { node: f.node2, slot: 1n, traceRoot: sealedRoot(CHECKPOINTS_ROOT, digest("random")) });
    await (await f.settlement.connect(honest.verifier).attest(honest.id, true, "r", REPORT_HASH)).wait();
    await expect(reveal(f, honest.id, [0n])).to.be.revertedWithCustomError(f.canaries, "CanariesSealMismatch");
  });

  it("refuses to reveal before the verdict and after finalize; an empty pool cannot pay", async function () {
    const f = await loadFixture(courtFixture);
    const { id, verifier } = await sealedCanary(f, connection, ALL_FAULTY);
    await expect(reveal(f, id, ALL_FAULTY))
      .to.be.revertedWithCustomError(f.settlement, "SettlementNotAttested")
      .withArgs(id);
    await (await f.settlement.connect(verifier).attest(id, false, "r", REPORT_HASH)).wait();
    await expect(reveal(f, id, ALL_FAULTY))
      .to.be.revertedWithCustomError(f.canaries, "CanariesPoolTooSmall")
      .withArgs(0n, 2n * f.params.verifierFee);
    await networkHelpers.time.increase(PROTOCOL.challengeWindow + 1n);
    await (await f.settlement.finalize(id)).wait();
    await expect(reveal(f, id, ALL_FAULTY))
      .to.be.revertedWithCustomError(f.settlement, "SettlementAlreadyFinalized")
      .withArgs(id);
  });
});
