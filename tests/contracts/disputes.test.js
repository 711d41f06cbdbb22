// Full dispute flows: contests of fails, challenges of passes and of aggregates, committees drawn
// from a fresh seed that never include a party, votes, rulings, slashes split between winner,
// majority voters and the burn; plus the missed-attestation takeover.
import { expect } from "chai";
import { network } from "hardhat";
import {
  PROTOCOL,
  TOKEN,
  REWARD,
  FEE,
  BPS,
  courtFixture,
  jobParams,
  digest,
  escrowOf,
  expectConservation,
  eventArgs,
  signerOf,
  attested,
  claimSubmitSeed,
  disputeAndDraw,
  ContributionStatus,
  SlotStatus,
  Phase,
  AggregateStatus,
  DisputeKind,
  DisputeStatus,
  Ruling,
  JobStatus,
  REPORT_HASH,
  timeOf,
  MAX_ESCALATIONS,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

/** What one slash of `amount` pays: the winner's share, each voter's share, the burn. */
function split(amount, voters, withWinner = true) {
  const winner = withWinner ? (amount * PROTOCOL.slashRewardBps) / BPS : 0n;
  const each = voters === 0n ? 0n : (amount * PROTOCOL.committeeRewardBps) / BPS / voters;
  return { winner, each, burned: amount - winner - each * voters };
}

/** Every member votes `valid`; then the window passes and anyone resolves. */
async function voteAllAndResolve(f, d, valid) {
  for (const m of d.members) await (await f.disputes.connect(m).vote(d.disputeId, valid, "bafy-vote")).wait();
  await networkHelpers.time.increase(PROTOCOL.voteWindow);
  return f.disputes.connect(f.outsider).resolve(d.disputeId);
}

async function snapshot(f, who) {
  const out = {};
  for (const w of who) {
    out[w.address] = {
      staked: await f.stakes.stakeOf(w.address),
      locked: await f.stakes.lockedOf(w.address),
      credits: await f.stakes.creditsOf(w.address),
    };
  }
  return out;
}

describe("disputes: committees", function () {
  it("a committee is drawn from a block after the dispute, never includes a party, and locks each seat", async function () {
    const f = await loadFixture(courtFixture);
    const { disputes, stakes, node1, node2 } = f;
    const { id, verifier, attestedBlock } = await attested(f, connection, { node: node1, pass: true });
    const rx = await (await disputes.connect(node2).disputeContribution(id)).wait();
    const opened = eventArgs(disputes, rx, "DisputeOpened");
    expect([opened.kind, opened.contributionId, opened.disputer, opened.defendant, opened.seedBlock]).to.deep.equal([
      DisputeKind.Challenge,
      id,
      node2.address,
      verifier.address,
      BigInt(rx.blockNumber) + 1n,
    ]);
    expect(attestedBlock).to.be.lessThan(BigInt(rx.blockNumber));
    await expect(disputes.drawCommittee(opened.disputeId))
      .to.be.revertedWithCustomError(disputes, "DisputesSeedNotReady")
      .withArgs(opened.disputeId, BigInt(rx.blockNumber) + 1n);
    await networkHelpers.mine();
    const drawRx = await (await disputes.drawCommittee(opened.disputeId)).wait();
    const drawn = eventArgs(disputes, drawRx, "CommitteeDrawn");
    const seedHash = (await ethers.provider.getBlock(Number(opened.seedBlock))).hash;
    const coder = ethers.AbiCoder.defaultAbiCoder();
    expect(drawn.seed).to.equal(ethers.keccak256(coder.encode(["bytes32", "uint256"], [seedHash, opened.disputeId])));
    expect(drawn.members.length).to.equal(Number(PROTOCOL.committeeSize));
    expect(new Set(drawn.members).size).to.equal(drawn.members.length);
    for (const m of drawn.members) {
      expect([node1.address, node2.address, verifier.address]).to.not.include(m);
      expect(await stakes.isVerifier(m)).to.equal(true);
    }
    for (const m of drawn.members) {
      const expected = m === verifier.address ? 2n * PROTOCOL.verifierLock : PROTOCOL.verifierLock;
      expect(await stakes.lockedOf(m)).to.equal(expected);
    }
    const view = await disputes.dispute(opened.disputeId);
    expect([view.status, view.voteDeadline, view.members]).to.deep.equal([
      DisputeStatus.Voting,
      (await timeOf(drawRx)) + PROTOCOL.voteWindow,
      drawn.members,
    ]);
    await expectConservation(f);
  });

  it("over many disputes, no member is ever the node, the verifier or the disputer", async function () {
    const f = await loadFixture(courtFixture);
    const { market, disputes, stakes, sponsor, node1, node2, node3, verifiers } = f;
    await (await market.connect(sponsor).createJob(jobParams({ slotsPerRound: 6 }), "s", "g")).wait();
    // six open disputes hold 6 x (1 assignment + 3 seats) locks: give every verifier room for them
    for (const v of verifiers) await (await stakes.connect(v).stake(1_000n * TOKEN)).wait();
    for (let slot = 0n; slot < 6n; slot++) {
      const node = [node1, node2, node3][Number(slot % 3n)];
      const challenger = [node2, node3, node1][Number(slot % 3n)];
      const { id, verifier } = await attested(f, connection, { node, jobId: 2n, slot, pass: true });
      const d = await disputeAndDraw(f, connection, id, challenger);
      expect(d.members.length).to.equal(3);
      for (const m of d.members) expect([node.address, challenger.address, verifier.address]).to.not.include(m.address);
      const view = await disputes.dispute(d.disputeId);
      expect([view.node, view.disputer, view.defendant]).to.deep.equal([node.address, challenger.address, verifier.address]);
    }
  });

  it("with nobody eligible the committee is empty, the dispute escalates twice, then is Undecided: the slot is redone, nobody slashed", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, disputes, settlement, market, node1, verifiers } = f;
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    // everyone but the assigned verifier leaves the set, and the cooldown (drawLag) passes
    for (const v of verifiers) if (v.address !== verifier.address) await (await stakes.connect(v).deregisterVerifier()).wait();
    await networkHelpers.mine(PROTOCOL.drawLag + 1n);
    await (await settlement.connect(verifier).attest(id, false, "bafy-report", REPORT_HASH)).wait();
    const d = await disputeAndDraw(f, connection, id, node1);
    expect(d.members).to.deep.equal([]);
    for (let round = 1n; round <= MAX_ESCALATIONS; round++) {
      await networkHelpers.time.increase(round * PROTOCOL.voteWindow);
      await expect(disputes.resolve(d.disputeId)).to.emit(disputes, "DisputeEscalated").withArgs(d.disputeId, round, 0n, BigInt(await ethers.provider.getBlockNumber()) + 2n);
      await networkHelpers.mine();
      const rx = await (await disputes.drawCommittee(d.disputeId)).wait();
      expect(eventArgs(disputes, rx, "CommitteeDrawn").members).to.deep.equal([]);
    }
    await networkHelpers.time.increase((MAX_ESCALATIONS + 1n) * PROTOCOL.voteWindow);
    const tx = disputes.resolve(d.disputeId);
    await expect(tx).to.emit(disputes, "DisputeResolved").withArgs(d.disputeId, Ruling.Undecided, 0n, 0n, 0n);
    // Undecided: redo the slot, no slash; the node's lock and bond come back
    expect(await stakes.stakeOf(node1.address)).to.equal(300n * TOKEN);
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    expect(await stakes.lockedOf(verifier.address)).to.equal(0n);
    expect((await settlement.verification(id)).phase).to.equal(Phase.Rejected);
    expect((await market.slotState(1n, 0n, 0n)).status).to.equal(SlotStatus.Open);
    await expectConservation(f);
  });
});

describe("disputes: a fail contested by the node", function () {
  it("a cheating node that contests loses its claim lock and its bond; the accuser and the majority are paid", async function () {
    const f = await loadFixture(courtFixture);
    const { token, stakes, market, settlement, disputes, node1 } = f;
    const { id, verifier } = await attested(f, connection, { node: node1, pass: false });
    const open = disputes.connect(node1).disputeContribution(id);
    await expect(open).to.emit(settlement, "VerdictDisputed").withArgs(id, 1n, node1.address);
    await expect(open).to.emit(stakes, "StakeLocked").withArgs(node1.address, PROTOCOL.disputeBond, PROTOCOL.minNodeStake + PROTOCOL.disputeBond);
    const rx = await (await open).wait();
    const disputeId = eventArgs(disputes, rx, "DisputeOpened").disputeId;
    expect((await settlement.verification(id)).phase).to.equal(Phase.Disputed);
    await expect(settlement.finalize(id)).to.be.revertedWithCustomError(settlement, "SettlementUnderDispute").withArgs(id);
    await networkHelpers.mine();
    const drawRx = await (await disputes.drawCommittee(disputeId)).wait();
    const members = eventArgs(disputes, drawRx, "CommitteeDrawn").members.map((a) => signerOf(f.signers, a));
    const before = await snapshot(f, [node1, verifier, ...members]);
    const supply = await token.totalSupply();
    const tx = await voteAllAndResolve(f, { disputeId, members }, false);
    await expect(tx).to.emit(disputes, "DisputeResolved").withArgs(disputeId, Ruling.Invalid, 0n, 3n, 0n);
    const lock = split(PROTOCOL.minNodeStake, 3n);
    const bond = split(PROTOCOL.disputeBond, 3n);
    await expect(tx)
      .to.emit(settlement, "ContributionFinalized")
      .withArgs(id, false, 0n, lock.winner, PROTOCOL.minNodeStake);
    // node: claim lock and bond gone
    expect(await stakes.stakeOf(node1.address)).to.equal(before[node1.address].staked - PROTOCOL.minNodeStake - PROTOCOL.disputeBond);
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    // accuser: both winner shares, its assignment lock back
    expect(await stakes.creditsOf(verifier.address)).to.equal(before[verifier.address].credits + lock.winner + bond.winner);
    expect(await stakes.lockedOf(verifier.address)).to.equal(0n);
    // majority voters: their share of both slashes, their seats back
    for (const m of members) {
      expect(await stakes.creditsOf(m.address)).to.equal(before[m.address].credits + lock.each + bond.each);
      expect(await stakes.lockedOf(m.address)).to.equal(0n);
    }
    expect(await token.totalSupply()).to.equal(supply - lock.burned - bond.burned);
    expect((await market.getContribution(id)).status).to.equal(ContributionStatus.Rejected);
    expect((await market.slotState(1n, 0n, 0n)).status).to.equal(SlotStatus.Open);
    const view = await disputes.dispute(disputeId);
    expect([view.status, view.ruling, view.invalidVotes]).to.deep.equal([DisputeStatus.Resolved, Ruling.Invalid, 3n]);
    await expectConservation(f);
  });

  it("an honest node falsely failed wins the vote: the accuser is slashed, the node is paid, the fee is not", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, market, settlement, disputes, node1, node2, sponsor } = f;
    const { id, verifier } = await attested(f, connection, { node: node1, pass: false });
    const d = await disputeAndDraw(f, connection, id, node1);
    const before = await snapshot(f, [node1, verifier, ...d.members]);
    // two vote valid, one does not vote at all
    for (const m of d.members.slice(0, 2)) await (await disputes.connect(m).vote(d.disputeId, true, "bafy-vote")).wait();
    expect(await disputes.voteOf(d.disputeId, d.members[0].address)).to.deep.equal([true, true]);
    expect(await disputes.voteOf(d.disputeId, d.members[2].address)).to.deep.equal([false, false]);
    await networkHelpers.time.increase(PROTOCOL.voteWindow);
    const tx = disputes.resolve(d.disputeId);
    await expect(tx).to.emit(disputes, "DisputeResolved").withArgs(d.disputeId, Ruling.Valid, 2n, 0n, 1n);
    const lock = split(PROTOCOL.verifierLock, 2n);
    await expect(tx).to.emit(settlement, "ContributionFinalized").withArgs(id, true, REWARD, 0n, PROTOCOL.verifierLock);
    await expect(tx).to.emit(market, "ContributionSettled").withArgs(id, true, REWARD, 0n);
    await (await tx).wait();
    // node: paid the reward and the winner's share of the accuser's lock; lock and bond released
    expect(await stakes.creditsOf(node1.address)).to.equal(before[node1.address].credits + REWARD + lock.winner);
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    expect(await stakes.stakeOf(node1.address)).to.equal(before[node1.address].staked);
    // accuser: its lock is gone, no fee
    expect(await stakes.stakeOf(verifier.address)).to.equal(before[verifier.address].staked - PROTOCOL.verifierLock);
    expect(await stakes.creditsOf(verifier.address)).to.equal(before[verifier.address].credits);
    expect(await stakes.lockedOf(verifier.address)).to.equal(0n);
    // the two voters are paid; the absent member loses its seat lock
    for (const m of d.members.slice(0, 2)) expect(await stakes.creditsOf(m.address)).to.equal(before[m.address].credits + lock.each);
    const absent = d.members[2];
    expect(await stakes.stakeOf(absent.address)).to.equal(before[absent.address].staked - PROTOCOL.verifierLock);
    expect((await market.getContribution(id)).status).to.equal(ContributionStatus.Accepted);
    // the withheld fee stays in escrow and returns to the sponsor once the job is over
    const other = await attested(f, connection, { node: node2, slot: 1n, pass: true });
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(other.id)).wait();
    await (await market.connect(node2).postAggregate(1n, 0n, digest("G_1"), "cid", 1n)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await market.finalizeAggregate(1n, 0n)).wait();
    expect((await market.jobState(1n)).status).to.equal(JobStatus.Completed);
    expect(await market.refundable(1n)).to.equal(FEE);
    await expect(market.connect(sponsor).refund(1n)).to.emit(market, "EscrowRefunded").withArgs(1n, sponsor.address, FEE);
    await expectConservation(f);
  });

  it("a tie is Undecided: the slot is redone, nobody is slashed, the bond comes back", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, disputes, settlement, node1 } = f;
    const { id, verifier } = await attested(f, connection, { node: node1, pass: false });
    const d = await disputeAndDraw(f, connection, id, node1);
    const before = await snapshot(f, [node1, verifier]);
    await (await disputes.connect(d.members[0]).vote(d.disputeId, true, "a")).wait();
    await (await disputes.connect(d.members[1]).vote(d.disputeId, false, "b")).wait();
    await networkHelpers.time.increase(PROTOCOL.voteWindow);
    const tx = disputes.resolve(d.disputeId);
    await expect(tx).to.emit(disputes, "DisputeResolved").withArgs(d.disputeId, Ruling.Undecided, 1n, 1n, 1n);
    await expect(tx).to.emit(settlement, "ContributionFinalized").withArgs(id, false, 0n, 0n, 0n);
    expect(await stakes.stakeOf(node1.address)).to.equal(before[node1.address].staked);
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    expect(await stakes.creditsOf(verifier.address)).to.equal(before[verifier.address].credits);
    expect(await stakes.lockedOf(verifier.address)).to.equal(0n);
    for (const m of d.members.slice(0, 2)) expect(await stakes.lockedOf(m.address)).to.equal(0n);
    await expectConservation(f);
  });
});

describe("disputes: a pass challenged by a third party", function () {
  it("a lazy pass: node and verifier both lose their locks to the challenger", async function () {
    const f = await loadFixture(courtFixture);
    const { token, stakes, market, disputes, node1, node3 } = f;
    const { id, verifier } = await attested(f, connection, { node: node1, pass: true });
    const d = await disputeAndDraw(f, connection, id, node3);
    const before = await snapshot(f, [node1, node3, verifier, ...d.members]);
    const supply = await token.totalSupply();
    const tx = await voteAllAndResolve(f, d, false);
    await expect(tx).to.emit(disputes, "DisputeResolved").withArgs(d.disputeId, Ruling.Invalid, 0n, 3n, 0n);
    const nodeSlash = split(PROTOCOL.minNodeStake, 3n);
    const verifierSlash = split(PROTOCOL.verifierLock, 3n);
    expect(await stakes.stakeOf(node1.address)).to.equal(before[node1.address].staked - PROTOCOL.minNodeStake);
    expect(await stakes.stakeOf(verifier.address)).to.equal(before[verifier.address].staked - PROTOCOL.verifierLock);
    expect(await stakes.creditsOf(node3.address)).to.equal(before[node3.address].credits + nodeSlash.winner + verifierSlash.winner);
    expect(await stakes.lockedOf(node3.address)).to.equal(0n); // bond back
    for (const m of d.members) {
      expect(await stakes.creditsOf(m.address)).to.equal(before[m.address].credits + nodeSlash.each + verifierSlash.each);
    }
    expect(await token.totalSupply()).to.equal(supply - nodeSlash.burned - verifierSlash.burned);
    expect((await market.getContribution(id)).status).to.equal(ContributionStatus.Rejected);
    await expectConservation(f);
  });

  it("a challenge the committee rejects loses its bond to the node; the pass is paid as usual", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, disputes, settlement, node1, node3 } = f;
    const { id, verifier } = await attested(f, connection, { node: node1, pass: true });
    const d = await disputeAndDraw(f, connection, id, node3);
    const before = await snapshot(f, [node1, node3, verifier]);
    const tx = await voteAllAndResolve(f, d, true);
    await expect(tx).to.emit(settlement, "ContributionFinalized").withArgs(id, true, REWARD, FEE, 0n);
    const bond = split(PROTOCOL.disputeBond, 3n);
    expect(await stakes.creditsOf(node1.address)).to.equal(before[node1.address].credits + REWARD + bond.winner);
    expect(await stakes.creditsOf(verifier.address)).to.equal(before[verifier.address].credits + FEE);
    expect(await stakes.stakeOf(node3.address)).to.equal(before[node3.address].staked - PROTOCOL.disputeBond);
    for (const w of [node1, node3, verifier]) expect(await stakes.lockedOf(w.address)).to.equal(0n);
    await expectConservation(f);
  });

  it("nobody votes: the absent committee is slashed (burned) and the dispute escalates to a larger committee", async function () {
    const f = await loadFixture(courtFixture);
    const { token, stakes, disputes, node1, node3 } = f;
    const { id } = await attested(f, connection, { node: node1, pass: true });
    const d = await disputeAndDraw(f, connection, id, node3);
    const supply = await token.totalSupply();
    await networkHelpers.time.increase(PROTOCOL.voteWindow);
    await expect(disputes.resolve(d.disputeId)).to.emit(disputes, "DisputeEscalated");
    expect(await token.totalSupply()).to.equal(supply - 3n * PROTOCOL.verifierLock);
    expect(await stakes.lockedOf(node3.address)).to.equal(PROTOCOL.disputeBond); // still disputed
    expect(await stakes.creditsOf(node1.address)).to.equal(0n); // the pass is not paid meanwhile
    await networkHelpers.mine();
    const rx = await (await disputes.drawCommittee(d.disputeId)).wait();
    // five non-parties, three of them slashed to 150 (still >= minVerifierStake): up to five seats
    expect(eventArgs(disputes, rx, "CommitteeDrawn").members.length).to.be.greaterThan(Number(PROTOCOL.committeeSize));
    expect(id).to.equal(1n);
    await expectConservation(f);
  });
});

describe("disputes: round aggregates", function () {
  async function roundDone(f) {
    const { settlement, node1, node2 } = f;
    for (const [slot, node] of [
      [0n, node1],
      [1n, node2],
    ]) {
      const { id } = await attested(f, connection, { node, slot, pass: true });
      await networkHelpers.time.increase(PROTOCOL.challengeWindow);
      await (await settlement.finalize(id)).wait();
    }
  }

  it("a wrong aggregate is replaced by the challenger's; the round advances only when that one is final", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, market, disputes, node1, node3 } = f;
    await roundDone(f);
    await (await market.connect(node1).postAggregate(1n, 0n, digest("wrong"), "bafy-wrong", 9n)).wait();
    const tx = disputes.connect(node3).challengeAggregate(1n, 0n, digest("right"), "bafy-right", 7n);
    await expect(tx).to.emit(market, "AggregateDisputed").withArgs(1n, 0n, 1n);
    await expect(tx).to.emit(disputes, "AlternativeAggregate").withArgs(1n, digest("right"), "bafy-right", 7n);
    const rx = await (await tx).wait();
    expect((await market.aggregateState(1n, 0n)).status).to.equal(AggregateStatus.Disputed);
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await expect(market.finalizeAggregate(1n, 0n)).to.be.revertedWithCustomError(market, "JobMarketNoPendingAggregate");
    const disputeId = eventArgs(disputes, rx, "DisputeOpened").disputeId;
    const drawRx = await (await disputes.drawCommittee(disputeId)).wait();
    const members = eventArgs(disputes, drawRx, "CommitteeDrawn").members.map((a) => signerOf(f.signers, a));
    for (const m of members) expect([node1.address, node3.address]).to.not.include(m.address);
    const before = await snapshot(f, [node1, node3]);
    const resolveTx = await voteAllAndResolve(f, { disputeId, members }, false);
    const resolveRx = await resolveTx.wait();
    await expect(resolveTx)
      .to.emit(market, "AggregateReplaced")
      .withArgs(1n, 0n, digest("right"), "bafy-right", 7n, node3.address, (await timeOf(resolveRx)) + PROTOCOL.challengeWindow);
    const bond = split(PROTOCOL.disputeBond, 3n);
    expect(await stakes.stakeOf(node1.address)).to.equal(before[node1.address].staked - PROTOCOL.disputeBond);
    expect(await stakes.creditsOf(node3.address)).to.equal(before[node3.address].credits + bond.winner);
    expect(await stakes.lockedOf(node3.address)).to.equal(PROTOCOL.disputeBond); // now backs its aggregate
    const agg = await market.aggregateState(1n, 0n);
    expect([agg.status, agg.poster, agg.modelDigest]).to.deep.equal([AggregateStatus.Pending, node3.address, digest("right")]);
    expect((await market.jobState(1n)).currentRound).to.equal(0n);
    await expect(market.finalizeAggregate(1n, 0n)).to.be.revertedWithCustomError(market, "JobMarketAggregateWindowOpen");
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await expect(market.finalizeAggregate(1n, 0n))
      .to.emit(market, "RoundAggregated")
      .withArgs(1n, 0n, digest("right"), "bafy-right", 7n, node3.address);
    expect((await market.jobState(1n)).currentModelDigest).to.equal(digest("right"));
    expect(await stakes.lockedOf(node3.address)).to.equal(0n);
    await expectConservation(f);
  });

  it("a right aggregate is upheld: the challenger's bond pays the poster and the aggregate becomes final", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, market, disputes, node1, node3 } = f;
    await roundDone(f);
    await (await market.connect(node1).postAggregate(1n, 0n, digest("right"), "bafy-right", 7n)).wait();
    const rx = await (await disputes.connect(node3).challengeAggregate(1n, 0n, digest("other"), "bafy-other", 8n)).wait();
    const disputeId = eventArgs(disputes, rx, "DisputeOpened").disputeId;
    await networkHelpers.mine();
    const drawRx = await (await disputes.drawCommittee(disputeId)).wait();
    const members = eventArgs(disputes, drawRx, "CommitteeDrawn").members.map((a) => signerOf(f.signers, a));
    const before = await snapshot(f, [node1, node3]);
    const tx = await voteAllAndResolve(f, { disputeId, members }, true);
    await expect(tx).to.emit(market, "AggregateUpheld").withArgs(1n, 0n);
    const bond = split(PROTOCOL.disputeBond, 3n);
    expect(await stakes.creditsOf(node1.address)).to.equal(before[node1.address].credits + bond.winner);
    expect(await stakes.stakeOf(node3.address)).to.equal(before[node3.address].staked - PROTOCOL.disputeBond);
    await networkHelpers.time.increase(PROTOCOL.challengeWindow); // the posted block's window (30 min) outlasts the vote (20 min)
    await expect(market.finalizeAggregate(1n, 0n)).to.emit(market, "RoundAggregated");
    expect((await market.jobState(1n)).currentModelDigest).to.equal(digest("right"));
    await expectConservation(f);
  });
});

describe("missed attestations", function () {
  it("after the window anyone requests a takeover: the missing verifier is slashed (burned) and a fresh draw picks another", async function () {
    const f = await loadFixture(courtFixture);
    const { token, stakes, settlement, node1, outsider, signers } = f;
    const { id, verifier, seedRecordedAt } = await claimSubmitSeed(f, connection, { node: node1 });
    await networkHelpers.time.increase(PROTOCOL.attestWindow);
    const supply = await token.totalSupply();
    const rx = await (await settlement.connect(outsider).requestTakeover(id)).wait();
    expect(await timeOf(rx)).to.be.greaterThan(seedRecordedAt + PROTOCOL.attestWindow);
    expect(await stakes.stakeOf(verifier.address)).to.equal(200n * TOKEN - PROTOCOL.verifierLock);
    expect(await stakes.lockedOf(verifier.address)).to.equal(0n);
    expect(await token.totalSupply()).to.equal(supply - PROTOCOL.verifierLock);
    expect(await stakes.creditsOf(outsider.address)).to.equal(0n);
    await networkHelpers.mine();
    const assign = await (await settlement.assignVerifier(id)).wait();
    const taker = signerOf(signers, eventArgs(settlement, assign, "VerifierAssigned").verifier);
    expect(taker.address).to.not.equal(verifier.address);
    expect(await stakes.lockedOf(taker.address)).to.equal(PROTOCOL.verifierLock);
    // the old verifier can no longer attest; the new one can, and is paid the fee
    await expect(settlement.connect(verifier).attest(id, true, "late", REPORT_HASH))
      .to.be.revertedWithCustomError(settlement, "SettlementNotAssignedVerifier")
      .withArgs(verifier.address, taker.address);
    await (await settlement.connect(taker).attest(id, true, "bafy-report", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    expect(await stakes.creditsOf(taker.address)).to.equal(FEE);
    expect(await stakes.lockedOf(taker.address)).to.equal(0n);
    await expectConservation(f);
  });

  it("the escrow pays exactly once per accepted slot whatever the path", async function () {
    const f = await loadFixture(courtFixture);
    const { market, settlement, node1, node2 } = f;
    const a = await attested(f, connection, { node: node1, slot: 0n, pass: true });
    const b = await attested(f, connection, { node: node2, slot: 1n, pass: true });
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(a.id)).wait();
    await (await settlement.finalize(b.id)).wait();
    expect((await market.jobState(1n)).escrow).to.equal(escrowOf(f.params) - 2n * (REWARD + FEE));
    await expect(settlement.finalize(a.id)).to.be.revertedWithCustomError(settlement, "SettlementAlreadyFinalized");
  });
});
