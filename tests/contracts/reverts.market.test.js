// JobMarket: every external function's success and every revert, the sponsor's cancel and
// refund, the cheat-pays check of createJob and the guardian's pause.
import { expect } from "chai";
import { network } from "hardhat";
import {
  PROTOCOL,
  TOKEN,
  REWARD,
  FEE,
  deployFixture,
  jobFixture,
  courtFixture,
  jobParams,
  escrowOf,
  digest,
  expectConservation,
  claimAndSubmit,
  claimSubmitSeed,
  attested,
  JobStatus,
  SlotStatus,
  AggregateStatus,
  REPORT_HASH,
  timeOf,
} from "./helpers.js";

const connection = await network.create();
const { ethers, networkHelpers } = connection;
const { loadFixture } = networkHelpers;

const MAX_AMOUNT = 2n ** 96n - 1n;

/** Accept every slot of round 0 of job 1 (two slots), so an aggregate may be posted. */
async function completeRound(f) {
  for (const [slot, node] of [
    [0n, f.node1],
    [1n, f.node2],
  ]) {
    const { id } = await attested(f, connection, { node, slot, pass: true });
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await f.settlement.finalize(id)).wait();
  }
}

describe("JobMarket: constructor and roles", function () {
  it("refuses a zero address and a challenge window of 0 or >= 2^32", async function () {
    const { stakes, admin } = await loadFixture(deployFixture);
    const factory = await ethers.getContractFactory("JobMarket");
    for (const [args, reason] of [
      [[ethers.ZeroAddress, admin.address, 5n], "address"],
      [[await stakes.getAddress(), ethers.ZeroAddress, 5n], "address"],
      [[await stakes.getAddress(), admin.address, 0n], "challengeWindow"],
      [[await stakes.getAddress(), admin.address, 2n ** 32n], "challengeWindow"],
    ]) {
      await expect(factory.deploy(...args)).to.be.revertedWithCustomError(factory, "JobMarketInvalidParams").withArgs(reason);
    }
  });

  it("settleContribution, disputeAggregate, resolveAggregate, pause, unpause only by their roles", async function () {
    const { market, outsider, SETTLEMENT_ROLE, MARKET_DISPUTES_ROLE, GUARDIAN_ROLE } = await loadFixture(jobFixture);
    const calls = [
      [() => market.connect(outsider).settleContribution(1n, true, true), SETTLEMENT_ROLE],
      [() => market.connect(outsider).disputeAggregate(1n, 0n, 1n), MARKET_DISPUTES_ROLE],
      [() => market.connect(outsider).resolveAggregate(1n, 0n, false, outsider.address, ethers.ZeroHash, "", 0n), MARKET_DISPUTES_ROLE],
      [() => market.connect(outsider).pause(), GUARDIAN_ROLE],
      [() => market.connect(outsider).unpause(), GUARDIAN_ROLE],
    ];
    for (const [call, role] of calls) {
      await expect(call()).to.be.revertedWithCustomError(market, "AccessControlUnauthorizedAccount").withArgs(outsider.address, role);
    }
  });

  it("with the roles: unknown or settled contributions, aggregates not disputed", async function () {
    const f = await loadFixture(jobFixture);
    const { market, admin, node1, SETTLEMENT_ROLE, MARKET_DISPUTES_ROLE } = f;
    await (await market.grantRole(SETTLEMENT_ROLE, admin.address)).wait();
    await (await market.grantRole(MARKET_DISPUTES_ROLE, admin.address)).wait();
    await expect(market.settleContribution(7n, true, true)).to.be.revertedWithCustomError(market, "JobMarketUnknownContribution").withArgs(7n);
    const { id } = await claimAndSubmit(f, { node: node1 });
    await (await market.settleContribution(id, false, false)).wait();
    await expect(market.settleContribution(id, true, true)).to.be.revertedWithCustomError(market, "JobMarketContributionSettled").withArgs(id);
    await expect(market.resolveAggregate(1n, 0n, false, admin.address, ethers.ZeroHash, "", 0n))
      .to.be.revertedWithCustomError(market, "JobMarketAggregateNotDisputed")
      .withArgs(1n, 0n);
    await expect(market.disputeAggregate(1n, 0n, 1n)).to.be.revertedWithCustomError(market, "JobMarketNoPendingAggregate").withArgs(1n, 0n);
  });
});

describe("JobMarket: createJob", function () {
  const bad = [
    [{ rounds: 0 }, "rounds"],
    [{ rounds: 1001 }, "rounds"],
    [{ slotsPerRound: 0 }, "slotsPerRound"],
    [{ slotsPerRound: 257 }, "slotsPerRound"],
    [{ numSegments: 0 }, "numSegments"],
    [{ numSegments: 4097 }, "numSegments"],
    [{ sampleCount: 0 }, "sampleCount"],
    [{ numSegments: 4, sampleCount: 5 }, "sampleCount"],
    [{ numSegments: 64, sampleCount: 33 }, "sampleCount"],
    [{ claimTimeout: 0 }, "claimTimeout"],
    [{ claimTimeout: 2n ** 32n }, "claimTimeout"],
    [{ specDigest: ethers.ZeroHash }, "digest"],
    [{ initialModelDigest: ethers.ZeroHash }, "digest"],
    [{ rewardPerSlot: MAX_AMOUNT + 1n }, "amount"],
    [{ verifierFee: MAX_AMOUNT + 1n }, "amount"],
    [{ cheatFractionBps: 0 }, "cheatFractionBps"],
    [{ cheatFractionBps: 10_001 }, "cheatFractionBps"],
  ];
  for (const [overrides, reason] of bad) {
    it(`refuses ${JSON.stringify(overrides, (_, v) => (typeof v === "bigint" ? String(v) : v))}: "${reason}"`, async function () {
      const { market, sponsor } = await loadFixture(deployFixture);
      await expect(market.connect(sponsor).createJob(jobParams(overrides), "s", "g"))
        .to.be.revertedWithCustomError(market, "JobMarketInvalidParams")
        .withArgs(reason);
    });
  }

  it("accepts every upper bound; without allowance it reverts in the token", async function () {
    const { market, token, sponsor2 } = await loadFixture(deployFixture);
    const edge = jobParams({
      rounds: 1000,
      slotsPerRound: 256,
      numSegments: 4096,
      sampleCount: 32,
      claimTimeout: 2n ** 32n - 1n,
      rewardPerSlot: 1n,
      verifierFee: 0n,
      cheatFractionBps: 10_000,
    });
    await expect(market.connect(sponsor2).createJob(edge, "s", "g")).to.emit(market, "JobCreated");
    expect((await market.jobState(1n)).escrow).to.equal(1000n * 256n);
    await (await token.connect(sponsor2).approve(await market.getAddress(), 0n)).wait();
    await expect(market.connect(sponsor2).createJob(jobParams(), "s", "g")).to.be.revertedWithCustomError(token, "ERC20InsufficientAllowance");
  });

  it("refuses jobs where cheating pays: p * (minNodeStake + reward) must exceed reward", async function () {
    const { market, sponsor } = await loadFixture(deployFixture);
    const S = PROTOCOL.minNodeStake;
    // f = 10%, k = 1: p = 0.1, so R is acceptable iff 0.1 (S + R) > R, i.e. R < S / 9 = 11.11 tokens
    const limit = S / 9n; // 11.111... tokens, rounded down
    await expect(market.connect(sponsor).createJob(jobParams({ sampleCount: 1, rewardPerSlot: limit }), "s", "g")).to.emit(
      market,
      "JobCreated",
    );
    await expect(market.connect(sponsor).createJob(jobParams({ sampleCount: 1, rewardPerSlot: limit + 1n }), "s", "g"))
      .to.be.revertedWithCustomError(market, "JobMarketCheatingPays")
      .withArgs(10n ** 17n, S, limit + 1n);
    // the same reward passes with k = 2 (p = 0.19)
    await expect(market.connect(sponsor).createJob(jobParams({ sampleCount: 2, rewardPerSlot: limit + 1n }), "s", "g")).to.emit(
      market,
      "JobCreated",
    );
    // f = 0.01%, k = 1, reward 1 token: p = 1e-4, p (S + R) = 0.0101 < 1
    await expect(
      market.connect(sponsor).createJob(jobParams({ sampleCount: 1, cheatFractionBps: 1, rewardPerSlot: TOKEN }), "s", "g"),
    ).to.be.revertedWithCustomError(market, "JobMarketCheatingPays");
    // the demo's job: f = 10%, k = 2, reward 1 token, stake 100: fine
    await expect(market.connect(sponsor).createJob(jobParams({ rewardPerSlot: TOKEN, verifierFee: TOKEN / 10n }), "s", "g")).to.emit(
      market,
      "JobCreated",
    );
  });

  it("is paused by the guardian; unpaused works again", async function () {
    const { market, admin, sponsor } = await loadFixture(deployFixture);
    await expect(market.connect(admin).pause()).to.emit(market, "Paused").withArgs(admin.address);
    await expect(market.connect(admin).pause()).to.be.revertedWithCustomError(market, "EnforcedPause");
    await expect(market.connect(sponsor).createJob(jobParams(), "s", "g")).to.be.revertedWithCustomError(market, "EnforcedPause");
    await expect(market.connect(admin).unpause()).to.emit(market, "Unpaused").withArgs(admin.address);
    await expect(market.connect(admin).unpause()).to.be.revertedWithCustomError(market, "ExpectedPause");
    await expect(market.connect(sponsor).createJob(jobParams(), "s", "g")).to.emit(market, "JobCreated");
  });
});

describe("JobMarket: claims and submissions", function () {
  it("claimSlot: unknown job, job not open, wrong round, slot out of range, paused", async function () {
    const { market, admin, node1, sponsor } = await loadFixture(jobFixture);
    await expect(market.connect(node1).claimSlot(9n, 0n, 0n)).to.be.revertedWithCustomError(market, "JobMarketUnknownJob").withArgs(9n);
    await expect(market.connect(node1).claimSlot(1n, 1n, 0n)).to.be.revertedWithCustomError(market, "JobMarketWrongRound").withArgs(1n, 1n, 0n);
    await expect(market.connect(node1).claimSlot(1n, 0n, 2n))
      .to.be.revertedWithCustomError(market, "JobMarketSlotOutOfRange")
      .withArgs(2n, 2n);
    await (await market.connect(admin).pause()).wait();
    await expect(market.connect(node1).claimSlot(1n, 0n, 0n)).to.be.revertedWithCustomError(market, "EnforcedPause");
    await (await market.connect(admin).unpause()).wait();
    await (await market.connect(sponsor).cancelJob(1n)).wait();
    await expect(market.connect(node1).claimSlot(1n, 0n, 0n)).to.be.revertedWithCustomError(market, "JobMarketJobNotOpen").withArgs(1n);
  });

  it("claimSlot of a slot claimed, submitted or accepted: JobMarketSlotTaken; without free stake: the registry refuses", async function () {
    const f = await loadFixture(jobFixture);
    const { market, stakes, settlement, node1, node2, outsider } = f;
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    const taken = () => market.connect(node2).claimSlot(1n, 0n, 0n);
    await expect(taken()).to.be.revertedWithCustomError(market, "JobMarketSlotTaken").withArgs(1n, 0n, 0n);
    await (await market.connect(node1).submitContribution(1n, 0n, 0n, digest("o"), digest("t"), "o", "m")).wait();
    await expect(taken()).to.be.revertedWithCustomError(market, "JobMarketSlotTaken").withArgs(1n, 0n, 0n);
    await networkHelpers.mine();
    await (await settlement.recordSeed(1n)).wait();
    const v = (await settlement.verification(1n)).verifier;
    await (await settlement.connect(f.signers.find((s) => s.address === v)).attest(1n, true, "r", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(1n)).wait();
    await expect(taken()).to.be.revertedWithCustomError(market, "JobMarketSlotTaken").withArgs(1n, 0n, 0n);
    await expect(market.connect(outsider).claimSlot(1n, 0n, 1n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(outsider.address, 0n, PROTOCOL.minNodeStake);
    await (await market.connect(node1).claimSlot(1n, 0n, 1n)).wait(); // node1 is now fully locked
    await (await market.connect(f.sponsor).createJob(jobParams(), "s", "g")).wait();
    await expect(market.connect(node1).claimSlot(2n, 0n, 0n))
      .to.be.revertedWithCustomError(stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(node1.address, 0n, PROTOCOL.minNodeStake);
  });

  it("an expired claim is taken over (its lock released), or expired by anyone; the same node may re-claim", async function () {
    const f = await loadFixture(jobFixture);
    const { market, stakes, node1, node2, outsider } = f;
    const rx = await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    const deadline = (await timeOf(rx)) + BigInt(f.params.claimTimeout);
    await expect(market.connect(outsider).expireClaim(1n, 0n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketClaimNotExpired")
      .withArgs(deadline);
    await expect(market.connect(outsider).expireClaim(1n, 0n, 1n))
      .to.be.revertedWithCustomError(market, "JobMarketNotClaimed")
      .withArgs(1n, 0n, 1n);
    await networkHelpers.mine(BigInt(f.params.claimTimeout));
    const take = market.connect(node2).claimSlot(1n, 0n, 0n);
    await expect(take).to.emit(market, "ClaimExpired").withArgs(1n, 0n, 0n, node1.address);
    await expect(take).to.emit(stakes, "StakeUnlocked").withArgs(node1.address, PROTOCOL.minNodeStake, 0n);
    expect((await market.jobState(1n)).claimsOpen).to.equal(1n);
    await networkHelpers.mine(BigInt(f.params.claimTimeout) + 1n);
    const exp = market.connect(outsider).expireClaim(1n, 0n, 0n);
    await expect(exp).to.emit(market, "ClaimExpired").withArgs(1n, 0n, 0n, node2.address);
    await expect(exp).to.emit(stakes, "StakeUnlocked").withArgs(node2.address, PROTOCOL.minNodeStake, 0n);
    expect(await market.slotState(1n, 0n, 0n)).to.deep.equal([ethers.ZeroAddress, deadline + BigInt(f.params.claimTimeout) + 1n, SlotStatus.Open, 0n]);
    expect((await market.jobState(1n)).claimsOpen).to.equal(0n);
    await expect(market.connect(node2).claimSlot(1n, 0n, 0n)).to.emit(market, "SlotClaimed");
    await expectConservation(f);
  });

  it("submitContribution: not claimed, by another node, twice; after the deadline", async function () {
    const f = await loadFixture(jobFixture);
    const { market, node1, node2 } = f;
    const submit = (node, slot) => market.connect(node).submitContribution(1n, 0n, slot, digest("o"), digest("t"), "o", "m");
    await expect(submit(node1, 0n)).to.be.revertedWithCustomError(market, "JobMarketNotClaimant").withArgs(node1.address, ethers.ZeroAddress);
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    await expect(submit(node2, 0n)).to.be.revertedWithCustomError(market, "JobMarketNotClaimant").withArgs(node2.address, node1.address);
    await (await submit(node1, 0n)).wait();
    await expect(submit(node1, 0n)).to.be.revertedWithCustomError(market, "JobMarketNotClaimant");
    const rx = await (await market.connect(node2).claimSlot(1n, 0n, 1n)).wait();
    await networkHelpers.mine(BigInt(f.params.claimTimeout));
    await expect(submit(node2, 1n))
      .to.be.revertedWithCustomError(market, "JobMarketClaimExpired")
      .withArgs((await timeOf(rx)) + BigInt(f.params.claimTimeout));
  });

  it("submissions, settlement, refunds and withdrawals keep working while paused", async function () {
    const f = await loadFixture(jobFixture);
    const { market, settlement, stakes, admin, node1 } = f;
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    await (await market.connect(admin).pause()).wait();
    await (await market.connect(node1).submitContribution(1n, 0n, 0n, digest("o"), digest("t"), "o", "m")).wait();
    const id = 1n;
    await networkHelpers.mine();
    await (await settlement.recordSeed(id)).wait();
    const v = await settlement.verification(id);
    const verifier = f.signers.find((s) => s.address === v.verifier);
    await (await settlement.connect(verifier).attest(id, true, "r", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await expect(settlement.finalize(id)).to.emit(settlement, "ContributionFinalized").withArgs(id, true, REWARD, FEE, 0n);
    await expect(stakes.connect(node1).withdraw()).to.emit(stakes, "CreditsWithdrawn").withArgs(node1.address, REWARD);
    await (await stakes.connect(node1).requestUnbond(PROTOCOL.minNodeStake)).wait();
    await networkHelpers.time.increase(PROTOCOL.unbondingDelay);
    await expect(stakes.connect(node1).withdrawUnbonded()).to.emit(stakes, "UnbondWithdrawn");
    await expect(market.connect(f.sponsor).cancelJob(1n)).to.emit(market, "JobCancelled");
    await expect(market.connect(f.sponsor).refund(1n)).to.emit(market, "EscrowRefunded");
  });
});

describe("JobMarket: aggregates", function () {
  it("postAggregate: unknown job, wrong round, round incomplete, zero digest, twice, unstaked, job not open", async function () {
    const f = await loadFixture(courtFixture);
    const { market, node1, outsider } = f;
    const post = (who, round, d = digest("G_1")) => market.connect(who).postAggregate(1n, round, d, "g1", 1n);
    await expect(market.connect(node1).postAggregate(9n, 0n, digest("x"), "x", 1n))
      .to.be.revertedWithCustomError(market, "JobMarketUnknownJob")
      .withArgs(9n);
    await expect(post(node1, 1n)).to.be.revertedWithCustomError(market, "JobMarketWrongRound").withArgs(1n, 1n, 0n);
    await expect(post(node1, 0n)).to.be.revertedWithCustomError(market, "JobMarketRoundIncomplete").withArgs(1n, 0n, 0n, 2n);
    await completeRound(f);
    await expect(post(node1, 0n, ethers.ZeroHash)).to.be.revertedWithCustomError(market, "JobMarketInvalidParams").withArgs("modelDigest");
    await expect(post(outsider, 0n))
      .to.be.revertedWithCustomError(f.stakes, "StakeRegistryInsufficientFreeStake")
      .withArgs(outsider.address, 0n, PROTOCOL.disputeBond);
    await (await post(node1, 0n)).wait();
    await expect(post(node1, 0n)).to.be.revertedWithCustomError(market, "JobMarketAggregateExists").withArgs(1n, 0n);
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await expect(market.finalizeAggregate(1n, 0n)).to.emit(market, "JobCompleted").withArgs(1n);
    await expect(post(node1, 1n)).to.be.revertedWithCustomError(market, "JobMarketJobNotOpen").withArgs(1n);
  });

  it("finalizeAggregate: unknown job, none posted, inside the window, twice", async function () {
    const f = await loadFixture(courtFixture);
    const { market, node1 } = f;
    await expect(market.finalizeAggregate(9n, 0n)).to.be.revertedWithCustomError(market, "JobMarketUnknownJob").withArgs(9n);
    await expect(market.finalizeAggregate(1n, 0n)).to.be.revertedWithCustomError(market, "JobMarketNoPendingAggregate").withArgs(1n, 0n);
    await completeRound(f);
    const rx = await (await market.connect(node1).postAggregate(1n, 0n, digest("G_1"), "g1", 1n)).wait();
    await expect(market.finalizeAggregate(1n, 0n))
      .to.be.revertedWithCustomError(market, "JobMarketAggregateWindowOpen")
      .withArgs(1n, 0n, (await timeOf(rx)) + PROTOCOL.challengeWindow + 1n);
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await market.finalizeAggregate(1n, 0n)).wait();
    await expect(market.finalizeAggregate(1n, 0n)).to.be.revertedWithCustomError(market, "JobMarketNoPendingAggregate");
    const a = await market.aggregateState(1n, 0n);
    expect([a.status, a.challengeDeadline]).to.deep.equal([AggregateStatus.Final, (await timeOf(rx)) + PROTOCOL.challengeWindow]);
  });
});

describe("JobMarket: cancel and refund", function () {
  it("cancel: unknown job, not the sponsor, job not open, an aggregate pending or disputed", async function () {
    const f = await loadFixture(courtFixture);
    const { market, disputes, sponsor, node1, node3, outsider } = f;
    await expect(market.connect(sponsor).cancelJob(9n)).to.be.revertedWithCustomError(market, "JobMarketUnknownJob").withArgs(9n);
    await expect(market.connect(outsider).cancelJob(1n)).to.be.revertedWithCustomError(market, "JobMarketNotSponsor").withArgs(outsider.address);
    await completeRound(f);
    await (await market.connect(node1).postAggregate(1n, 0n, digest("G_1"), "g1", 1n)).wait();
    await expect(market.connect(sponsor).cancelJob(1n)).to.be.revertedWithCustomError(market, "JobMarketAggregatePending").withArgs(1n, 0n);
    await (await disputes.connect(node3).challengeAggregate(1n, 0n, digest("other"), "o", 1n)).wait();
    await expect(market.connect(sponsor).cancelJob(1n)).to.be.revertedWithCustomError(market, "JobMarketAggregatePending").withArgs(1n, 0n);
    await (await market.connect(sponsor).createJob(jobParams(), "s", "g")).wait();
    await expect(market.connect(sponsor).cancelJob(2n)).to.emit(market, "JobCancelled").withArgs(2n, 0n);
    await expect(market.connect(sponsor).cancelJob(2n)).to.be.revertedWithCustomError(market, "JobMarketJobNotOpen").withArgs(2n);
  });

  it("refund: unknown job, not the sponsor, job still open, nothing left", async function () {
    const f = await loadFixture(jobFixture);
    const { market, sponsor, outsider } = f;
    await expect(market.connect(sponsor).refund(9n)).to.be.revertedWithCustomError(market, "JobMarketUnknownJob").withArgs(9n);
    await expect(market.connect(outsider).refund(1n)).to.be.revertedWithCustomError(market, "JobMarketNotSponsor").withArgs(outsider.address);
    await expect(market.connect(sponsor).refund(1n)).to.be.revertedWithCustomError(market, "JobMarketNotFinished").withArgs(1n);
    expect(await market.refundable(1n)).to.equal(0n);
    await (await market.connect(sponsor).cancelJob(1n)).wait();
    await (await market.connect(sponsor).refund(1n)).wait();
    await expect(market.connect(sponsor).refund(1n)).to.be.revertedWithCustomError(market, "JobMarketNothingToRefund").withArgs(1n);
  });

  it("a cancelled job refunds what nobody claimed at once, pays the work in flight, then refunds the rest", async function () {
    const f = await loadFixture(courtFixture);
    const { token, stakes, market, settlement, sponsor, node1, node2 } = f;
    // a 3-round, 2-slot job: round 0 slot 0 is submitted, slot 1 claimed, when the sponsor cancels
    await (await market.connect(sponsor).createJob(jobParams({ rounds: 3 }), "s", "g")).wait();
    const escrow = escrowOf(jobParams({ rounds: 3 }));
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1, jobId: 2n, slot: 0n });
    await (await market.connect(node2).claimSlot(2n, 0n, 1n)).wait();
    await expect(market.connect(sponsor).cancelJob(2n)).to.emit(market, "JobCancelled").withArgs(2n, 0n);
    expect((await market.jobState(2n)).status).to.equal(JobStatus.Cancelled);
    const inFlight = 2n * (REWARD + FEE);
    expect(await market.refundable(2n)).to.equal(escrow - inFlight);
    const refundTx = market.connect(sponsor).refund(2n);
    await expect(refundTx).to.emit(market, "EscrowRefunded").withArgs(2n, sponsor.address, escrow - inFlight);
    await expect(refundTx).to.changeTokenBalances(ethers, token, [sponsor, stakes], [escrow - inFlight, -(escrow - inFlight)]);
    await expectConservation(f);
    // the submitted slot is still verified and paid
    await (await settlement.connect(verifier).attest(id, true, "r", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    expect(await stakes.creditsOf(node1.address)).to.equal(REWARD);
    expect(await market.refundable(2n)).to.equal(0n);
    // the claimed slot expires (its node unlocked) and its reserve comes back to the sponsor
    await networkHelpers.mine(50);
    await (await market.expireClaim(2n, 0n, 1n)).wait();
    expect(await stakes.lockedOf(node2.address)).to.equal(0n);
    await expect(market.connect(sponsor).refund(2n)).to.emit(market, "EscrowRefunded").withArgs(2n, sponsor.address, REWARD + FEE);
    expect((await market.jobState(2n)).escrow).to.equal(0n);
    await expectConservation(f);
  });

  it("a cancelled job's rejected contribution frees its reserve for the sponsor", async function () {
    const f = await loadFixture(courtFixture);
    const { market, settlement, sponsor, node1 } = f;
    const { id, verifier } = await claimSubmitSeed(f, connection, { node: node1 });
    await (await market.connect(sponsor).cancelJob(1n)).wait();
    await (await market.connect(sponsor).refund(1n)).wait();
    await (await settlement.connect(verifier).attest(id, false, "r", REPORT_HASH)).wait();
    await networkHelpers.time.increase(PROTOCOL.challengeWindow);
    await (await settlement.finalize(id)).wait();
    await expect(market.connect(sponsor).refund(1n)).to.emit(market, "EscrowRefunded").withArgs(1n, sponsor.address, REWARD + FEE);
    await expect(market.connect(node1).claimSlot(1n, 0n, 0n)).to.be.revertedWithCustomError(market, "JobMarketJobNotOpen");
    await expectConservation(f);
  });
});
