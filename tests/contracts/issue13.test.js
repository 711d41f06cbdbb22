// Issue 13: nobody can choose their own verifier. Snapshot stake-weighted draws (a sybil who
// reorders or resizes the set after the seed is known changes nothing), split stake has the same
// odds as one account, the sample is fixed once and never re-rolled (queue, takeover, late
// recording), a false fail contested at the last second is overturned, an undisputed fail pays
// the verifier exactly its fee, Undecided means "redo, no slash", too few votes escalate.
import { expect } from "chai";
import { network } from "hardhat";
import { keccak256, toUtf8Bytes } from "ethers";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import {
  PROTOCOL,
  TOKEN,
  FEE,
  REWARD,
  MAX_TAKEOVERS,
  HISTORY_HORIZON,
  VERIFIER_TAG,
  COMMITTEE_TAG,
  REPORT_HASH,
  deployFixture,
  courtFixture,
  jobParams,
  warmUp,
  expectConservation,
  eventArgs,
  signerOf,
  claimAndSubmit,
  claimSubmitSeed,
  attested,
  disputeAndDraw,
  expectedSeed,
  sampleIndices,
  drawOne,
  drawMany,
  snapshotOf,
  timeOf,
  Phase,
  Ruling,
  SlotStatus,
  DisputeStatus,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

describe("issue 13: verifier draws", function () {
  it("the sybil reorder attack fails: deregistering, re-registering and adding sybils after the submission changes neither the snapshot nor the draw", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, settlement, node1, verifiers, outsider, signers } = f;
    const { id, submitBlock } = await claimAndSubmit(f, { node: node1 });
    await networkHelpers.mine(); // the seed block: the seed is public from here on
    const seed = await expectedSeed(ethers, submitBlock + 1n, id);
    const before = await snapshotOf(stakes, submitBlock);
    const predicted = drawOne(seed, VERIFIER_TAG, 0n, before);
    expect(await stakes.drawTicket(seed, VERIFIER_TAG, submitBlock, 0n)).to.equal(predicted);
    // the attacker controls every verifier but the predicted one and reshapes the set at will
    const sybils = verifiers.filter((v) => v.address !== predicted);
    for (const s of sybils.slice(0, 3)) await (await stakes.connect(s).deregisterVerifier()).wait();
    for (const s of sybils.slice(0, 2)) await (await stakes.connect(s).registerVerifier()).wait();
    await (await stakes.connect(sybils[3]).stake(5_000n * TOKEN)).wait(); // a huge top-up
    await (await stakes.connect(outsider).stake(5_000n * TOKEN)).wait(); // a fresh sybil
    await (await stakes.connect(outsider).registerVerifier()).wait();
    expect(await snapshotOf(stakes, submitBlock)).to.deep.equal(before.concat([[outsider.address, 0n]]));
    // and records the seed itself: the verifier is the one fixed before the seed was known
    const rx = await (await settlement.connect(node1).recordSeed(id)).wait();
    expect(eventArgs(settlement, rx, "SeedRecorded").verifier).to.equal(predicted);
    expect((await settlement.verification(id)).verifier).to.equal(predicted);
    expect(sybils.map((s) => s.address)).to.not.include(predicted);
    expect(signerOf(signers, predicted)).to.not.equal(undefined);
    await expectConservation(f);
  });

  it("new stake and new verifiers count only after the warm-up (drawLag blocks); departures only after the cooldown", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, outsider, verifiers } = f;
    await (await stakes.connect(outsider).stake(100n * TOKEN)).wait();
    const rx = await (await stakes.connect(outsider).registerVerifier()).wait();
    const reg = BigInt(rx.blockNumber);
    expect(await stakes.weightAt(outsider.address, reg)).to.equal(100n * TOKEN);
    const weightIn = async (snapshotBlock, who) =>
      (await snapshotOf(stakes, snapshotBlock)).find(([a]) => a === who.address)?.[1] ?? 0n;
    await networkHelpers.mine(PROTOCOL.drawLag + 2n);
    expect(await weightIn(reg + PROTOCOL.drawLag - 1n, outsider)).to.equal(0n);
    expect(await weightIn(reg + PROTOCOL.drawLag, outsider)).to.equal(100n * TOKEN);
    const out = await (await stakes.connect(verifiers[0]).deregisterVerifier()).wait();
    const dereg = BigInt(out.blockNumber);
    await networkHelpers.mine(PROTOCOL.drawLag + 2n);
    expect(await weightIn(dereg + PROTOCOL.drawLag - 1n, verifiers[0])).to.equal(200n * TOKEN);
    expect(await weightIn(dereg + PROTOCOL.drawLag, verifiers[0])).to.equal(0n);
    expect(await stakes.verifierCount()).to.equal(6n);
    expect(await stakes.verifierListLength()).to.equal(7n);
  });

  it("stake split across four accounts has the same draw odds as one account (2000 seeds)", async function () {
    const f = await loadFixture(deployFixture);
    const { stakes, verifiers, outsider, sponsor2 } = f;
    const [single, honest, s1, s2, s3, s4] = [verifiers[0], verifiers[1], verifiers[2], verifiers[3], verifiers[4], outsider];
    const S = 400n * TOKEN;
    for (const [who, amount] of [
      [single, S],
      [honest, S],
      [s1, S / 4n],
      [s2, S / 4n],
      [s3, S / 4n],
      [s4, S / 4n],
    ]) {
      await (await stakes.connect(who).stake(amount)).wait();
      await (await stakes.connect(who).registerVerifier()).wait();
    }
    await warmUp(connection);
    const snapshotBlock = BigInt(await ethers.provider.getBlockNumber());
    const N = 2000n;
    const firstSeed = keccak256(toUtf8Bytes("issue 13 draw frequencies"));
    const hits = await stakes.drawFrequencies(firstSeed, VERIFIER_TAG, snapshotBlock, N);
    const snapshot = await snapshotOf(stakes, snapshotBlock);
    const index = (who) => snapshot.findIndex(([a]) => a === who.address);
    const singleHits = hits[index(single)];
    const splitHits = [s1, s2, s3, s4].map((s) => hits[index(s)]);
    const splitTotal = splitHits.reduce((a, b) => a + b, 0n);
    const honestHits = hits[index(honest)];
    // the JS mirror of the rule agrees with the chain on the first 50 seeds
    for (let i = 0n; i < 50n; i++) {
      const seed = keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["bytes32", "uint256"], [firstSeed, i]));
      expect(await stakes.drawTicket(seed, VERIFIER_TAG, snapshotBlock, 0n)).to.equal(drawOne(seed, VERIFIER_TAG, 0n, snapshot));
    }
    const n = Number(N);
    const share = (x) => (Number(x) / n).toFixed(4);
    const sigma = Math.sqrt(n * (1 / 3) * (2 / 3)); // one third of the stake each
    console.log(
      [
        "",
        `      draw frequencies, ${n} seeds, total stake 1200 (tickets = stake units)`,
        "      | holder | stake | expected | drawn | share |",
        "      |---|---:|---:|---:|---:|",
        `      | one account | 400 | 0.3333 | ${singleHits} | ${share(singleHits)} |`,
        `      | four accounts of 100 (sum) | 400 | 0.3333 | ${splitTotal} | ${share(splitTotal)} |`,
        ...splitHits.map((h, i) => `      | - split account ${i + 1} | 100 | 0.0833 | ${h} | ${share(h)} |`),
        `      | honest account | 400 | 0.3333 | ${honestHits} | ${share(honestHits)} |`,
        `      (one standard deviation of a 1/3 count: ${sigma.toFixed(1)} draws)`,
      ].join("\n"),
    );
    expect(singleHits + splitTotal + honestHits).to.equal(N);
    for (const h of [singleHits, splitTotal, honestHits]) expect(Math.abs(Number(h) - n / 3)).to.be.below(4 * sigma);
    // the difference of two shares of a multinomial: sd = sqrt(n (p1 + p2 - (p1 - p2)^2))
    expect(Math.abs(Number(singleHits) - Number(splitTotal))).to.be.below(4 * Math.sqrt(n * (2 / 3)));
    for (const h of splitHits) expect(Math.abs(Number(h) - n / 12)).to.be.below(4 * Math.sqrt(n * (1 / 12) * (11 / 12)));

    // cross-language vectors: the chain's own answers, for the Python client's agreement test
    const coder = ethers.AbiCoder.defaultAbiCoder();
    const cases = [];
    for (let i = 0n; i < 16n; i++) {
      const seed = keccak256(coder.encode(["bytes32", "uint256"], [firstSeed, i]));
      for (const [tagName, tag] of [
        ["opentrain.verifier", VERIFIER_TAG],
        ["opentrain.committee", COMMITTEE_TAG],
      ]) {
        for (const counter of [0n, 1n, 31n]) {
          const expected = await stakes.drawTicket(seed, tag, snapshotBlock, counter);
          expect(expected).to.equal(drawOne(seed, tag, counter, snapshot));
          cases.push({ seed, tag: tagName, tagHash: tag, counter: Number(counter), expected });
        }
      }
    }
    const vectors = {
      about: "StakeRegistry.drawTicket answers on a Hardhat chain (issue13.test.js); see ISSUE13_ABI.md",
      rule: "t = uint256(keccak256(abi.encode(seed, tagHash, counter))) % sum(weights); expected = accounts[bisect_right(cumsum(weights), t)]",
      snapshot: snapshot.map(([a, w]) => ({ account: a, weight: w.toString() })),
      cases,
    };
    await writeFile(fileURLToPath(new URL("./draw_vectors.json", import.meta.url)), JSON.stringify(vectors, null, 2) + "\n");
  });

  it("the node is excluded by redrawing the next ticket, never by reordering: the mirror of drawAndLock agrees", async function () {
    const f = await loadFixture(courtFixture);
    const { stakes, settlement, node1, verifiers } = f;
    // node1 is a verifier too, with most of the stake: its tickets are skipped, in order
    await (await stakes.connect(node1).stake(2_000n * TOKEN)).wait();
    await (await stakes.connect(node1).registerVerifier()).wait();
    await warmUp(connection);
    for (let slot = 0n; slot < 2n; slot++) {
      const node = slot === 0n ? node1 : f.node2;
      const { id, submitBlock } = await claimAndSubmit(f, { node, slot });
      await networkHelpers.mine();
      const seed = await expectedSeed(ethers, submitBlock + 1n, id);
      const snapshot = await snapshotOf(stakes, submitBlock);
      const free = {};
      for (const [a] of snapshot) free[a] = await stakes.freeStakeOf(a);
      const { drawn } = drawMany(seed, VERIFIER_TAG, snapshot, 1, 0n, [node.address], (a) => free[a] >= PROTOCOL.verifierLock, true);
      await (await settlement.recordSeed(id)).wait();
      expect((await settlement.verification(id)).verifier).to.equal(drawn[0]);
      expect(drawn[0]).to.not.equal(node.address);
    }
    expect(verifiers.length).to.equal(6);
  });
});

describe("issue 13: seeds that cannot be re-rolled", function () {
  it("recordSeed at the end of the horizon still uses the first seed block: the sample is the one fixed at submission + 1", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, market, node1 } = f;
    const { id, submitBlock } = await claimAndSubmit(f, { node: node1 });
    await networkHelpers.mine();
    const seed = await expectedSeed(ethers, submitBlock + 1n, id);
    const p = await market.jobParams(1n);
    const sample = sampleIndices(seed, p.numSegments, p.sampleCount);
    // Hardhat's EIP-2935 contract is a stub that reverts, so here the horizon is BLOCKHASH's 256
    // blocks (on a prague chain it is 8191): the last block in which the seed block is readable
    await networkHelpers.mine(254n);
    await (await settlement.recordSeed(id)).wait();
    expect((await settlement.verification(id)).seed).to.equal(seed);
    expect(await settlement.sampledSegments(id)).to.deep.equal(sample);
  });

  it("a seed never recorded while readable fails the contribution: the node's lock is burned, nothing is paid, no re-roll", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, stakes, token, market, node1, outsider } = f;
    const { id, submitBlock } = await claimAndSubmit(f, { node: node1 });
    await networkHelpers.mine();
    await expect(settlement.failUnrecorded(id))
      .to.be.revertedWithCustomError(settlement, "SettlementSeedReadable")
      .withArgs(id, submitBlock + 1n);
    await networkHelpers.mine(HISTORY_HORIZON + 1n);
    await expect(settlement.recordSeed(id))
      .to.be.revertedWithCustomError(settlement, "SettlementSeedExpired")
      .withArgs(id, submitBlock + 1n);
    const supply = await token.totalSupply();
    const staked = await stakes.stakeOf(node1.address);
    await expect(settlement.connect(outsider).failUnrecorded(id))
      .to.emit(settlement, "SeedExpired")
      .withArgs(id, submitBlock + 1n)
      .and.to.emit(settlement, "ContributionFinalized")
      .withArgs(id, false, 0n, 0n, PROTOCOL.minNodeStake);
    expect(await stakes.stakeOf(node1.address)).to.equal(staked - PROTOCOL.minNodeStake);
    expect(await token.totalSupply()).to.equal(supply - PROTOCOL.minNodeStake);
    expect((await market.slotState(1n, 0n, 0n)).status).to.equal(SlotStatus.Open);
    await expect(settlement.recordSeed(id)).to.be.revertedWithCustomError(settlement, "SettlementNotSubmitted");
    await expectConservation(f);
  });

  it("a busy drawn verifier queues the contribution for it (same seed, same ticket, same sample): keeping others busy biases nothing", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, stakes, market, node1, verifiers, signers } = f;
    // every verifier has its stake locked or unbonded: none has verifierLock free
    for (const v of verifiers) await (await stakes.connect(v).requestUnbond(160n * TOKEN)).wait();
    const { id, submitBlock } = await claimAndSubmit(f, { node: node1 });
    await networkHelpers.mine();
    const seed = await expectedSeed(ethers, submitBlock + 1n, id);
    const snapshot = await snapshotOf(stakes, submitBlock);
    const drawnFirst = drawOne(seed, VERIFIER_TAG, 0n, snapshot); // node1 is no verifier: ticket 0 counts
    const rx = await (await settlement.recordSeed(id)).wait();
    expect(eventArgs(settlement, rx, "SeedRecorded").verifier).to.equal(ethers.ZeroAddress);
    expect(eventArgs(settlement, rx, "VerifierQueued").nextCounter).to.equal(0n);
    let v = await settlement.verification(id);
    expect([v.phase, v.seed, v.drawSeed, v.drawCounter]).to.deep.equal([Phase.Queued, seed, seed, 0n]);
    const p = await market.jobParams(1n);
    const sample = sampleIndices(seed, p.numSegments, p.sampleCount);
    expect(await settlement.sampledSegments(id)).to.deep.equal(sample);
    await expect(settlement.recordSeed(id)).to.be.revertedWithCustomError(settlement, "SettlementSeedAlreadyRecorded");
    // another verifier frees stake: the draw still waits for the drawn one, no redraw
    const other = verifiers.find((w) => w.address !== drawnFirst);
    await (await stakes.connect(other).stake(100n * TOKEN)).wait();
    await expect(settlement.assignVerifier(id)).to.emit(settlement, "VerifierQueued").withArgs(id, 0n);
    // the drawn verifier frees stake: it is assigned, same seed, same sample
    await (await stakes.connect(signerOf(signers, drawnFirst)).stake(100n * TOKEN)).wait();
    const assign = await (await settlement.assignVerifier(id)).wait();
    expect(eventArgs(settlement, assign, "VerifierAssigned").verifier).to.equal(drawnFirst);
    v = await settlement.verification(id);
    expect([v.phase, v.verifier, v.seed, v.drawCounter]).to.deep.equal([Phase.Assigned, drawnFirst, seed, 1n]);
    expect(await settlement.sampledSegments(id)).to.deep.equal(sample);
    await expectConservation(f);
  });
});

describe("issue 13: takeovers", function () {
  it("a missed attestation is slashed (burned) and replaced by a fresh draw from the next block, not first come first served; the sample stays", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, stakes, market, node1, outsider, token, signers } = f;
    const out = await claimSubmitSeed(f, connection, { node: node1 });
    const sample = await settlement.sampledSegments(out.id);
    await networkHelpers.time.increase(PROTOCOL.attestWindow + 1n);
    const supply = await token.totalSupply();
    const rx = await (await settlement.connect(outsider).requestTakeover(out.id)).wait();
    const missed = eventArgs(settlement, rx, "AttestationMissed");
    expect([missed.previousVerifier, missed.penalty, missed.takeover, missed.drawBlock]).to.deep.equal([
      out.verifier.address,
      PROTOCOL.verifierLock,
      1n,
      BigInt(rx.blockNumber) + 1n,
    ]);
    expect(await token.totalSupply()).to.equal(supply - PROTOCOL.verifierLock); // burned, nobody's reward
    expect((await settlement.verification(out.id)).phase).to.equal(Phase.Queued);
    // the draw needs the hash of the next block: not in the request's own block
    await expect(settlement.assignVerifier(out.id)).to.be.revertedWithCustomError(settlement, "SettlementSeedNotReady");
    await networkHelpers.mine();
    const drawBlock = await ethers.provider.getBlock(Number(missed.drawBlock));
    const drawSeed = keccak256(
      ethers.AbiCoder.defaultAbiCoder().encode(["bytes32", "bytes32", "uint256"], [out.verification.seed, drawBlock.hash, 1n]),
    );
    const snapshot = await snapshotOf(stakes, BigInt(rx.blockNumber));
    const free = {};
    for (const [a] of snapshot) free[a] = await stakes.freeStakeOf(a);
    const expected = drawMany(
      drawSeed,
      VERIFIER_TAG,
      snapshot,
      1,
      0n,
      [node1.address, out.verifier.address],
      (a) => free[a] >= PROTOCOL.verifierLock,
      true,
    ).drawn[0];
    await (await settlement.connect(node1).assignVerifier(out.id)).wait();
    const v = await settlement.verification(out.id);
    expect([v.verifier, v.takeovers, v.previousVerifier, v.phase]).to.deep.equal([expected, 1n, out.verifier.address, Phase.Assigned]);
    expect(await settlement.sampledSegments(out.id)).to.deep.equal(sample);
    const taker = signerOf(signers, expected);
    await (await settlement.connect(taker).attest(out.id, true, "r", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow + 1n);
    await (await settlement.finalize(out.id)).wait();
    expect((await market.getContribution(out.id)).status).to.equal(2n);
    await expectConservation(f);
  });

  it("after MAX_TAKEOVERS missed attestations the slot is redone without slashing the node", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, stakes, market, node1 } = f;
    const out = await claimSubmitSeed(f, connection, { node: node1 });
    const staked = await stakes.stakeOf(node1.address);
    for (let k = 1n; k <= MAX_TAKEOVERS; k++) {
      await networkHelpers.time.increase(PROTOCOL.attestWindow + 1n);
      await (await settlement.requestTakeover(out.id)).wait();
      await networkHelpers.mine();
      await (await settlement.assignVerifier(out.id)).wait();
      expect((await settlement.verification(out.id)).takeovers).to.equal(k);
    }
    await networkHelpers.time.increase(PROTOCOL.attestWindow + 1n);
    await expect(settlement.requestTakeover(out.id))
      .to.emit(settlement, "ContributionFinalized")
      .withArgs(out.id, false, 0n, 0n, PROTOCOL.verifierLock);
    expect((await settlement.verification(out.id)).phase).to.equal(Phase.Rejected);
    expect(await stakes.stakeOf(node1.address)).to.equal(staked);
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    expect((await market.slotState(1n, 0n, 0n)).status).to.equal(SlotStatus.Open);
    await expectConservation(f);
  });
});

describe("issue 13: no profit in failing honest work", function () {
  it("an undisputed fail pays the verifier exactly its fee (what a pass pays), burns the rest of the node's lock", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, stakes, token, node1, node2 } = f;
    const pass = await attested(f, connection, { node: node1, slot: 0n, pass: true });
    const fail = await attested(f, connection, { node: node2, slot: 1n, pass: false });
    await networkHelpers.time.increase(PROTOCOL.challengeWindow + 1n);
    const before = {
      pass: await stakes.creditsOf(pass.verifier.address),
      fail: await stakes.creditsOf(fail.verifier.address),
    };
    await (await settlement.finalize(pass.id)).wait();
    const passPaid = (await stakes.creditsOf(pass.verifier.address)) - before.pass;
    const supply = await token.totalSupply();
    const staked = await stakes.stakeOf(node2.address);
    const failCreditsBefore = await stakes.creditsOf(fail.verifier.address);
    await expect(settlement.finalize(fail.id))
      .to.emit(settlement, "ContributionFinalized")
      .withArgs(fail.id, false, 0n, FEE, PROTOCOL.minNodeStake)
      .and.to.emit(stakes, "StakeSlashed")
      .withArgs(node2.address, PROTOCOL.minNodeStake, fail.verifier.address, FEE, 0n, 0n, PROTOCOL.minNodeStake - FEE);
    const failPaid = (await stakes.creditsOf(fail.verifier.address)) - failCreditsBefore;
    expect(passPaid).to.equal(FEE);
    expect(failPaid).to.equal(FEE); // nothing extra for a fail
    expect(await stakes.stakeOf(node2.address)).to.equal(staked - PROTOCOL.minNodeStake);
    expect(await token.totalSupply()).to.equal(supply - (PROTOCOL.minNodeStake - FEE));
    await expectConservation(f);
  });

  it("a false fail contested in the last second of the challenge window is overturned: the node is paid, the verifier slashed", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, stakes, disputes, node1, signers } = f;
    const out = await attested(f, connection, { node: node1, pass: false });
    const last = out.attestedAt + PROTOCOL.challengeWindow;
    await networkHelpers.time.setNextBlockTimestamp(last);
    const rx = await (await disputes.connect(node1).disputeContribution(out.id)).wait();
    expect(await timeOf(rx)).to.equal(last);
    const disputeId = eventArgs(disputes, rx, "DisputeOpened").disputeId;
    await networkHelpers.mine();
    const drawn = eventArgs(disputes, await (await disputes.drawCommittee(disputeId)).wait(), "CommitteeDrawn");
    for (const m of drawn.members) await (await disputes.connect(signerOf(signers, m)).vote(disputeId, true, "v")).wait();
    await networkHelpers.time.increase(PROTOCOL.voteWindow + 1n);
    const verifierStake = await stakes.stakeOf(out.verifier.address);
    const nodeCredits = await stakes.creditsOf(node1.address);
    await expect(disputes.resolve(disputeId)).to.emit(disputes, "DisputeResolved").withArgs(disputeId, Ruling.Valid, 3n, 0n, 0n);
    expect((await settlement.verification(out.id)).phase).to.equal(Phase.Accepted);
    expect(await stakes.stakeOf(out.verifier.address)).to.equal(verifierStake - PROTOCOL.verifierLock);
    const share = (PROTOCOL.verifierLock * PROTOCOL.slashRewardBps) / 10_000n;
    expect((await stakes.creditsOf(node1.address)) - nodeCredits).to.equal(REWARD + share);
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    await expectConservation(f);
  });

  it("an Undecided contest (a tie) redoes the slot: nobody is slashed, every lock and the bond come back", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, stakes, market, node1 } = f;
    const out = await attested(f, connection, { node: node1, pass: false });
    const d = await disputeAndDraw(f, connection, out.id, node1);
    const staked = { node: await stakes.stakeOf(node1.address), verifier: await stakes.stakeOf(out.verifier.address) };
    await (await f.disputes.connect(d.members[0]).vote(d.disputeId, true, "v")).wait();
    await (await f.disputes.connect(d.members[1]).vote(d.disputeId, false, "v")).wait();
    await networkHelpers.time.increase(PROTOCOL.voteWindow + 1n);
    await expect(f.disputes.resolve(d.disputeId)).to.emit(f.disputes, "DisputeResolved").withArgs(d.disputeId, Ruling.Undecided, 1n, 1n, 1n);
    expect((await settlement.verification(out.id)).phase).to.equal(Phase.Rejected);
    expect((await market.slotState(1n, 0n, 0n)).status).to.equal(SlotStatus.Open);
    expect(await stakes.stakeOf(node1.address)).to.equal(staked.node);
    expect(await stakes.stakeOf(out.verifier.address)).to.equal(staked.verifier);
    expect(await stakes.lockedOf(node1.address)).to.equal(0n);
    expect(await stakes.lockedOf(out.verifier.address)).to.equal(0n);
    await expectConservation(f);
  });

  it("a committee that casts fewer votes than the quorum escalates: a larger committee, a longer window, then a ruling", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, disputes, node1, signers } = f;
    const out = await attested(f, connection, { node: node1, pass: false });
    const d = await disputeAndDraw(f, connection, out.id, node1);
    await networkHelpers.time.increase(PROTOCOL.voteWindow + 1n);
    const rx = await (await disputes.resolve(d.disputeId)).wait();
    const esc = eventArgs(disputes, rx, "DisputeEscalated");
    expect([esc.round, esc.absent]).to.deep.equal([1n, 3n]);
    let view = await disputes.dispute(d.disputeId);
    expect([view.status, view.escalation]).to.deep.equal([DisputeStatus.AwaitingCommittee, 1n]);
    await networkHelpers.mine();
    const drawRx = await (await disputes.drawCommittee(d.disputeId)).wait();
    const drawn = eventArgs(disputes, drawRx, "CommitteeDrawn");
    expect(drawn.members.length).to.equal(5); // committeeSize + 2, from the five non-parties
    expect(drawn.voteDeadline).to.equal((await timeOf(drawRx)) + 2n * PROTOCOL.voteWindow);
    for (const m of drawn.members.slice(0, 3)) await (await disputes.connect(signerOf(signers, m)).vote(d.disputeId, true, "v")).wait();
    await networkHelpers.time.increase(2n * PROTOCOL.voteWindow + 1n);
    await expect(disputes.resolve(d.disputeId)).to.emit(disputes, "DisputeResolved").withArgs(d.disputeId, Ruling.Valid, 3n, 0n, 2n);
    view = await disputes.dispute(d.disputeId);
    expect(view.status).to.equal(DisputeStatus.Resolved);
    expect((await settlement.verification(out.id)).phase).to.equal(Phase.Accepted);
    await expectConservation(f);
  });

  it("the verdict commits to the hash of the recomputed digests", async function () {
    const f = await loadFixture(courtFixture);
    const out = await attested(f, connection, { node: f.node1, pass: true });
    expect((await f.settlement.verification(out.id)).recomputedDigestsHash).to.equal(REPORT_HASH);
    expect(jobParams().numSegments).to.equal(8);
    expect(COMMITTEE_TAG).to.equal(await f.disputes.COMMITTEE_TAG());
  });
});
