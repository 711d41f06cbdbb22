// Every window at its last second (or block) minus one, its last, and one after: claim deadlines,
// attest windows, challenge windows (verdicts and aggregates), vote windows and unbonding are in
// seconds (block timestamps); seed readiness, the 256-block horizon and committee seeds are in
// blocks. Each case starts from a snapshot and puts the call at exactly the time or block it names.
import { expect } from "chai";
import { network } from "hardhat";
import {
  PROTOCOL,
  SEED_HORIZON,
  courtFixture,
  digest,
  executeNextAt,
  eventArgs,
  signerOf,
  claimAndSubmit,
  claimSubmitSeed,
  attested,
  REPORT_HASH,
  timeOf,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

const at = (target) => executeNextAt(ethers, networkHelpers, target);
/** The next transaction runs at unix time `target` (windows are in seconds). */
const atTime = (target) => networkHelpers.time.setNextBlockTimestamp(target);

// -- fixtures (named, so loadFixture snapshots them) -------------------------------------------

async function claimed(conn) {
  const f = await courtFixture(conn);
  const rx = await (await f.market.connect(f.node1).claimSlot(1n, 0n, 0n)).wait();
  return { ...f, deadline: (await timeOf(rx)) + BigInt(f.params.claimTimeout) };
}

async function submitted(conn) {
  const f = await courtFixture(conn);
  const { id, submitBlock } = await claimAndSubmit(f, { node: f.node1 });
  return { ...f, id, seedBlock: submitBlock + 1n };
}

async function assigned(conn) {
  const f = await courtFixture(conn);
  const out = await claimSubmitSeed(f, conn, { node: f.node1 });
  return { ...f, ...out, deadline: out.seedRecordedAt + PROTOCOL.attestWindow };
}

async function failed(conn) {
  const f = await courtFixture(conn);
  const out = await attested(f, conn, { node: f.node1, pass: false });
  return { ...f, ...out, last: out.attestedAt + PROTOCOL.challengeWindow };
}

async function posted(conn) {
  const f = await courtFixture(conn);
  for (const [slot, node] of [
    [0n, f.node1],
    [1n, f.node2],
  ]) {
    const { id } = await attested(f, conn, { node, slot, pass: true });
    await conn.networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await f.settlement.finalize(id)).wait();
  }
  const rx = await (await f.market.connect(f.node1).postAggregate(1n, 0n, digest("G_1"), "g", 1n)).wait();
  return { ...f, last: (await timeOf(rx)) + PROTOCOL.challengeWindow };
}

async function disputed(conn) {
  const f = await failed(conn);
  const rx = await (await f.disputes.connect(f.node1).disputeContribution(f.id)).wait();
  return { ...f, disputeId: eventArgs(f.disputes, rx, "DisputeOpened").disputeId, committeeSeedBlock: BigInt(rx.blockNumber) + 1n };
}

async function voting(conn) {
  const f = await disputed(conn);
  await conn.networkHelpers.mine();
  const rx = await (await f.disputes.drawCommittee(f.disputeId)).wait();
  const drawn = eventArgs(f.disputes, rx, "CommitteeDrawn");
  return { ...f, voteDeadline: drawn.voteDeadline, members: drawn.members.map((a) => signerOf(f.signers, a)) };
}

async function unbonding(conn) {
  const f = await courtFixture(conn);
  const rx = await (await f.stakes.connect(f.node1).requestUnbond(10n)).wait();
  return { ...f, ready: (await timeOf(rx)) + PROTOCOL.unbondingDelay };
}

// -- cases ---------------------------------------------------------------------------------------

describe("windows: claims", function () {
  for (const offset of [-1n, 0n, 1n]) {
    it(`submitContribution at the claim deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "accepted" : "JobMarketClaimExpired"}`, async function () {
      const f = await loadFixture(claimed);
      await atTime(f.deadline + offset);
      const tx = f.market.connect(f.node1).submitContribution(1n, 0n, 0n, digest("o"), digest("t"), "o", "m");
      if (offset <= 0n) await expect(tx).to.emit(f.market, "ContributionSubmitted");
      else await expect(tx).to.be.revertedWithCustomError(f.market, "JobMarketClaimExpired").withArgs(f.deadline);
    });
    it(`expireClaim and a takeover at the claim deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "refused" : "accepted"}`, async function () {
      const f = await loadFixture(claimed);
      await atTime(f.deadline + offset);
      const expire = f.market.expireClaim(1n, 0n, 0n);
      if (offset <= 0n) {
        await expect(expire).to.be.revertedWithCustomError(f.market, "JobMarketClaimNotExpired").withArgs(f.deadline);
        await expect(f.market.connect(f.node2).claimSlot(1n, 0n, 0n)).to.be.revertedWithCustomError(f.market, "JobMarketSlotTaken");
      } else {
        await expect(expire).to.emit(f.market, "ClaimExpired");
      }
    });
  }
  it("a takeover one block after the deadline", async function () {
    const f = await loadFixture(claimed);
    await atTime(f.deadline + 1n);
    await expect(f.market.connect(f.node2).claimSlot(1n, 0n, 0n)).to.emit(f.market, "ClaimExpired").withArgs(1n, 0n, 0n, f.node1.address);
  });
});

describe("windows: the sampling seed", function () {
  for (const offset of [-1n, 0n, 1n]) {
    it(`recordSeed at the seed block ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "SettlementSeedNotReady" : "recorded"}`, async function () {
      const f = await loadFixture(submitted);
      if (offset < 0n) {
        // the seed block minus one is the submission block itself: call it in the same block
        expect(BigInt(await ethers.provider.getBlockNumber())).to.equal(f.seedBlock - 1n);
        await expect(f.settlement.recordSeed.staticCall(f.id, { blockTag: "latest" }))
          .to.be.revertedWithCustomError(f.settlement, "SettlementSeedNotReady")
          .withArgs(f.id, f.seedBlock);
        return;
      }
      await at(f.seedBlock + offset);
      const tx = f.settlement.recordSeed(f.id);
      if (offset === 0n) await expect(tx).to.be.revertedWithCustomError(f.settlement, "SettlementSeedNotReady").withArgs(f.id, f.seedBlock);
      else await expect(tx).to.emit(f.settlement, "SeedRecorded");
    });
  }
  for (const offset of [SEED_HORIZON - 1n, SEED_HORIZON, SEED_HORIZON + 1n]) {
    it(`recordSeed ${offset} blocks after the seed block: ${offset <= SEED_HORIZON ? "recorded" : "expired: never re-rolled, the contribution can be failed"}`, async function () {
      // Hardhat's EIP-2935 history contract is a reverting stub: the horizon here is BLOCKHASH's
      // 256 blocks (8191 on a chain with EIP-2935)
      const f = await loadFixture(submitted);
      await at(f.seedBlock + offset);
      const tx = f.settlement.recordSeed(f.id);
      if (offset <= SEED_HORIZON) {
        await expect(tx).to.emit(f.settlement, "SeedRecorded");
        return;
      }
      await expect(tx).to.be.revertedWithCustomError(f.settlement, "SettlementSeedExpired").withArgs(f.id, f.seedBlock);
      await expect(f.settlement.failUnrecorded(f.id)).to.emit(f.settlement, "SeedExpired").withArgs(f.id, f.seedBlock);
      expect((await f.settlement.verification(f.id)).seed).to.equal(ethers.ZeroHash);
    });
    it(`failUnrecorded ${offset} blocks after the seed block: ${offset <= SEED_HORIZON ? "SettlementSeedReadable" : "failed"}`, async function () {
      const f = await loadFixture(submitted);
      await at(f.seedBlock + offset);
      const tx = f.settlement.failUnrecorded(f.id);
      if (offset <= SEED_HORIZON) await expect(tx).to.be.revertedWithCustomError(f.settlement, "SettlementSeedReadable").withArgs(f.id, f.seedBlock);
      else await expect(tx).to.emit(f.settlement, "ContributionFinalized").withArgs(f.id, false, 0n, 0n, PROTOCOL.minNodeStake);
    });
  }
});

describe("windows: attestation", function () {
  for (const offset of [-1n, 0n, 1n]) {
    it(`attest at the attest deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "accepted" : "SettlementAttestWindowClosed"}`, async function () {
      const f = await loadFixture(assigned);
      await atTime(f.deadline + offset);
      const tx = f.settlement.connect(f.verifier).attest(f.id, true, "r", REPORT_HASH);
      if (offset <= 0n) await expect(tx).to.emit(f.settlement, "Attested");
      else await expect(tx).to.be.revertedWithCustomError(f.settlement, "SettlementAttestWindowClosed").withArgs(f.id, f.deadline);
    });
    it(`requestTakeover at the attest deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "SettlementAttestWindowOpen" : "slashed, redrawn"}`, async function () {
      const f = await loadFixture(assigned);
      await atTime(f.deadline + offset);
      const tx = f.settlement.requestTakeover(f.id);
      if (offset <= 0n) await expect(tx).to.be.revertedWithCustomError(f.settlement, "SettlementAttestWindowOpen").withArgs(f.id, f.deadline);
      else await expect(tx).to.emit(f.settlement, "AttestationMissed");
    });
  }
});

describe("windows: verdict challenges", function () {
  for (const offset of [-1n, 0n, 1n]) {
    it(`contest at the challenge deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "opened" : "SettlementChallengeWindowClosed"}`, async function () {
      const f = await loadFixture(failed);
      await atTime(f.last + offset);
      const tx = f.disputes.connect(f.node1).disputeContribution(f.id);
      if (offset <= 0n) await expect(tx).to.emit(f.disputes, "DisputeOpened");
      else await expect(tx).to.be.revertedWithCustomError(f.settlement, "SettlementChallengeWindowClosed").withArgs(f.id, f.last);
    });
    it(`finalize at the challenge deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "SettlementChallengeWindowOpen" : "settled"}`, async function () {
      const f = await loadFixture(failed);
      await atTime(f.last + offset);
      const tx = f.settlement.finalize(f.id);
      if (offset <= 0n) await expect(tx).to.be.revertedWithCustomError(f.settlement, "SettlementChallengeWindowOpen").withArgs(f.id, f.last + 1n);
      else await expect(tx).to.emit(f.settlement, "ContributionFinalized");
    });
  }
});

describe("windows: aggregates", function () {
  for (const offset of [-1n, 0n, 1n]) {
    it(`challengeAggregate at the aggregate deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "opened" : "JobMarketAggregateWindowClosed"}`, async function () {
      const f = await loadFixture(posted);
      await atTime(f.last + offset);
      const tx = f.disputes.connect(f.node3).challengeAggregate(1n, 0n, digest("other"), "o", 1n);
      if (offset <= 0n) await expect(tx).to.emit(f.disputes, "DisputeOpened");
      else await expect(tx).to.be.revertedWithCustomError(f.market, "JobMarketAggregateWindowClosed").withArgs(1n, 0n, f.last);
    });
    it(`finalizeAggregate at the aggregate deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "JobMarketAggregateWindowOpen" : "final"}`, async function () {
      const f = await loadFixture(posted);
      await atTime(f.last + offset);
      const tx = f.market.finalizeAggregate(1n, 0n);
      if (offset <= 0n) await expect(tx).to.be.revertedWithCustomError(f.market, "JobMarketAggregateWindowOpen").withArgs(1n, 0n, f.last + 1n);
      else await expect(tx).to.emit(f.market, "RoundAggregated");
    });
  }
});

describe("windows: committees", function () {
  for (const offset of [0n, 1n]) {
    it(`drawCommittee at the committee seed block ${offset >= 0n ? "+" : ""}${offset}: ${offset === 0n ? "DisputesSeedNotReady" : "drawn"}`, async function () {
      const f = await loadFixture(disputed);
      await at(f.committeeSeedBlock + offset);
      const tx = f.disputes.drawCommittee(f.disputeId);
      if (offset === 0n) await expect(tx).to.be.revertedWithCustomError(f.disputes, "DisputesSeedNotReady").withArgs(f.disputeId, f.committeeSeedBlock);
      else await expect(tx).to.emit(f.disputes, "CommitteeDrawn");
    });
  }
  for (const offset of [SEED_HORIZON - 1n, SEED_HORIZON, SEED_HORIZON + 1n]) {
    it(`drawCommittee ${offset} blocks after its seed block: ${offset <= SEED_HORIZON ? "drawn" : "the seed block moves to the next block"}`, async function () {
      const f = await loadFixture(disputed);
      await at(f.committeeSeedBlock + offset);
      const tx = f.disputes.drawCommittee(f.disputeId);
      if (offset <= SEED_HORIZON) {
        await expect(tx).to.emit(f.disputes, "CommitteeDrawn");
        return;
      }
      const next = f.committeeSeedBlock + offset + 1n;
      await expect(tx).to.emit(f.disputes, "CommitteeSeedReset").withArgs(f.disputeId, next);
      await expect(f.disputes.drawCommittee(f.disputeId)).to.be.revertedWithCustomError(f.disputes, "DisputesSeedNotReady").withArgs(f.disputeId, next);
      await networkHelpers.mine();
      await expect(f.disputes.drawCommittee(f.disputeId)).to.emit(f.disputes, "CommitteeDrawn");
    });
  }
  for (const offset of [-1n, 0n, 1n]) {
    it(`vote at the vote deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "counted" : "DisputesVoteWindowClosed"}`, async function () {
      const f = await loadFixture(voting);
      await atTime(f.voteDeadline + offset);
      const tx = f.disputes.connect(f.members[0]).vote(f.disputeId, true, "r");
      if (offset <= 0n) await expect(tx).to.emit(f.disputes, "Voted");
      else await expect(tx).to.be.revertedWithCustomError(f.disputes, "DisputesVoteWindowClosed").withArgs(f.disputeId, f.voteDeadline);
    });
    it(`resolve at the vote deadline ${offset >= 0n ? "+" : ""}${offset}: ${offset <= 0n ? "DisputesVoteWindowOpen" : "resolved"}`, async function () {
      const f = await loadFixture(voting);
      // a quorum of votes, so +1 resolves (fewer would escalate)
      for (const m of f.members.slice(0, 2)) await (await f.disputes.connect(m).vote(f.disputeId, true, "r")).wait();
      await atTime(f.voteDeadline + offset);
      const tx = f.disputes.resolve(f.disputeId);
      if (offset <= 0n) await expect(tx).to.be.revertedWithCustomError(f.disputes, "DisputesVoteWindowOpen").withArgs(f.disputeId, f.voteDeadline);
      else await expect(tx).to.emit(f.disputes, "DisputeResolved");
    });
  }
});

describe("windows: unbonding", function () {
  for (const offset of [-1n, 0n, 1n]) {
    it(`withdrawUnbonded at the ready time ${offset >= 0n ? "+" : ""}${offset}: ${offset < 0n ? "StakeRegistryUnbondingNotReady" : "paid"}`, async function () {
      const f = await loadFixture(unbonding);
      await atTime(f.ready + offset);
      const tx = f.stakes.connect(f.node1).withdrawUnbonded();
      if (offset < 0n) await expect(tx).to.be.revertedWithCustomError(f.stakes, "StakeRegistryUnbondingNotReady").withArgs(f.ready);
      else await expect(tx).to.emit(f.stakes, "UnbondWithdrawn").withArgs(f.node1.address, 10n);
    });
  }
});
