// Settlement and Disputes: every external function's success and every revert.
import { expect } from "chai";
import { network } from "hardhat";
import {
  PROTOCOL,
  TOKEN,
  SEED_HORIZON,
  deployFixture,
  jobFixture,
  courtFixture,
  digest,
  jobParams,
  expectConservation,
  eventArgs,
  signerOf,
  claimAndSubmit,
  claimSubmitSeed,
  attested,
  disputeAndDraw,
  Verdict,
  Phase,
  MAX_TAKEOVERS,
  timeOf,
  REPORT_HASH,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

describe("Settlement: constructor and roles", function () {
  it("refuses a zero address and an attest window of 0 or >= 2^32", async function () {
    const { stakes, market, admin } = await loadFixture(deployFixture);
    const factory = await ethers.getContractFactory("Settlement");
    const [s, m] = [await stakes.getAddress(), await market.getAddress()];
    for (const [args, reason] of [
      [[ethers.ZeroAddress, m, admin.address, 20n], "address"],
      [[s, ethers.ZeroAddress, admin.address, 20n], "address"],
      [[s, m, ethers.ZeroAddress, 20n], "address"],
      [[s, m, admin.address, 0n], "attestWindow"],
      [[s, m, admin.address, 2n ** 32n], "attestWindow"],
    ]) {
      await expect(factory.deploy(...args)).to.be.revertedWithCustomError(factory, "SettlementInvalidParams").withArgs(reason);
    }
  });

  it("openDispute and settleDisputed only by Disputes; with the role, not disputed", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, outsider, admin, DISPUTES_ROLE } = f;
    const outcome = [true, true, false, false, ethers.ZeroAddress];
    await expect(settlement.connect(outsider).openDispute(1n, outsider.address, 1n))
      .to.be.revertedWithCustomError(settlement, "AccessControlUnauthorizedAccount")
      .withArgs(outsider.address, DISPUTES_ROLE);
    await expect(settlement.connect(outsider).settleDisputed(1n, outcome, []))
      .to.be.revertedWithCustomError(settlement, "AccessControlUnauthorizedAccount")
      .withArgs(outsider.address, DISPUTES_ROLE);
    await (await settlement.grantRole(DISPUTES_ROLE, admin.address)).wait();
    await expect(settlement.settleDisputed(1n, outcome, [])).to.be.revertedWithCustomError(settlement, "SettlementNotDisputed").withArgs(1n);
    await expect(settlement.openDispute(1n, admin.address, 1n)).to.be.revertedWithCustomError(settlement, "SettlementNotAttested").withArgs(1n);
  });
});

describe("Settlement: recordSeed", function () {
  it("of an unknown contribution, twice, and of a settled one", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, node1 } = f;
    await expect(settlement.recordSeed(1n)).to.be.revertedWithCustomError(settlement, "SettlementNotSubmitted").withArgs(1n);
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    await expect(settlement.recordSeed(id)).to.be.revertedWithCustomError(settlement, "SettlementSeedAlreadyRecorded").withArgs(id);
    await (await settlement.connect(verifier).attest(id, true, "r", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    await expect(settlement.recordSeed(id)).to.be.revertedWithCustomError(settlement, "SettlementNotSubmitted").withArgs(id);
  });

  it("with no verifier (none registered, only the node, none with free stake) the draw queues; after an attest window it is redrawn from a fresh snapshot", async function () {
    const f = await loadFixture(deployFixture);
    const { stakes, market, settlement, sponsor, node1, verifier1 } = f;
    await (await stakes.connect(node1).stake(300n * TOKEN)).wait();
    await (await market.connect(sponsor).createJob(jobParams(), "s", "g")).wait();
    const a = await claimAndSubmit(f, { node: node1, slot: 0n });
    await networkHelpers.mine();
    await expect(settlement.recordSeed(a.id)).to.emit(settlement, "VerifierQueued").withArgs(a.id, 32n);
    expect((await settlement.verification(a.id)).phase).to.equal(Phase.Queued);
    await expect(settlement.assignVerifier(a.id)).to.emit(settlement, "VerifierQueued").withArgs(a.id, 64n);
    // verifiers that join later are not in this snapshot: still queued
    await (await stakes.connect(node1).registerVerifier()).wait();
    await (await stakes.connect(verifier1).stake(PROTOCOL.minVerifierStake)).wait();
    await (await stakes.connect(verifier1).registerVerifier()).wait();
    await expect(settlement.assignVerifier(a.id)).to.emit(settlement, "VerifierQueued").withArgs(a.id, 96n);
    await expect(settlement.requestTakeover(a.id)).to.be.revertedWithCustomError(settlement, "SettlementAttestWindowOpen");
    await networkHelpers.time.increase(PROTOCOL.attestWindow + 1n);
    await networkHelpers.mine(PROTOCOL.drawLag);
    // a fresh snapshot (this block) and seed (the next block's hash); nobody is slashed
    await expect(settlement.requestTakeover(a.id))
      .to.emit(settlement, "AttestationMissed")
      .withArgs(a.id, ethers.ZeroAddress, 0n, 1n, BigInt(await ethers.provider.getBlockNumber()) + 2n);
    await networkHelpers.mine();
    await expect(settlement.assignVerifier(a.id)).to.emit(settlement, "VerifierAssigned");
    expect((await settlement.verification(a.id)).verifier).to.equal(verifier1.address); // never the node
    // a contribution finding verifier1 with no free stake queues
    const b = await claimAndSubmit(f, { node: node1, slot: 1n });
    await networkHelpers.mine();
    await (await settlement.recordSeed(b.id)).wait(); // 100 of 100 locked
    await (await market.connect(sponsor).createJob(jobParams(), "s", "g")).wait();
    const d = await claimAndSubmit(f, { node: node1, jobId: 2n, slot: 1n });
    await networkHelpers.mine();
    await expect(settlement.recordSeed(d.id)).to.emit(settlement, "VerifierQueued");
    await expectConservation(f);
  });
});

describe("Settlement: attest and requestTakeover", function () {
  it("attest: before the seed, by anyone but the assigned verifier, twice, after the window", async function () {
    const f = await loadFixture(jobFixture);
    const { settlement, node1, outsider } = f;
    const { id } = await claimAndSubmit(f, { node: node1 });
    await expect(settlement.connect(outsider).attest(id, true, "r", REPORT_HASH)).to.be.revertedWithCustomError(settlement, "SettlementSeedNotRecorded").withArgs(id);
    await networkHelpers.mine();
    await (await settlement.recordSeed(id)).wait();
    const v = signerOf(f.signers, (await settlement.verification(id)).verifier);
    await expect(settlement.connect(outsider).attest(id, true, "r", REPORT_HASH))
      .to.be.revertedWithCustomError(settlement, "SettlementNotAssignedVerifier")
      .withArgs(outsider.address, v.address);
    await (await settlement.connect(v).attest(id, false, "r", REPORT_HASH)).wait();
    expect((await settlement.verification(id)).verdict).to.equal(Verdict.Fail);
    await expect(settlement.connect(v).attest(id, true, "r", REPORT_HASH)).to.be.revertedWithCustomError(settlement, "SettlementAlreadyAttested").withArgs(id);
  });

  it("requestTakeover: before the seed, inside the window, after a verdict; assignVerifier: not queued, too early", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, node1 } = f;
    const { id: unseeded } = await claimAndSubmit(f, { node: node1, slot: 1n });
    await expect(settlement.requestTakeover(unseeded)).to.be.revertedWithCustomError(settlement, "SettlementSeedNotRecorded");
    await expect(settlement.assignVerifier(unseeded)).to.be.revertedWithCustomError(settlement, "SettlementNotQueued").withArgs(unseeded);
    const { id, verifier, seedRecordedAt } = await claimSubmitSeed(f, connection, { node: f.node2 });
    await expect(settlement.requestTakeover(id))
      .to.be.revertedWithCustomError(settlement, "SettlementAttestWindowOpen")
      .withArgs(id, seedRecordedAt + PROTOCOL.attestWindow);
    await expect(settlement.assignVerifier(id)).to.be.revertedWithCustomError(settlement, "SettlementNotQueued").withArgs(id);
    await networkHelpers.time.increase(PROTOCOL.attestWindow + 1n);
    await expect(settlement.connect(verifier).attest(id, true, "r", REPORT_HASH)).to.be.revertedWithCustomError(settlement, "SettlementAttestWindowClosed");
    const rx = await (await settlement.requestTakeover(id)).wait();
    await expect(settlement.requestTakeover(id)).to.be.revertedWithCustomError(settlement, "SettlementSeedNotRecorded").withArgs(id);
    await expect(settlement.assignVerifier(id))
      .to.be.revertedWithCustomError(settlement, "SettlementSeedNotReady")
      .withArgs(id, BigInt(rx.blockNumber) + 1n);
    await networkHelpers.mine();
    await (await settlement.assignVerifier(id)).wait();
    const taker = signerOf(f.signers, (await settlement.verification(id)).verifier);
    await (await settlement.connect(taker).attest(id, true, "r", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.attestWindow + 1n);
    await expect(settlement.requestTakeover(id)).to.be.revertedWithCustomError(settlement, "SettlementAlreadyAttested").withArgs(id);
  });
});

describe("Settlement: finalize", function () {
  it("before a verdict, inside the window, under dispute, twice", async function () {
    const f = await loadFixture(courtFixture);
    const { settlement, disputes, node1 } = f;
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    await expect(settlement.finalize(id)).to.be.revertedWithCustomError(settlement, "SettlementNotAttested").withArgs(id);
    const rx = await (await settlement.connect(verifier).attest(id, false, "r", REPORT_HASH)).wait();
    await expect(settlement.finalize(id))
      .to.be.revertedWithCustomError(settlement, "SettlementChallengeWindowOpen")
      .withArgs(id, (await timeOf(rx)) + PROTOCOL.challengeWindow + 1n);
    await (await disputes.connect(node1).disputeContribution(id)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await expect(settlement.finalize(id)).to.be.revertedWithCustomError(settlement, "SettlementUnderDispute").withArgs(id);
    const second = await attested(f, connection, { node: f.node2, slot: 1n });
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(second.id)).wait();
    await expect(settlement.finalize(second.id)).to.be.revertedWithCustomError(settlement, "SettlementAlreadyFinalized").withArgs(second.id);
    await expect(settlement.sampledSegments(99n)).to.be.revertedWithCustomError(settlement, "SettlementSeedNotRecorded").withArgs(99n);
  });
});

describe("Disputes: constructor", function () {
  it("refuses zero addresses, a bad committee size, a bad vote window, an unbonding delay too short", async function () {
    const { stakes, market, settlement, admin } = await loadFixture(deployFixture);
    const factory = await ethers.getContractFactory("Disputes");
    const [s, m, st] = [await stakes.getAddress(), await market.getAddress(), await settlement.getAddress()];
    const z = ethers.ZeroAddress;
    for (const [args, reason] of [
      [[z, m, st, admin.address, 3n, 20n, 2n], "address"],
      [[s, z, st, admin.address, 3n, 20n, 2n], "address"],
      [[s, m, z, admin.address, 3n, 20n, 2n], "address"],
      [[s, m, st, z, 3n, 20n, 2n], "address"],
      [[s, m, st, admin.address, 0n, 20n, 1n], "committeeSize"],
      [[s, m, st, admin.address, 2n, 20n, 1n], "committeeSize"],
      [[s, m, st, admin.address, 11n, 20n, 1n], "committeeSize"],
      [[s, m, st, admin.address, 3n, 0n, 2n], "voteWindow"],
      [[s, m, st, admin.address, 3n, 2n ** 32n, 2n], "voteWindow"],
      [[s, m, st, admin.address, 3n, 20n, 0n], "quorum"],
      [[s, m, st, admin.address, 3n, 20n, 4n], "quorum"],
    ]) {
      await expect(factory.deploy(...args)).to.be.revertedWithCustomError(factory, "DisputesInvalidParams").withArgs(reason);
    }
    // unbondingDelay must exceed (2 + MAX_TAKEOVERS) attest (reveal + assignments) + challenge +
    // (1 + 2 + 3) vote windows
    const fixed = (2n + MAX_TAKEOVERS) * PROTOCOL.attestWindow + PROTOCOL.challengeWindow;
    const lastOk = (PROTOCOL.unbondingDelay - fixed - 1n) / 6n;
    const ok = await factory.deploy(s, m, st, admin.address, 9n, lastOk, 9n);
    expect(await ok.voteWindow()).to.equal(lastOk);
    expect(await ok.quorum()).to.equal(9n);
    await expect(factory.deploy(s, m, st, admin.address, 1n, lastOk + 1n, 1n))
      .to.be.revertedWithCustomError(factory, "DisputesInvalidParams")
      .withArgs("unbondingDelay");
  });
});

describe("Disputes: opening", function () {
  it("disputeContribution: no verdict, a fail by anyone but the node, a pass by its node or verifier, without a bond, twice, after settlement", async function () {
    const f = await loadFixture(courtFixture);
    const { disputes, settlement, stakes, node1, node2, node3, outsider } = f;
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    await expect(disputes.connect(node1).disputeContribution(id)).to.be.revertedWithCustomError(settlement, "SettlementNotAttested").withArgs(id);
    await (await settlement.connect(verifier).attest(id, false, "r", REPORT_HASH)).wait();
    await expect(disputes.connect(node2).disputeContribution(id))
      .to.be.revertedWithCustomError(settlement, "SettlementNotNode")
      .withArgs(node2.address, node1.address);
    const pass = await attested(f, connection, { node: node2, slot: 1n, pass: true });
    for (const who of [node2, pass.verifier]) {
      await expect(disputes.connect(who).disputeContribution(pass.id))
        .to.be.revertedWithCustomError(settlement, "SettlementPartyCannotChallenge")
        .withArgs(who.address);
    }
    await expect(disputes.connect(outsider).disputeContribution(pass.id))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(outsider.address, 0n, PROTOCOL.disputeBond);
    await (await disputes.connect(node3).disputeContribution(pass.id)).wait();
    await expect(disputes.connect(f.verifiers[5]).disputeContribution(pass.id))
      .to.be.revertedWithCustomError(settlement, "SettlementUnderDispute")
      .withArgs(pass.id);
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    await expect(disputes.connect(node1).disputeContribution(id)).to.be.revertedWithCustomError(settlement, "SettlementAlreadyFinalized").withArgs(id);
  });

  it("challengeAggregate: none pending, by its poster, with the same or a zero digest, without a bond, after the window", async function () {
    const f = await loadFixture(courtFixture);
    const { disputes, market, settlement, node1, node2, node3, outsider } = f;
    await expect(disputes.connect(node3).challengeAggregate(1n, 0n, digest("x"), "x", 1n))
      .to.be.revertedWithCustomError(market, "JobMarketNoPendingAggregate")
      .withArgs(1n, 0n);
    for (const [slot, node] of [
      [0n, node1],
      [1n, node2],
    ]) {
      const { id } = await attested(f, connection, { node, slot, pass: true });
      await networkHelpers.time.increase(PROTOCOL.challengeWindow);
      await (await settlement.finalize(id)).wait();
    }
    const rx = await (await market.connect(node1).postAggregate(1n, 0n, digest("G_1"), "g", 1n)).wait();
    await expect(disputes.connect(node1).challengeAggregate(1n, 0n, digest("x"), "x", 1n))
      .to.be.revertedWithCustomError(disputes, "DisputesPartyCannotChallenge")
      .withArgs(node1.address);
    for (const d of [digest("G_1"), ethers.ZeroHash]) {
      await expect(disputes.connect(node3).challengeAggregate(1n, 0n, d, "x", 1n)).to.be.revertedWithCustomError(disputes, "DisputesSameDigest").withArgs(d);
    }
    await expect(disputes.connect(outsider).challengeAggregate(1n, 0n, digest("x"), "x", 1n))
      .to.be.revertedWithCustomError(f.stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(outsider.address, 0n, PROTOCOL.disputeBond);
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await expect(disputes.connect(node3).challengeAggregate(1n, 0n, digest("x"), "x", 1n))
      .to.be.revertedWithCustomError(market, "JobMarketAggregateWindowClosed")
      .withArgs(1n, 0n, (await timeOf(rx)) + PROTOCOL.challengeWindow);
  });
});

describe("Disputes: committee, votes, resolution", function () {
  it("drawCommittee: unknown, too early, twice", async function () {
    const f = await loadFixture(courtFixture);
    const { disputes, node1 } = f;
    await expect(disputes.drawCommittee(1n)).to.be.revertedWithCustomError(disputes, "DisputesNotAwaitingCommittee").withArgs(1n);
    const { id } = await attested(f, connection, { node: node1, pass: false });
    const rx = await (await disputes.connect(node1).disputeContribution(id)).wait();
    await expect(disputes.drawCommittee(1n))
      .to.be.revertedWithCustomError(disputes, "DisputesSeedNotReady")
      .withArgs(1n, BigInt(rx.blockNumber) + 1n);
    await networkHelpers.mine();
    await (await disputes.drawCommittee(1n)).wait();
    await expect(disputes.drawCommittee(1n)).to.be.revertedWithCustomError(disputes, "DisputesNotAwaitingCommittee").withArgs(1n);
  });

  it("vote: unknown, before the draw, by a non-member, twice, after the window, after resolution; resolve too early or twice", async function () {
    const f = await loadFixture(courtFixture);
    const { disputes, node1, outsider } = f;
    await expect(disputes.vote(1n, true, "r")).to.be.revertedWithCustomError(disputes, "DisputesNotVoting").withArgs(1n);
    await expect(disputes.resolve(1n)).to.be.revertedWithCustomError(disputes, "DisputesNotVoting").withArgs(1n);
    await expect(disputes.dispute(1n)).to.be.revertedWithCustomError(disputes, "DisputesUnknownDispute").withArgs(1n);
    const { id } = await attested(f, connection, { node: node1, pass: false });
    await (await disputes.connect(node1).disputeContribution(id)).wait();
    await expect(disputes.vote(1n, true, "r")).to.be.revertedWithCustomError(disputes, "DisputesNotVoting").withArgs(1n);
    await networkHelpers.mine();
    const drawRx = await (await disputes.drawCommittee(1n)).wait();
    const deadline = eventArgs(disputes, drawRx, "CommitteeDrawn").voteDeadline;
    const members = (await disputes.dispute(1n)).members.map((a) => signerOf(f.signers, a));
    await expect(disputes.connect(outsider).vote(1n, true, "r")).to.be.revertedWithCustomError(disputes, "DisputesNotMember").withArgs(outsider.address);
    await expect(disputes.voteOf(1n, outsider.address)).to.be.revertedWithCustomError(disputes, "DisputesNotMember");
    await expect(disputes.connect(members[0]).vote(1n, true, "bafy-vote"))
      .to.emit(disputes, "Voted")
      .withArgs(1n, members[0].address, true, "bafy-vote");
    await expect(disputes.connect(members[0]).vote(1n, false, "r")).to.be.revertedWithCustomError(disputes, "DisputesAlreadyVoted").withArgs(members[0].address);
    await expect(disputes.resolve(1n)).to.be.revertedWithCustomError(disputes, "DisputesVoteWindowOpen").withArgs(1n, deadline);
    await networkHelpers.time.increase(PROTOCOL.voteWindow);
    await expect(disputes.connect(members[1]).vote(1n, true, "r")).to.be.revertedWithCustomError(disputes, "DisputesVoteWindowClosed").withArgs(1n, deadline);
    await (await disputes.resolve(1n)).wait();
    await expect(disputes.resolve(1n)).to.be.revertedWithCustomError(disputes, "DisputesNotVoting").withArgs(1n);
    await expect(disputes.connect(members[1]).vote(1n, true, "r")).to.be.revertedWithCustomError(disputes, "DisputesNotVoting");
    await expectConservation(f);
  });

  it("an alternative aggregate is readable; a contribution dispute has none", async function () {
    const f = await loadFixture(courtFixture);
    const { disputes, node1 } = f;
    const { id } = await attested(f, connection, { node: node1, pass: false });
    const d = await disputeAndDraw(f, connection, id, node1);
    expect(await disputes.alternative(d.disputeId)).to.deep.equal([ethers.ZeroHash, "", 0n]);
  });
});
