"""The Python chain client against the in-process chain: every call a role makes beyond the
straight path (unbonding, cancel and refund, expired claims, queued draws, missed attestations
and takeovers, unrecorded seeds, contests, challenges, committees and their escalation,
aggregate disputes), the typed readers, and decoded reverts. Windows are seconds, passed with
``Chain.advance``."""

from __future__ import annotations

import hashlib

import pytest
from conftest import Market
from web3.logs import DISCARD

from opentrain.chain.account import ChainAccount
from opentrain.chain.client import DEV_PARAMS
from opentrain.chain.types import (
    TOKEN,
    AggregateStatus,
    ChainError,
    ContributionStatus,
    DisputeKind,
    DisputeStatus,
    JobParams,
    JobStatus,
    Phase,
    Ruling,
    Verdict,
)
from opentrain.chain.views import (
    aggregate_info,
    contribution_info,
    dispute_info,
    job_info,
    round_model_cid,
    stake_info,
    verification_info,
)
from opentrain.protocol.draws import VERIFIER_TAG, Snapshot, draw_and_lock
from opentrain.protocol.economics import cheating_loses, detection_probability
from opentrain.protocol.sampling import recomputed_digests_hash

P = DEV_PARAMS
REWARD, FEE = TOKEN, TOKEN // 10
DIGESTS_HASH = recomputed_digests_hash([hashlib.sha256(b"recomputed").digest()])


def fake(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def params(**overrides: int) -> JobParams:
    base = {"rounds": 1, "slots_per_round": 1, "num_segments": 4, "sample_count": 2}
    base.update(overrides)
    return JobParams(fake("spec"), fake("G_0"), reward_per_slot=REWARD, verifier_fee=FEE, **base)


class Court:
    """A sponsor, three nodes and five registered verifiers with room for several locks."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.chain = market.chain
        self.sponsor = market.new_account()
        self.nodes = [market.new_account() for _ in range(3)]
        self.verifiers = [market.new_account() for _ in range(5)]
        for n in self.nodes:
            n.stake(300 * TOKEN)
        for v in self.verifiers:
            v.stake(200 * TOKEN)
            v.register_verifier()

    def by_address(self, address: str) -> ChainAccount:
        everyone = [self.sponsor, *self.nodes, *self.verifiers]
        return next(a for a in everyone if a.address.lower() == address.lower())

    def submit(self, job_id: int, slot: int, node: ChainAccount, round_: int = 0) -> int:
        node.claim_slot(job_id, round_, slot)
        label = f"{job_id}/{round_}/{slot}"
        return node.submit_contribution(
            job_id, round_, slot, fake("out " + label), fake("trace " + label), "bafy-o", "bafy-m"
        )

    def assigned(self, contribution_id: int) -> ChainAccount:
        self.chain.mine(1)
        self.sponsor.record_seed(contribution_id)
        return self.by_address(verification_info(self.chain, contribution_id).verifier)

    def attested(
        self, job_id: int, slot: int, node: ChainAccount, passed: bool
    ) -> tuple[int, ChainAccount]:
        cid = self.submit(job_id, slot, node)
        verifier = self.assigned(cid)
        verifier.attest(cid, passed, "bafy-report", DIGESTS_HASH)
        return cid, verifier

    def committee_votes(
        self, dispute_id: int, valid: bool, voters: int | None = None
    ) -> list[ChainAccount]:
        self.chain.mine(1)
        members = [self.by_address(m) for m in self.sponsor.draw_committee(dispute_id)]
        for m in members[:voters]:
            m.vote(dispute_id, valid, "bafy-vote")
        self.chain.advance_to(dispute_info(self.chain, dispute_id).vote_deadline + 1)
        return members


@pytest.fixture
def court(market: Market) -> Court:
    return Court(market)


def test_params_read_back_and_the_cheat_rule_agree_with_the_contract(market: Market) -> None:
    assert market.chain.params() == P
    assert detection_probability(1_000, 2) == 19 * 10**16  # 1 - 0.9^2 = 0.19
    assert detection_probability(10_000, 1) == 10**18
    sponsor = market.new_account()
    limit = P.min_node_stake // 9  # f = 10%, k = 1: 0.1 (S + R) > R iff R < S / 9
    assert cheating_loses(1_000, 1, P.min_node_stake, limit)
    assert not cheating_loses(1_000, 1, P.min_node_stake, limit + 1)
    ok = JobParams(fake("s"), fake("g"), 1, 1, 4, 1, limit, 0)
    assert sponsor.create_job(ok, "s", "g") == 1
    bad = JobParams(fake("s"), fake("g"), 1, 1, 4, 1, limit + 1, 0)
    with pytest.raises(
        ChainError, match=r"createJob refused: JobMarketCheatingPays\(detectionWad="
    ):
        sponsor.create_job(bad, "s", "g")
    assert job_info(market.chain, 1).params.cheat_fraction_bps == 1_000


def test_unbonding_and_stake_info(market: Market) -> None:
    node = market.new_account()
    node.stake(150 * TOKEN)
    node.request_unbond(50 * TOKEN)
    info = stake_info(market.chain, node.address)
    assert (info.staked, info.locked, info.free, info.unbonding) == (
        100 * TOKEN,
        0,
        100 * TOKEN,
        50 * TOKEN,
    )
    assert info.unbond_ready_at == market.chain.timestamp() + P.unbonding_delay
    with pytest.raises(ChainError, match=r"StakeRegistryUnbondingNotReady\(readyBlock="):
        node.withdraw_unbonded()
    market.chain.advance(P.unbonding_delay)
    before = node.balance()
    node.withdraw_unbonded()
    assert node.balance() - before == 50 * TOKEN
    assert node.unbonding_of()[0] == 0
    with pytest.raises(ChainError, match=r"withdraw refused: StakeRegistryNothingToWithdraw"):
        node.withdraw()


def test_cancel_refund_and_expired_claims(court: Court) -> None:
    chain, sponsor, node = court.chain, court.sponsor, court.nodes[0]
    job = sponsor.create_job(params(rounds=2, slots_per_round=2, claim_timeout=60), "s", "g")
    node.claim_slot(job, 0, 0)
    assert stake_info(chain, node.address).locked == P.min_node_stake
    with pytest.raises(ChainError, match=r"refund\(job 1\) refused: JobMarketNotFinished"):
        sponsor.refund(job)
    sponsor.cancel_job(job)
    info = job_info(chain, job)
    assert info.status is JobStatus.CANCELLED and info.claims_open == 1
    in_flight = REWARD + FEE
    assert sponsor.refundable(job) == params(rounds=2, slots_per_round=2).escrow - in_flight
    sponsor.refund(job)
    with pytest.raises(ChainError, match=r"JobMarketClaimNotExpired\(deadline="):
        sponsor.expire_claim(job, 0, 0)
    chain.advance(61)
    sponsor.expire_claim(job, 0, 0)
    assert stake_info(chain, node.address).locked == 0
    assert sponsor.refundable(job) == in_flight
    sponsor.refund(job)
    assert job_info(chain, job).escrow == 0
    with pytest.raises(ChainError, match=r"claimSlot\(job 1, round 0, slot 0\) refused: "):
        node.claim_slot(job, 0, 0)


def test_a_missed_attestation_is_taken_over_by_a_fresh_draw(court: Court) -> None:
    chain = court.chain
    job = court.sponsor.create_job(params(), "s", "g")
    node = court.nodes[0]
    cid = court.submit(job, 0, node)
    lazy = court.assigned(cid)
    info = verification_info(chain, cid)
    assert (
        info.phase is Phase.ASSIGNED
        and info.snapshot_block == contribution_info(chain, cid).submit_block
    )
    assert info.attest_deadline == info.seed_recorded_at + P.attest_window
    with pytest.raises(
        ChainError, match=r"SettlementAttestWindowOpen\(contributionId=1, deadline="
    ):
        node.request_takeover(cid)
    chain.advance_to(info.attest_deadline + 1)
    receipt = node.request_takeover(cid)  # anyone may; the node wants its work verified
    missed = chain.settlement.events.AttestationMissed().process_receipt(receipt, errors=DISCARD)[
        0
    ]["args"]
    assert (missed["previousVerifier"], missed["takeover"]) == (lazy.address, 1)
    assert missed["drawBlock"] == receipt["blockNumber"] + 1
    info = verification_info(chain, cid)
    assert info.phase is Phase.QUEUED and info.takeovers == 1
    assert info.previous_verifier == lazy.address
    # the lazy verifier's lock is burned entirely: nobody profits from a missed window
    assert stake_info(chain, lazy.address).staked == 200 * TOKEN - P.verifier_lock
    chain.mine(1)
    court.sponsor.assign_verifier(cid)
    taker = court.by_address(verification_info(chain, cid).verifier)
    assert taker.address not in (lazy.address, node.address)
    with pytest.raises(ChainError, match=r"SettlementNotAssignedVerifier\(caller=0x"):
        lazy.attest(cid, True, "late", DIGESTS_HASH)
    taker.attest(cid, True, "bafy-report", DIGESTS_HASH)
    assert verification_info(chain, cid).recomputed_digests_hash == DIGESTS_HASH
    chain.advance(P.challenge_window + 1)
    taker.finalize(cid)
    assert contribution_info(chain, cid).status is ContributionStatus.ACCEPTED
    assert taker.credits() == FEE
    assert all(v.credits() == 0 for v in court.verifiers if v is not taker)


def test_a_busy_draw_queues_for_the_drawn_verifier_as_python_predicts(market: Market) -> None:
    chain = market.chain
    sponsor, verifier = market.new_account(), market.new_account()
    verifier.stake(P.min_verifier_stake)  # room for exactly two verifier locks
    verifier.register_verifier()
    nodes = [market.new_account() for _ in range(3)]
    for n in nodes:
        n.stake(200 * TOKEN)
    chain.mine(P.draw_lag)
    job = sponsor.create_job(params(slots_per_round=3), "s", "g")
    ids = []
    for slot, n in enumerate(nodes):
        n.claim_slot(job, 0, slot)
        ids.append(
            n.submit_contribution(job, 0, slot, fake(f"o{slot}"), fake(f"t{slot}"), "o", "m")
        )
    chain.mine(1)
    for cid in ids:
        sponsor.record_seed(cid)
    first, _, third = (verification_info(chain, c) for c in ids)
    assert first.verifier == verifier.address and first.phase is Phase.ASSIGNED
    assert third.phase is Phase.QUEUED and third.verifier == "0x" + "00" * 20
    assert third.draw_seed == third.seed  # the queue continues the same draw
    # Python's mirror of drawAndLock predicts the queue: the ticket lands on a busy verifier
    snap = Snapshot.of(*chain.stakes.functions.verifierSnapshot(third.snapshot_block).call())
    drawn, counter = draw_and_lock(
        third.draw_seed, VERIFIER_TAG, snap, 1, 0, {nodes[2].address}, lambda a: False, True
    )
    assert (drawn, counter) == ([], third.draw_counter)
    with pytest.raises(ChainError, match="SettlementNotQueued"):
        sponsor.assign_verifier(ids[0])
    verifier.attest(ids[0], True, "r", DIGESTS_HASH)
    chain.advance(P.challenge_window + 1)
    sponsor.finalize(ids[0])  # the verifier's lock comes back: the queue can be served
    receipt = sponsor.assign_verifier(ids[2])
    assigned = chain.settlement.events.VerifierAssigned().process_receipt(receipt, errors=DISCARD)[
        0
    ]["args"]
    assert assigned["verifier"] == verifier.address
    assert assigned["deadline"] == verification_info(chain, ids[2]).attest_deadline
    assert verification_info(chain, ids[2]).phase is Phase.ASSIGNED


def test_a_seed_nobody_recorded_fails_the_contribution_instead_of_rerolling(
    court: Court,
) -> None:
    chain, node = court.chain, court.nodes[0]
    job = court.sponsor.create_job(params(), "s", "g")
    cid = court.submit(job, 0, node)
    chain.mine(1)
    with pytest.raises(ChainError, match=r"SettlementSeedReadable\(contributionId=1"):
        court.sponsor.fail_unrecorded(cid)
    chain.mine(300)  # BLOCKHASH reads 256 blocks back (no EIP-2935 history on this chain)
    with pytest.raises(ChainError, match=r"SettlementSeedExpired\(contributionId=1"):
        court.sponsor.record_seed(cid)
    court.sponsor.fail_unrecorded(cid)
    assert contribution_info(chain, cid).status is ContributionStatus.REJECTED
    assert stake_info(chain, node.address).staked == 300 * TOKEN - P.min_node_stake
    assert verification_info(chain, cid).phase is Phase.REJECTED


def test_an_undisputed_fail_pays_the_verifier_only_its_fee(court: Court) -> None:
    chain, node = court.chain, court.nodes[0]
    job = court.sponsor.create_job(params(), "s", "g")
    supply = int(chain.token.functions.totalSupply().call())
    cid, verifier = court.attested(job, 0, node, passed=False)
    chain.advance(P.challenge_window + 1)
    court.sponsor.finalize(cid)
    assert verifier.credits() == FEE  # what a pass pays, no slash share
    assert stake_info(chain, node.address).staked == 300 * TOKEN - P.min_node_stake
    burned = supply - int(chain.token.functions.totalSupply().call())
    assert burned == P.min_node_stake - FEE


def test_contest_end_to_end_an_honest_node_wins_and_the_accuser_is_slashed(court: Court) -> None:
    chain, node = court.chain, court.nodes[0]
    job = court.sponsor.create_job(params(), "s", "g")
    cid, accuser = court.attested(job, 0, node, passed=False)
    assert verification_info(chain, cid).verdict is Verdict.FAIL
    with pytest.raises(ChainError, match=r"contest\(1\) refused: SettlementNotNode\(caller=0x"):
        court.nodes[1].contest(cid)
    dispute_id = node.contest(cid)
    d = dispute_info(chain, dispute_id)
    assert (d.kind, d.status, d.contribution_id, d.disputer, d.defendant) == (
        DisputeKind.CONTEST,
        DisputeStatus.AWAITING_COMMITTEE,
        cid,
        node.address,
        accuser.address,
    )
    assert verification_info(chain, cid).phase is Phase.DISPUTED
    with pytest.raises(ChainError, match=r"finalize\(1\) refused: SettlementUnderDispute"):
        node.finalize(cid)
    members = court.committee_votes(dispute_id, valid=True)
    assert len(members) == P.committee_size
    assert {m.address for m in members}.isdisjoint({node.address, accuser.address})
    assert court.sponsor.resolve_dispute(dispute_id) is Ruling.VALID
    d = dispute_info(chain, dispute_id)
    assert (d.status, d.ruling, d.valid_votes, d.invalid_votes) == (
        DisputeStatus.RESOLVED,
        Ruling.VALID,
        3,
        0,
    )
    winner_share = P.verifier_lock * P.slash_reward_bps // 10_000
    assert node.credits() == REWARD + winner_share
    assert stake_info(chain, node.address).locked == 0
    assert stake_info(chain, accuser.address).staked == 200 * TOKEN - P.verifier_lock
    assert contribution_info(chain, cid).status is ContributionStatus.ACCEPTED
    each = P.verifier_lock * P.committee_reward_bps // 10_000 // 3
    assert all(m.credits() == each for m in members)


def test_a_cheating_node_loses_its_contest_and_a_lazy_pass_loses_its_challenge(
    court: Court,
) -> None:
    chain, cheat, challenger = court.chain, court.nodes[0], court.nodes[2]
    job = court.sponsor.create_job(params(slots_per_round=2), "s", "g")
    failed, accuser = court.attested(job, 0, cheat, passed=False)
    dispute_id = cheat.contest(failed)
    court.committee_votes(dispute_id, valid=False)
    assert court.sponsor.resolve_dispute(dispute_id) is Ruling.INVALID
    assert (
        stake_info(chain, cheat.address).staked == 300 * TOKEN - P.min_node_stake - P.dispute_bond
    )
    lock_share = P.min_node_stake * P.slash_reward_bps // 10_000
    bond_share = P.dispute_bond * P.slash_reward_bps // 10_000
    assert accuser.credits() == lock_share + bond_share

    passed, lazy = court.attested(job, 1, court.nodes[1], passed=True)
    dispute_id = challenger.challenge(passed)
    assert dispute_info(chain, dispute_id).kind is DisputeKind.CHALLENGE
    court.committee_votes(dispute_id, valid=False)
    assert court.sponsor.resolve_dispute(dispute_id) is Ruling.INVALID
    assert contribution_info(chain, passed).status is ContributionStatus.REJECTED
    assert stake_info(chain, lazy.address).staked == 200 * TOKEN - P.verifier_lock
    assert (
        challenger.credits() == (P.min_node_stake + P.verifier_lock) * P.slash_reward_bps // 10_000
    )


def test_a_wrong_aggregate_is_replaced_before_it_becomes_the_next_round_model(court: Court) -> None:
    chain, poster, challenger = court.chain, court.nodes[0], court.nodes[2]
    job = court.sponsor.create_job(params(rounds=2), "s", "g-cid")
    cid, _ = court.attested(job, 0, court.nodes[1], passed=True)
    chain.advance(P.challenge_window + 1)
    court.sponsor.finalize(cid)
    poster.post_aggregate(job, 0, fake("wrong"), "bafy-wrong", 3.5, wait_final=False)
    agg = aggregate_info(chain, job, 0)
    assert (agg.status, agg.poster, agg.model_digest, agg.validation_loss) == (
        AggregateStatus.PENDING,
        poster.address,
        fake("wrong"),
        3.5,
    )
    info = job_info(chain, job)
    with pytest.raises(ChainError, match="no final aggregate for round 0"):
        round_model_cid(chain, info, 1)
    dispute_id = challenger.challenge_aggregate(job, 0, fake("right"), "bafy-right", 2.5)
    assert aggregate_info(chain, job, 0).status is AggregateStatus.DISPUTED
    court.committee_votes(dispute_id, valid=False)
    assert court.sponsor.resolve_dispute(dispute_id) is Ruling.INVALID
    agg = aggregate_info(chain, job, 0)
    assert (agg.status, agg.poster, agg.model_cid) == (
        AggregateStatus.PENDING,
        challenger.address,
        "bafy-right",
    )
    with pytest.raises(ChainError, match=r"JobMarketAggregateWindowOpen\(jobId=1, round=0"):
        court.sponsor.finalize_aggregate(job, 0)
    chain.advance_to(aggregate_info(chain, job, 0).challenge_deadline + 1)
    court.sponsor.finalize_aggregate(job, 0)
    assert round_model_cid(chain, job_info(chain, job), 1) == ("bafy-right", fake("right"))
    assert job_info(chain, job).current_round == 1
    # on a dev chain post_aggregate sees an undisputed aggregate through by default
    second = court.submit(job, 0, court.nodes[1], round_=1)
    court.assigned(second).attest(second, True, "r", DIGESTS_HASH)
    chain.advance(P.challenge_window + 1)
    court.sponsor.finalize(second)
    poster.post_aggregate(job, 1, fake("G_2"), "bafy-g2", 2.0)
    assert job_info(chain, job).status is JobStatus.COMPLETED
    assert aggregate_info(chain, job, 1).status is AggregateStatus.FINAL


def test_unknown_dispute_and_readers(market: Market) -> None:
    with pytest.raises(ChainError, match=r"dispute 7: DisputesUnknownDispute\(disputeId=7\)"):
        dispute_info(market.chain, 7)
    assert aggregate_info(market.chain, 1, 0).status is AggregateStatus.NONE
    assert verification_info(market.chain, 1).phase is Phase.NONE


def test_too_few_votes_escalate_and_no_quorum_at_the_end_redoes_the_slot_without_a_slash(
    court: Court,
) -> None:
    chain, node = court.chain, court.nodes[0]
    for v in court.verifiers:  # room for a seat in every round
        v.stake(300 * TOKEN)
    chain.mine(P.draw_lag)
    job = court.sponsor.create_job(params(), "s", "g")
    cid, accuser = court.attested(job, 0, node, passed=False)
    dispute_id = node.contest(cid)
    for round_ in range(3):  # rounds 0, 1, 2: nobody votes
        members = court.committee_votes(dispute_id, valid=True, voters=0)
        assert len(members) == min(P.committee_size + 2 * round_, 4)  # 4 eligible verifiers
        ruling = court.sponsor.resolve_dispute(dispute_id)
        d = dispute_info(chain, dispute_id)
        if round_ < 2:
            assert ruling is Ruling.NONE and d.escalation == round_ + 1
            assert d.status is DisputeStatus.AWAITING_COMMITTEE
    assert ruling is Ruling.UNDECIDED
    # Undecided on a contest: redo the slot, nobody's lock or bond is slashed
    assert contribution_info(chain, cid).status is ContributionStatus.REJECTED
    assert stake_info(chain, node.address).staked == 300 * TOKEN
    assert stake_info(chain, node.address).locked == 0
    assert stake_info(chain, accuser.address).staked == 500 * TOKEN
    assert stake_info(chain, accuser.address).locked == 0
    assert node.credits() == accuser.credits() == 0
