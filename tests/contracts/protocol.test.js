// The protocol's main paths, step by step, with the conservation invariant checked after every
// step: a pass pays node and verifier, a fail slashes the node, rounds aggregate (post ->
// challenge window -> final) until the job completes, and the sponsor gets every unspent token.
import { expect } from "chai";
import { network } from "hardhat";
import {
  PROTOCOL,
  TOKEN,
  REWARD,
  FEE,
  FUNDING,
  BPS,
  deployFixture,
  jobFixture,
  jobParams,
  escrowOf,
  paramsTuple,
  digest,
  expectConservation,
  contributionIdFrom,
  expectedSeed,
  drawOne,
  snapshotOf,
  REPORT_HASH,
  VERIFIER_TAG,
  sampleIndices,
  signerOf,
  claimSubmitSeed,
  JobStatus,
  SlotStatus,
  ContributionStatus,
  Verdict,
  Phase,
  AggregateStatus,
  timeOf,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

/** Attest and finalize once the challenge window has closed. */
async function attestAndFinalize(f, id, verifier, pass = true) {
  const receipt = await (await f.settlement.connect(verifier).attest(id, pass, "bafy-report", REPORT_HASH)).wait();
  await networkHelpers.time.increase(PROTOCOL.challengeWindow);
  await (await f.settlement.finalize(id)).wait();
  return BigInt(receipt.blockNumber);
}

/** Post an aggregate and finalize it after its window. */
async function aggregate(f, poster, round, label = `G_${round + 1n}`) {
  await (await f.market.connect(poster).postAggregate(1n, round, digest(label), `bafy-${label}`, 2_500_000n)).wait();
  await networkHelpers.time.increase(PROTOCOL.challengeWindow);
  return (await f.market.finalizeAggregate(1n, round)).wait();
}

describe("protocol: straight path", function () {
  it("stakes, escrows, claims, submits, seeds, attests, finalizes, pays, aggregates, completes, refunds", async function () {
    const f = await loadFixture(deployFixture);
    const { token, stakes, market, settlement, sponsor, node1, node2, verifier1, verifier2, outsider } = f;
    const stakesAddr = await stakes.getAddress();
    expect(await expectConservation(f)).to.equal(0n);

    // -- stake: nodes and verifiers ------------------------------------------------------------
    const node1Stake = 150n * TOKEN;
    await expect(stakes.connect(node1).stake(node1Stake))
      .to.emit(stakes, "Staked")
      .withArgs(node1.address, node1Stake, node1Stake);
    expect(await token.balanceOf(stakesAddr)).to.equal(node1Stake);
    expect(await stakes.freeStakeOf(node1.address)).to.equal(node1Stake);
    await (await stakes.connect(node2).stake(PROTOCOL.minNodeStake)).wait();
    for (const v of [verifier1, verifier2]) {
      await (await stakes.connect(v).stake(PROTOCOL.minVerifierStake)).wait();
      await expect(stakes.connect(v).registerVerifier()).to.emit(stakes, "VerifierRegistered").withArgs(v.address);
    }
    await expectConservation(f);
    expect(await stakes.verifierCount()).to.equal(2n);
    expect(await stakes.verifierAt(0)).to.equal(verifier1.address);
    expect(await stakes.isVerifier(verifier2.address)).to.equal(true);
    await networkHelpers.mine(PROTOCOL.drawLag + 1n); // the verifiers' warm-up

    // -- createJob: escrow moves from the sponsor into the vault ------------------------------
    const params = jobParams({ rounds: 2 });
    const escrow = escrowOf(params);
    expect(escrow).to.equal(4n * (REWARD + FEE));
    const createTx = market.connect(sponsor).createJob(params, "bafy-spec", "bafy-g0");
    await expect(createTx)
      .to.emit(market, "JobCreated")
      .withArgs(1n, sponsor.address, paramsTuple(params), "bafy-spec", "bafy-g0", escrow);
    await expect(createTx).to.emit(stakes, "EscrowDeposited").withArgs(sponsor.address, escrow, escrow);
    await expect(createTx).to.changeTokenBalances(ethers, token, [sponsor, stakes], [-escrow, escrow]);
    const job = await market.jobState(1n);
    expect([job.sponsor, job.status, job.currentRound, job.escrow, job.currentModelDigest]).to.deep.equal([
      sponsor.address,
      JobStatus.Open,
      0n,
      escrow,
      params.initialModelDigest,
    ]);
    expect(await stakes.escrowed()).to.equal(escrow);
    expect(await market.jobParams(1n)).to.deep.equal(paramsTuple(params));
    await expectConservation(f);

    for (const round of [0n, 1n]) {
      const ids = [];
      for (const [slot, node] of [
        [0n, node1],
        [1n, node2],
      ]) {
        // -- claim: locks minNodeStake ---------------------------------------------------------
        const claimRx = await (await market.connect(node).claimSlot(1n, round, slot)).wait();
        expect(await stakes.lockedOf(node.address)).to.equal(PROTOCOL.minNodeStake);
        const s = await market.slotState(1n, round, slot);
        expect([s.node, s.deadline, s.status]).to.deep.equal([
          node.address,
          (await timeOf(claimRx)) + BigInt(params.claimTimeout),
          SlotStatus.Claimed,
        ]);
        expect((await market.jobState(1n)).claimsOpen).to.equal(slot + 1n);
        // -- submit: digests stored, CIDs emitted ---------------------------------------------
        const out = digest(`out ${round}/${slot}`);
        const root = digest(`trace ${round}/${slot}`);
        const submitTx = market.connect(node).submitContribution(1n, round, slot, out, root, "bafy-out", "bafy-manifest");
        await expect(submitTx)
          .to.emit(market, "ContributionSubmitted")
          .withArgs(BigInt(ids.length) + 1n + round * 2n, 1n, round, slot, node.address, out, root, "bafy-out", "bafy-manifest");
        const rx = await (await submitTx).wait();
        const id = contributionIdFrom(market, rx);
        const c = await market.getContribution(id);
        expect([c.node, c.jobId, c.round, c.slot, c.submitBlock, c.stakeLocked, c.status, c.outputDigest, c.traceRoot]).to.deep.equal([
          node.address,
          1n,
          round,
          slot,
          BigInt(rx.blockNumber),
          PROTOCOL.minNodeStake,
          ContributionStatus.Submitted,
          out,
          root,
        ]);
        ids.push({ id, node, submitBlock: BigInt(rx.blockNumber) });
        await expectConservation(f);
      }

      for (const { id, node, submitBlock } of ids) {
        // -- recordSeed: from the block after the submission; draws and locks a verifier -------
        await networkHelpers.mine();
        const seed = await expectedSeed(ethers, submitBlock + 1n, id);
        // the stake-weighted draw from the submission block's snapshot, mirrored off-chain
        const snapshot = await snapshotOf(stakes, submitBlock);
        let expectedVerifier = drawOne(seed, VERIFIER_TAG, 0n, snapshot);
        for (let c = 1n; expectedVerifier === node.address || (await stakes.freeStakeOf(expectedVerifier)) < PROTOCOL.verifierLock; c++) {
          expectedVerifier = drawOne(seed, VERIFIER_TAG, c, snapshot);
        }
        expect(await stakes.drawTicket(seed, VERIFIER_TAG, submitBlock, 0n)).to.equal(drawOne(seed, VERIFIER_TAG, 0n, snapshot));
        await expect(settlement.connect(outsider).recordSeed(id))
          .to.emit(settlement, "SeedRecorded")
          .withArgs(id, seed, submitBlock + 1n, expectedVerifier);
        const v = await settlement.verification(id);
        expect([v.seed, v.seedBlock, v.verifier, v.verdict, v.finalized, v.phase]).to.deep.equal([
          seed,
          submitBlock + 1n,
          expectedVerifier,
          Verdict.None,
          false,
          Phase.Assigned,
        ]);
        expect(v.attestDeadline).to.equal(v.seedRecordedAt + PROTOCOL.attestWindow);
        expect(await stakes.lockedOf(expectedVerifier)).to.equal(PROTOCOL.verifierLock);
        const p = await market.jobParams(1n);
        expect(await settlement.sampledSegments(id)).to.deep.equal(sampleIndices(seed, p.numSegments, p.sampleCount));

        // -- attest pass, wait the challenge window, finalize: credits, locks released --------
        const verifier = signerOf(f.signers, expectedVerifier);
        const nodeCredits = await stakes.creditsOf(node.address);
        const verifierCredits = await stakes.creditsOf(verifier.address);
        await expect(settlement.connect(verifier).attest(id, true, "bafy-report", REPORT_HASH))
          .to.emit(settlement, "Attested")
          .withArgs(id, verifier.address, true, "bafy-report", REPORT_HASH);
        await networkHelpers.time.increase(PROTOCOL.challengeWindow);
        const finalizeTx = settlement.connect(outsider).finalize(id);
        await expect(finalizeTx).to.emit(settlement, "ContributionFinalized").withArgs(id, true, REWARD, FEE, 0n);
        await expect(finalizeTx).to.emit(market, "ContributionSettled").withArgs(id, true, REWARD, FEE);
        await expect(finalizeTx).to.emit(stakes, "Credited").withArgs(node.address, REWARD, nodeCredits + REWARD);
        await expect(finalizeTx).to.emit(stakes, "StakeUnlocked").withArgs(node.address, PROTOCOL.minNodeStake, 0n);
        await expect(finalizeTx).to.changeTokenBalances(ethers, token, [stakes, node, verifier], [0n, 0n, 0n]);
        expect(await stakes.creditsOf(node.address)).to.equal(nodeCredits + REWARD);
        expect(await stakes.creditsOf(verifier.address)).to.equal(verifierCredits + FEE);
        expect(await stakes.lockedOf(node.address)).to.equal(0n);
        expect((await market.getContribution(id)).status).to.equal(ContributionStatus.Accepted);
        expect((await settlement.verification(id)).finalized).to.equal(true);
        expect((await settlement.credits(node.address))).to.equal(nodeCredits + REWARD); // compatibility view
        await expectConservation(f);
      }
      expect((await market.jobState(1n)).acceptedInRound).to.equal(2n);
      expect((await market.jobState(1n)).claimsOpen).to.equal(0n);

      // -- aggregate: posted (bond locked) -> window -> final ------------------------------------
      const label = `G_${round + 1n}`;
      const postTx = market.connect(node1).postAggregate(1n, round, digest(label), `bafy-${label}`, 2_500_000n);
      const postRx = await (await postTx).wait();
      await expect(postTx)
        .to.emit(market, "AggregatePosted")
        .withArgs(1n, round, digest(label), `bafy-${label}`, 2_500_000n, node1.address, (await timeOf(postRx)) + PROTOCOL.challengeWindow);
      expect(await stakes.lockedOf(node1.address)).to.equal(PROTOCOL.disputeBond);
      const agg = await market.aggregateState(1n, round);
      expect([agg.status, agg.poster, agg.modelDigest, agg.modelCid]).to.deep.equal([
        AggregateStatus.Pending,
        node1.address,
        digest(label),
        `bafy-${label}`,
      ]);
      expect((await market.jobState(1n)).currentRound).to.equal(round); // not final yet
      await networkHelpers.time.increase(PROTOCOL.challengeWindow);
      const finalTx = market.connect(outsider).finalizeAggregate(1n, round);
      await expect(finalTx)
        .to.emit(market, "RoundAggregated")
        .withArgs(1n, round, digest(label), `bafy-${label}`, 2_500_000n, node1.address);
      const finalRx = await (await finalTx).wait();
      expect(await market.aggregateBlock(1n, round)).to.equal(BigInt(finalRx.blockNumber));
      expect(await stakes.lockedOf(node1.address)).to.equal(0n);
      const after = await market.jobState(1n);
      expect([after.currentRound, after.currentModelDigest, after.acceptedInRound]).to.deep.equal([round + 1n, digest(label), 0n]);
      if (round === 1n) {
        await expect(finalTx).to.emit(market, "JobCompleted").withArgs(1n);
        expect(after.status).to.equal(JobStatus.Completed);
      } else {
        expect(after.status).to.equal(JobStatus.Open);
      }
      await expectConservation(f);
    }

    // -- everything paid: escrow 0, nothing to refund; everyone withdraws ----------------------
    expect((await market.jobState(1n)).escrow).to.equal(0n);
    expect(await market.refundable(1n)).to.equal(0n);
    await expect(market.connect(sponsor).refund(1n)).to.be.revertedWithCustomError(market, "JobMarketNothingToRefund");
    for (const who of [node1, node2, verifier1, verifier2]) {
      const credit = await stakes.creditsOf(who.address);
      if (credit === 0n) continue;
      await expect(stakes.connect(who).withdraw()).to.changeTokenBalances(ethers, token, [who, stakes], [credit, -credit]);
      await expectConservation(f);
    }
    expect(await token.balanceOf(node1.address)).to.equal(FUNDING - node1Stake + 2n * REWARD);
    expect(await token.balanceOf(sponsor.address)).to.equal(FUNDING - escrow);
    expect(await token.balanceOf(stakesAddr)).to.equal(node1Stake + PROTOCOL.minNodeStake + 2n * PROTOCOL.minVerifierStake);

    // -- unbond: after the delay, stake leaves -------------------------------------------------
    const rx = await (await stakes.connect(node1).requestUnbond(node1Stake)).wait();
    expect(await stakes.unbondingOf(node1.address)).to.deep.equal([node1Stake, (await timeOf(rx)) + PROTOCOL.unbondingDelay]);
    await expectConservation(f);
    await networkHelpers.time.increase(PROTOCOL.unbondingDelay);
    await expect(stakes.connect(node1).withdrawUnbonded()).to.changeTokenBalances(ethers, token, [node1], [node1Stake]);
    await expectConservation(f);
  });
});

describe("protocol: fail path", function () {
  it("an undisputed fail slashes the node's lock: exactly the verifier fee to the verifier, the rest burned; the slot reopens", async function () {
    const f = await loadFixture(jobFixture);
    const { token, stakes, market, settlement, node1, node2 } = f;
    const supply = await token.totalSupply();
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    await (await settlement.connect(verifier).attest(id, false, "bafy-report", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    const slashed = PROTOCOL.minNodeStake;
    const reward = FEE; // what a pass would have paid: failing earns nothing extra (issue 13)
    const tx = settlement.finalize(id);
    await expect(tx).to.emit(settlement, "ContributionFinalized").withArgs(id, false, 0n, reward, slashed);
    await expect(tx).to.emit(market, "ContributionSettled").withArgs(id, false, 0n, 0n);
    await expect(tx)
      .to.emit(stakes, "StakeSlashed")
      .withArgs(node1.address, slashed, verifier.address, reward, 0n, 0n, slashed - reward);
    expect(await token.totalSupply()).to.equal(supply - (slashed - reward));
    expect(await stakes.stakeOf(node1.address)).to.equal(0n);
    expect(await stakes.lockedOf(verifier.address)).to.equal(0n);
    expect(await stakes.creditsOf(verifier.address)).to.equal(reward);
    expect((await market.getContribution(id)).status).to.equal(ContributionStatus.Rejected);
    const s = await market.slotState(1n, 0n, 0n);
    expect([s.node, s.status]).to.deep.equal([ethers.ZeroAddress, SlotStatus.Open]);
    expect((await market.jobState(1n)).escrow).to.equal(escrowOf(f.params)); // nothing paid
    await expectConservation(f);
    // the slot is redone by another node and paid
    const redo = await claimSubmitSeed(f, connection, { node: node2 });
    await attestAndFinalize(f, redo.id, redo.verifier);
    expect(await stakes.creditsOf(node2.address)).to.equal(REWARD);
    expect((await market.getContribution(id)).status).to.equal(ContributionStatus.Rejected);
    expect((await market.getContribution(redo.id)).status).to.equal(ContributionStatus.Accepted);
    await expectConservation(f);
  });

  it("each round starts from the previous round's final aggregate; a 3-round job completes", async function () {
    const f = await loadFixture(jobFixture);
    const { market, stakes, node1, node2, sponsor } = f;
    await (await market.connect(sponsor).createJob(jobParams({ rounds: 3, slotsPerRound: 1 }), "s", "g")).wait();
    await (await stakes.connect(node2).stake(PROTOCOL.disputeBond)).wait();
    for (let round = 0n; round < 3n; round++) {
      const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1, jobId: 2n, round });
      await attestAndFinalize(f, id, verifier);
      await (await market.connect(node2).postAggregate(2n, round, digest(`r${round}`), "cid", 1n)).wait();
      await networkHelpers.time.increase(PROTOCOL.challengeWindow);
      await (await market.finalizeAggregate(2n, round)).wait();
      expect((await market.jobState(2n)).currentModelDigest).to.equal(digest(`r${round}`));
    }
    expect((await market.jobState(2n)).status).to.equal(JobStatus.Completed);
    expect((await market.jobState(2n)).escrow).to.equal(0n);
    await expectConservation(f);
  });
});
