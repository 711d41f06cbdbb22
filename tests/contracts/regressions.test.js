// Regressions: behaviour found missing in review, each reproduced as the old code allowed it and
// shown fixed here.
import { expect } from "chai";
import { network } from "hardhat";
import {
  PROTOCOL,
  TOKEN,
  REWARD,
  deployFixture,
  jobFixture,
  courtFixture,
  jobParams,
  digest,
  escrowOf,
  contributionIdFrom,
  expectConservation,
  claimSubmitSeed,
  attested,
  disputeAndDraw,
  Ruling,
  AggregateStatus,
  REPORT_HASH,
} from "./helpers.js";

const connection = await network.create();
const { networkHelpers } = connection;
const { loadFixture } = networkHelpers;

describe("regressions of issues found in review", function () {
  // JobMarket.claimSlot stores `uint40(block.number + claimTimeout)`: an unbounded timeout wrapped.
  it("a claim timeout that does not fit the stored deadline is refused", async function () {
    const { market, sponsor } = await loadFixture(jobFixture);
    await expect(market.connect(sponsor).createJob(jobParams({ claimTimeout: 2n ** 40n }), "s", "g"))
      .to.be.revertedWithCustomError(market, "JobMarketInvalidParams")
      .withArgs("claimTimeout");
  });

  // recordSeed drew from all registered verifiers without excluding the node.
  it("a node is never assigned as the verifier of its own contribution", async function () {
    const f = await loadFixture(deployFixture);
    const { stakes, market, settlement, sponsor, node1, verifier1 } = f;
    await (await stakes.connect(node1).stake(20n * PROTOCOL.minNodeStake)).wait();
    await (await stakes.connect(node1).registerVerifier()).wait();
    await (await stakes.connect(verifier1).stake(10n * PROTOCOL.minVerifierStake)).wait();
    await (await stakes.connect(verifier1).registerVerifier()).wait();
    await networkHelpers.mine(PROTOCOL.drawLag + 1n); // warm-up
    await (await market.connect(sponsor).createJob(jobParams({ slotsPerRound: 16 }), "s", "g")).wait();
    for (let slot = 0n; slot < 16n; slot++) {
      await (await market.connect(node1).claimSlot(1n, 0n, slot)).wait();
      const rx = await (
        await market.connect(node1).submitContribution(1n, 0n, slot, digest("o"), digest("t"), "o", "m")
      ).wait();
      const id = contributionIdFrom(market, rx);
      await networkHelpers.mine();
      await (await settlement.recordSeed(id)).wait();
      expect((await settlement.verification(id)).verifier, `contribution ${id}`).to.equal(verifier1.address);
    }
  });

  // (a) A contribution stayed open forever when its verifier never attested (and the node's stake
  // stayed locked with it).
  it("(a) a verifier that never attests is slashed and the contribution settles through another", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, stakes, verifiers, node1 } = f;
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    await networkHelpers.time.increase(PROTOCOL.attestWindow);
    await expect(settlement.connect(verifier).attest(id, true, "late", REPORT_HASH)).to.be.revertedWithCustomError(
      settlement,
      "SettlementAttestWindowClosed",
    );
    await (await settlement.requestTakeover(id)).wait();
    await networkHelpers.mine();
    await (await settlement.assignVerifier(id)).wait();
    const assigned = (await settlement.verification(id)).verifier;
    const other = verifiers.find((v) => v.address === assigned);
    expect(assigned).to.not.equal(verifier.address);
    await (await settlement.connect(other).attest(id, true, "r", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    expect(await stakes.stakeOf(verifier.address)).to.equal(200n * TOKEN - PROTOCOL.verifierLock);
    await expectConservation(f);
  });

  // (a') An expired claim kept its node's stake locked until someone else claimed the slot.
  it("(a') an expired claim's lock is released by anyone, without a new claim", async function () {
    const f = await loadFixture(jobFixture);
    const { market, stakes, node1, outsider } = f;
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    await networkHelpers.mine(BigInt(f.params.claimTimeout) + 1n);
    await (await market.connect(outsider).expireClaim(1n, 0n, 0n)).wait();
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
  });

  // (b) A sponsor could neither cancel an abandoned job nor get its escrow back before completion.
  it("(b) a sponsor cancels a job nobody works on and gets all of the escrow back", async function () {
    const f = await loadFixture(jobFixture);
    const { market, token, sponsor } = f;
    const before = await token.balanceOf(sponsor.address);
    await (await market.connect(sponsor).cancelJob(1n)).wait();
    await (await market.connect(sponsor).refund(1n)).wait();
    expect(await token.balanceOf(sponsor.address)).to.equal(before + escrowOf(f.params));
    await expectConservation(f);
  });

  // (c) A verifier earned half the node's stake for a false "fail" with no risk to itself.
  it("(c) a false fail costs the verifier its lock once the node contests and the committee agrees", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, disputes, node1 } = f;
    const { id, verifier } = await attested(f, connection, { node: node1, pass: false });
    const d = await disputeAndDraw(f, connection, id, node1);
    for (const m of d.members) await (await disputes.connect(m).vote(d.disputeId, true, "r")).wait();
    await networkHelpers.time.increase(PROTOCOL.voteWindow);
    await expect(disputes.resolve(d.disputeId)).to.emit(disputes, "DisputeResolved").withArgs(d.disputeId, Ruling.Valid, 3n, 0n, 0n);
    expect(await stakes.stakeOf(verifier.address)).to.equal(200n * TOKEN - PROTOCOL.verifierLock);
    expect(await stakes.creditsOf(verifier.address)).to.equal(0n);
    expect(await stakes.creditsOf(node1.address)).to.be.greaterThan(REWARD);
    await expectConservation(f);
  });

  // (d) postAggregate accepted the first staked caller's digest unchallenged, and the round moved on.
  it("(d) a posted aggregate is only a proposal until its challenge window passes undisputed", async function () {
    const f = await loadFixture(courtFixture);
    const { market, settlement, disputes, node1, node2, node3 } = f;
    for (const [slot, node] of [
      [0n, node1],
      [1n, node2],
    ]) {
      const { id } = await attested(f, connection, { node, slot, pass: true });
      await networkHelpers.time.increase(PROTOCOL.challengeWindow);
      await (await settlement.finalize(id)).wait();
    }
    await (await market.connect(node1).postAggregate(1n, 0n, digest("garbage"), "g", 1n)).wait();
    expect((await market.jobState(1n)).currentRound).to.equal(0n);
    expect((await market.jobState(1n)).currentModelDigest).to.equal(f.params.initialModelDigest);
    await (await disputes.connect(node3).challengeAggregate(1n, 0n, digest("G_1"), "g1", 1n)).wait();
    expect((await market.aggregateState(1n, 0n)).status).to.equal(AggregateStatus.Disputed);
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await expect(market.finalizeAggregate(1n, 0n)).to.be.revertedWithCustomError(market, "JobMarketNoPendingAggregate");
  });
});
