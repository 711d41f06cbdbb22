// The protocol's straight path (a pass pays node and verifier) and its fail path (a fail slashes
// the node), step by step, with the conservation invariant checked after every step.
import { expect } from "chai";
import { network } from "hardhat";
import {
  PROTOCOL,
  TOKEN,
  REWARD,
  FEE,
  FUNDING,
  deployFixture,
  jobFixture,
  jobParams,
  escrowOf,
  paramsTuple,
  digest,
  expectConservation,
  contributionIdFrom,
  executeNextAt,
  expectedSeed,
  verifierIndex,
  sampleIndices,
  signerOf,
  claimSubmitSeed,
  JobStatus,
  SlotStatus,
  ContributionStatus,
  Verdict,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

/** Attest pass and finalize once the challenge window has closed. */
async function passAndFinalize(f, id, verifier) {
  const receipt = await (await f.settlement.connect(verifier).attest(id, true, "bafy-report")).wait();
  await networkHelpers.mine(PROTOCOL.challengeWindow);
  await (await f.settlement.finalize(id)).wait();
  return BigInt(receipt.blockNumber);
}

describe("protocol: straight path", function () {
  it("stakes, escrows, claims, submits, seeds, attests, finalizes, pays, aggregates, completes", async function () {
    const f = await loadFixture(deployFixture);
    const { token, stakes, market, settlement, sponsor, node1, node2, verifier1, verifier2, outsider } = f;
    const marketAddr = await market.getAddress();
    const stakesAddr = await stakes.getAddress();
    const settlementAddr = await settlement.getAddress();
    expect(await expectConservation(f)).to.equal(0n);

    // -- stake: nodes and verifiers ------------------------------------------------------------
    const node1Stake = 150n * TOKEN;
    await expect(stakes.connect(node1).stake(node1Stake))
      .to.emit(stakes, "Staked")
      .withArgs(node1.address, node1Stake, node1Stake);
    expect(await token.balanceOf(stakesAddr)).to.equal(node1Stake);
    expect(await token.balanceOf(node1.address)).to.equal(FUNDING - node1Stake);
    expect(await stakes.stakeOf(node1.address)).to.equal(node1Stake);
    expect(await stakes.freeStakeOf(node1.address)).to.equal(node1Stake);
    await expectConservation(f);

    await (await stakes.connect(node2).stake(PROTOCOL.minNodeStake)).wait();
    await expectConservation(f);
    for (const v of [verifier1, verifier2]) {
      await (await stakes.connect(v).stake(PROTOCOL.minVerifierStake)).wait();
      await expect(stakes.connect(v).registerVerifier()).to.emit(stakes, "VerifierRegistered").withArgs(v.address);
      await expectConservation(f);
    }
    expect(await stakes.verifierCount()).to.equal(2n);
    expect(await stakes.verifierAt(0)).to.equal(verifier1.address);
    expect(await stakes.verifierAt(1)).to.equal(verifier2.address);

    // -- createJob: escrow moves from the sponsor to the market -------------------------------
    const params = jobParams();
    const escrow = escrowOf(params);
    expect(escrow).to.equal(2n * (REWARD + FEE));
    const sponsorBefore = await token.balanceOf(sponsor.address);
    const createTx = market.connect(sponsor).createJob(params, "bafy-spec", "bafy-g0");
    await expect(createTx)
      .to.emit(market, "JobCreated")
      .withArgs(1n, sponsor.address, paramsTuple(params), "bafy-spec", "bafy-g0", escrow);
    const createdBlock = BigInt((await (await createTx).wait()).blockNumber);
    expect(await token.balanceOf(sponsor.address)).to.equal(sponsorBefore - escrow);
    expect(await token.balanceOf(marketAddr)).to.equal(escrow);
    expect(await market.jobCount()).to.equal(1n);
    const state = await market.jobState(1n);
    expect(state.sponsor).to.equal(sponsor.address);
    expect(state.status).to.equal(JobStatus.Open);
    expect(state.currentRound).to.equal(0n);
    expect(state.escrow).to.equal(escrow);
    expect(state.currentModelDigest).to.equal(params.initialModelDigest);
    expect(state.createdBlock).to.equal(createdBlock); // where readers find JobCreated
    expect(await market.jobParams(1n)).to.deep.equal(paramsTuple(params));
    await expectConservation(f);

    // -- claimSlot: minNodeStake locked ---------------------------------------------------------
    const claimTx = market.connect(node1).claimSlot(1n, 0n, 0n);
    const claimBlock = BigInt(await ethers.provider.getBlockNumber()) + 1n;
    const claimDeadline = claimBlock + BigInt(params.claimTimeout);
    await expect(claimTx)
      .to.emit(market, "SlotClaimed")
      .withArgs(1n, 0n, 0n, node1.address, claimDeadline);
    await expect(claimTx)
      .to.emit(stakes, "StakeLocked")
      .withArgs(node1.address, PROTOCOL.minNodeStake, PROTOCOL.minNodeStake);
    expect(await stakes.lockedOf(node1.address)).to.equal(PROTOCOL.minNodeStake);
    expect(await stakes.freeStakeOf(node1.address)).to.equal(node1Stake - PROTOCOL.minNodeStake);
    let slot = await market.slotState(1n, 0n, 0n);
    expect(slot.node).to.equal(node1.address);
    expect(slot.deadline).to.equal(claimDeadline);
    expect(slot.status).to.equal(SlotStatus.Claimed);
    await expectConservation(f);

    // -- submitContribution ---------------------------------------------------------------------
    const outDigest = digest("output 1/0/0");
    const traceRoot = digest("trace 1/0/0");
    const submitTx = market
      .connect(node1)
      .submitContribution(1n, 0n, 0n, outDigest, traceRoot, "bafy-output", "bafy-manifest");
    await expect(submitTx)
      .to.emit(market, "ContributionSubmitted")
      .withArgs(1n, 1n, 0n, 0n, node1.address, outDigest, traceRoot, "bafy-output", "bafy-manifest");
    const submitBlock = BigInt((await (await submitTx).wait()).blockNumber);
    const c = await market.getContribution(1n);
    expect(c.node).to.equal(node1.address);
    expect(c.jobId).to.equal(1n);
    expect(c.round).to.equal(0n);
    expect(c.slot).to.equal(0n);
    expect(c.submitBlock).to.equal(submitBlock);
    expect(c.stakeLocked).to.equal(PROTOCOL.minNodeStake);
    expect(c.status).to.equal(ContributionStatus.Submitted);
    expect(c.outputDigest).to.equal(outDigest);
    expect(c.traceRoot).to.equal(traceRoot);
    slot = await market.slotState(1n, 0n, 0n);
    expect(slot.status).to.equal(SlotStatus.Submitted);
    expect(slot.contributionId).to.equal(1n);
    await expectConservation(f);

    // -- recordSeed (anyone, after the seed block): the seed and the drawn verifier -------------
    await networkHelpers.mine(); // block submitBlock + 1, the seed block
    const seed = await expectedSeed(ethers, submitBlock, 1n);
    const assigned = [verifier1, verifier2][Number(verifierIndex(seed, 2n))];
    const seedTx = settlement.connect(outsider).recordSeed(1n);
    await expect(seedTx)
      .to.emit(settlement, "SeedRecorded")
      .withArgs(1n, seed, submitBlock + 1n, assigned.address);
    const seedRecordedAt = BigInt((await (await seedTx).wait()).blockNumber);
    expect(seedRecordedAt).to.equal(submitBlock + 2n);
    let v = await settlement.verification(1n);
    expect(v.seed).to.equal(seed);
    expect(v.seedBlock).to.equal(submitBlock + 1n);
    expect(v.seedRecordedAt).to.equal(seedRecordedAt);
    expect(v.verifier).to.equal(assigned.address);
    expect(v.verdict).to.equal(Verdict.None);
    expect(await settlement.sampledSegments(1n)).to.deep.equal(
      sampleIndices(seed, params.numSegments, params.sampleCount),
    );
    await expectConservation(f);

    // -- attest pass ----------------------------------------------------------------------------
    const attestTx = settlement.connect(assigned).attest(1n, true, "bafy-report");
    await expect(attestTx).to.emit(settlement, "Attested").withArgs(1n, assigned.address, true, "bafy-report");
    const attestedAt = BigInt((await (await attestTx).wait()).blockNumber);
    v = await settlement.verification(1n);
    expect(v.verdict).to.equal(Verdict.Pass);
    expect(v.attestedAt).to.equal(attestedAt);
    await expectConservation(f);

    // -- finalize: only once block.number >= attestedAt + challengeWindow + 1 -------------------
    const readyBlock = attestedAt + PROTOCOL.challengeWindow + 1n;
    for (const offset of [PROTOCOL.challengeWindow - 1n, PROTOCOL.challengeWindow]) {
      await executeNextAt(ethers, networkHelpers, attestedAt + offset);
      await expect(settlement.finalize(1n))
        .to.be.revertedWithCustomError(settlement, "SettlementChallengeWindowOpen")
        .withArgs(1n, readyBlock);
    }
    await executeNextAt(ethers, networkHelpers, attestedAt + PROTOCOL.challengeWindow + 1n);
    const escrowBefore = (await market.jobState(1n)).escrow;
    const finalizeTx = settlement.connect(outsider).finalize(1n);
    await expect(finalizeTx).to.emit(settlement, "ContributionFinalized").withArgs(1n, true, REWARD, FEE, 0n);
    await expect(finalizeTx).to.emit(market, "ContributionSettled").withArgs(1n, true, REWARD, FEE);
    await expect(finalizeTx)
      .to.emit(stakes, "StakeUnlocked")
      .withArgs(node1.address, PROTOCOL.minNodeStake, 0n);
    expect((await (await finalizeTx).wait()).blockNumber).to.equal(Number(readyBlock));
    expect((await market.jobState(1n)).escrow).to.equal(escrowBefore - REWARD - FEE);
    expect(await token.balanceOf(marketAddr)).to.equal(escrow - REWARD - FEE);
    expect(await token.balanceOf(settlementAddr)).to.equal(REWARD + FEE);
    expect(await settlement.credits(node1.address)).to.equal(REWARD);
    expect(await settlement.credits(assigned.address)).to.equal(FEE);
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    expect(await stakes.stakeOf(node1.address)).to.equal(node1Stake);
    expect((await market.getContribution(1n)).status).to.equal(ContributionStatus.Accepted);
    expect((await market.slotState(1n, 0n, 0n)).status).to.equal(SlotStatus.Accepted);
    expect((await settlement.verification(1n)).finalized).to.equal(true);
    await expectConservation(f);

    // -- withdraw (pull payments) ---------------------------------------------------------------
    const nodeBal = await token.balanceOf(node1.address);
    await expect(settlement.connect(node1).withdraw()).to.emit(settlement, "CreditsWithdrawn").withArgs(node1.address, REWARD);
    expect(await token.balanceOf(node1.address)).to.equal(nodeBal + REWARD);
    expect(await settlement.credits(node1.address)).to.equal(0n);
    await expectConservation(f);
    const verBal = await token.balanceOf(assigned.address);
    await expect(settlement.connect(assigned).withdraw()).to.emit(settlement, "CreditsWithdrawn").withArgs(assigned.address, FEE);
    expect(await token.balanceOf(assigned.address)).to.equal(verBal + FEE);
    expect(await token.balanceOf(settlementAddr)).to.equal(0n);
    await expectConservation(f);

    // -- the round is not complete until every slot is accepted ----------------------------------
    await expect(market.connect(node1).postAggregate(1n, 0n, digest("G_1"), "bafy-g1", 2_345_678n))
      .to.be.revertedWithCustomError(market, "JobMarketRoundIncomplete")
      .withArgs(1n, 0n, 1n, 2n);

    // -- slot 1 by node2, through the helper ----------------------------------------------------
    const second = await claimSubmitSeed(f, connection, { node: node2, slot: 1n });
    await expectConservation(f);
    expect(second.id).to.equal(2n);
    await passAndFinalize(f, second.id, second.verifier);
    expect((await market.jobState(1n)).escrow).to.equal(0n);
    expect(await settlement.credits(node2.address)).to.equal(REWARD);
    expect(await stakes.lockedOf(node2.address)).to.equal(0n);
    await expectConservation(f);

    // -- postAggregate completes the (1-round) job ----------------------------------------------
    const aggTx = market.connect(node1).postAggregate(1n, 0n, digest("G_1"), "bafy-g1", 2_345_678n);
    await expect(aggTx)
      .to.emit(market, "RoundAggregated")
      .withArgs(1n, 0n, digest("G_1"), "bafy-g1", 2_345_678n, node1.address);
    await expect(aggTx).to.emit(market, "JobCompleted").withArgs(1n);
    expect(await market.aggregateBlock(1n, 0n)).to.equal((await (await aggTx).wait()).blockNumber);
    const done = await market.jobState(1n);
    expect(done.status).to.equal(JobStatus.Completed);
    expect(done.currentRound).to.equal(1n);
    expect(done.currentModelDigest).to.equal(digest("G_1"));
    await expectConservation(f);

    // -- refund: a completed job has paid every slot, so nothing is left to refund ---------------
    // (escrow = rounds * slots * (reward + fee) and completion needs every slot accepted).
    expect(await token.balanceOf(sponsor.address)).to.equal(sponsorBefore - escrow);
    await expect(market.connect(sponsor).refund(1n))
      .to.be.revertedWithCustomError(market, "JobMarketNothingToRefund")
      .withArgs(1n);

    // -- everyone leaves: unbond after the delay ------------------------------------------------
    const unbondTx = stakes.connect(node1).requestUnbond(node1Stake);
    const unbondBlock = BigInt(await ethers.provider.getBlockNumber()) + 1n;
    await expect(unbondTx)
      .to.emit(stakes, "UnbondRequested")
      .withArgs(node1.address, node1Stake, unbondBlock + PROTOCOL.unbondingDelay);
    await expectConservation(f);
    await executeNextAt(ethers, networkHelpers, unbondBlock + PROTOCOL.unbondingDelay);
    await expect(stakes.connect(node1).withdrawUnbonded())
      .to.emit(stakes, "UnbondWithdrawn")
      .withArgs(node1.address, node1Stake);
    await expectConservation(f);

    // No token was created or destroyed on the straight path.
    expect(await token.totalSupply()).to.equal(PROTOCOL.tokenSupply);
    // The first fee was withdrawn; the second one waits in credits for its verifier.
    expect(await settlement.credits(second.verifier.address)).to.equal(FEE);
    const fees = (await settlement.credits(verifier1.address)) + (await settlement.credits(verifier2.address));
    expect(fees).to.equal(FEE);
  });

  it("a 2-round job moves to round 1 after the first aggregate and completes after the second", async function () {
    const f = await loadFixture(jobFixture);
    const { market, settlement, sponsor, node1 } = f;
    const params = jobParams({ rounds: 2, slotsPerRound: 1 });
    await (await market.connect(sponsor).createJob(params, "bafy-spec2", "bafy-g0")).wait();
    const jobId = 2n;
    expect((await market.jobState(jobId)).escrow).to.equal(2n * (REWARD + FEE));

    const r0 = await claimSubmitSeed(f, connection, { node: node1, jobId, round: 0n, slot: 0n });
    await passAndFinalize(f, r0.id, r0.verifier);
    await expectConservation(f);
    const agg0 = market.connect(node1).postAggregate(jobId, 0n, digest("G_1"), "bafy-g1", 3_000_000n);
    await expect(agg0).to.emit(market, "RoundAggregated").withArgs(jobId, 0n, digest("G_1"), "bafy-g1", 3_000_000n, node1.address);
    await expect(agg0).to.not.emit(market, "JobCompleted");
    let state = await market.jobState(jobId);
    expect(state.status).to.equal(JobStatus.Open);
    expect(state.currentRound).to.equal(1n);
    expect(state.currentModelDigest).to.equal(digest("G_1"));

    // Round 0 is over: its slots cannot be claimed again, and round 1's slot is fresh.
    await expect(market.connect(node1).claimSlot(jobId, 0n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketWrongRound")
      .withArgs(jobId, 0n, 1n);
    expect((await market.slotState(jobId, 1n, 0n)).status).to.equal(SlotStatus.Open);

    const r1 = await claimSubmitSeed(f, connection, { node: node1, jobId, round: 1n, slot: 0n });
    await passAndFinalize(f, r1.id, r1.verifier);
    const agg1 = market.connect(node1).postAggregate(jobId, 1n, digest("G_2"), "bafy-g2", 2_000_000n);
    await expect(agg1).to.emit(market, "JobCompleted").withArgs(jobId);
    state = await market.jobState(jobId);
    expect(state.status).to.equal(JobStatus.Completed);
    expect(state.currentRound).to.equal(2n);
    expect(state.escrow).to.equal(0n);
    expect(await settlement.credits(node1.address)).to.equal(2n * REWARD);
    await expectConservation(f);
  });
});

describe("protocol: fail path", function () {
  it("a fail slashes the node's lock (half to the verifier, half burned) and reopens the slot", async function () {
    const f = await loadFixture(jobFixture);
    const { token, stakes, market, settlement, node1, node2 } = f;
    const stakesAddr = await stakes.getAddress();
    const settlementAddr = await settlement.getAddress();

    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1, slot: 0n });
    await expectConservation(f);
    const escrowBefore = (await market.jobState(1n)).escrow;
    const marketBalBefore = await token.balanceOf(await market.getAddress());
    const supplyBefore = await token.totalSupply();
    const stakesBalBefore = await token.balanceOf(stakesAddr);

    const attestTx = settlement.connect(verifier).attest(id, false, "bafy-fail-report");
    await expect(attestTx).to.emit(settlement, "Attested").withArgs(id, verifier.address, false, "bafy-fail-report");
    const attestedAt = BigInt((await (await attestTx).wait()).blockNumber);
    expect((await settlement.verification(id)).verdict).to.equal(Verdict.Fail);
    await expectConservation(f);

    // Still inside the challenge window: nothing moves.
    await executeNextAt(ethers, networkHelpers, attestedAt + PROTOCOL.challengeWindow);
    await expect(settlement.finalize(id))
      .to.be.revertedWithCustomError(settlement, "SettlementChallengeWindowOpen")
      .withArgs(id, attestedAt + PROTOCOL.challengeWindow + 1n);

    await executeNextAt(ethers, networkHelpers, attestedAt + PROTOCOL.challengeWindow + 1n);
    const stake = PROTOCOL.minNodeStake;
    const reward = (stake * PROTOCOL.slashRewardBps) / 10_000n;
    const burned = stake - reward;
    expect(reward).to.equal(50n * TOKEN);
    const tx = settlement.finalize(id);
    await expect(tx).to.emit(settlement, "ContributionFinalized").withArgs(id, false, 0n, reward, stake);
    await expect(tx).to.emit(market, "ContributionSettled").withArgs(id, false, 0n, 0n);
    await expect(tx)
      .to.emit(stakes, "StakeSlashed")
      .withArgs(node1.address, stake, settlementAddr, reward, burned);
    await expect(tx).to.not.emit(stakes, "StakeUnlocked");

    expect(await token.totalSupply()).to.equal(supplyBefore - burned);
    expect(await settlement.credits(verifier.address)).to.equal(reward);
    expect(await token.balanceOf(settlementAddr)).to.equal(reward);
    expect(await token.balanceOf(stakesAddr)).to.equal(stakesBalBefore - stake);
    expect(await stakes.stakeOf(node1.address)).to.equal(0n);
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    // The job's escrow is untouched.
    expect((await market.jobState(1n)).escrow).to.equal(escrowBefore);
    expect(await token.balanceOf(await market.getAddress())).to.equal(marketBalBefore);
    expect((await market.getContribution(id)).status).to.equal(ContributionStatus.Rejected);
    const slot = await market.slotState(1n, 0n, 0n);
    expect(slot.status).to.equal(SlotStatus.Open);
    expect(slot.node).to.equal(ethers.ZeroAddress);
    await expectConservation(f);

    // The slashed node has no stake left to claim with; another node takes the reopened slot.
    await expect(market.connect(node1).claimSlot(1n, 0n, 0n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(node1.address, 0n, PROTOCOL.minNodeStake);
    await expect(market.connect(node2).claimSlot(1n, 0n, 0n)).to.emit(market, "SlotClaimed");
    const outDigest = digest("honest output");
    const rx = await (
      await market.connect(node2).submitContribution(1n, 0n, 0n, outDigest, digest("honest trace"), "bafy-o", "bafy-m")
    ).wait();
    const id2 = contributionIdFrom(market, rx);
    expect(id2).to.equal(id + 1n);
    await networkHelpers.mine();
    await (await settlement.recordSeed(id2)).wait();
    const v2 = signerOf(f.signers, (await settlement.verification(id2)).verifier);
    await (await settlement.connect(v2).attest(id2, true, "bafy-ok")).wait();
    await networkHelpers.mine(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id2)).wait();
    expect((await market.slotState(1n, 0n, 0n)).status).to.equal(SlotStatus.Accepted);
    expect((await market.jobState(1n)).escrow).to.equal(escrowBefore - REWARD - FEE);
    expect(await settlement.credits(node2.address)).to.equal(REWARD);
    await expectConservation(f);

    // The verifier withdraws its slash reward (and fee, if it was drawn again).
    const owed = await settlement.credits(verifier.address);
    await expect(settlement.connect(verifier).withdraw())
      .to.emit(settlement, "CreditsWithdrawn")
      .withArgs(verifier.address, owed);
    await expectConservation(f);
  });

  it("slashing a registered verifier below the minimum removes it from the verifier set", async function () {
    const f = await loadFixture(jobFixture);
    const { stakes, settlement, node1, verifier1, verifier2 } = f;
    // node1's contribution is assigned to verifier1 or verifier2; then node1 also registers as a
    // verifier (its stake is exactly the minimum).
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1, slot: 0n });
    await (await stakes.connect(node1).registerVerifier()).wait();
    expect(await stakes.verifierCount()).to.equal(3n);
    await (await settlement.connect(verifier).attest(id, false, "r")).wait();
    await networkHelpers.mine(PROTOCOL.challengeWindow);
    const tx = settlement.finalize(id);
    await expect(tx).to.emit(stakes, "VerifierDeregistered").withArgs(node1.address);
    expect(await stakes.isVerifier(node1.address)).to.equal(false);
    expect(await stakes.verifierCount()).to.equal(2n);
    expect([await stakes.verifierAt(0), await stakes.verifierAt(1)]).to.have.members([
      verifier1.address,
      verifier2.address,
    ]);
    await expectConservation(f);
  });
});
