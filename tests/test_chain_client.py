"""The Python chain client against the in-process chain: every call a role makes beyond the
straight path (unbonding, cancel and refund, expired claims, missed attestations, contests,
challenges, committees, aggregate disputes), the typed readers, and decoded reverts."""

from __future__ import annotations

import hashlib

import pytest
from conftest import Market

from opentrain.chain.account import ChainAccount
from opentrain.chain.client import ProtocolParams
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
from opentrain.protocol.economics import cheating_loses, detection_probability

P = ProtocolParams()
REWARD, FEE = TOKEN, TOKEN // 10


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
        verifier.attest(cid, passed, "bafy-report")
        return cid, verifier

    def committee_votes(self, dispute_id: int, valid: bool) -> list[ChainAccount]:
        self.chain.mine(1)
        members = [self.by_address(m) for m in self.sponsor.draw_committee(dispute_id)]
        for m in members:
            m.vote(dispute_id, valid, "bafy-vote")
        self.chain.mine(P.vote_window + 1)
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
    assert info.unbond_ready_block == market.chain.block_number() + P.unbonding_delay
    with pytest.raises(ChainError, match=r"StakeRegistryUnbondingNotReady\(readyBlock="):
        node.withdraw_unbonded()
    market.chain.mine(P.unbonding_delay)
    before = node.balance()
    node.withdraw_unbonded()
    assert node.balance() - before == 50 * TOKEN
    assert node.unbonding_of() == (0, info.unbond_ready_block)
    with pytest.raises(ChainError, match=r"withdraw refused: StakeRegistryNothingToWithdraw"):
        node.withdraw()


def test_cancel_refund_and_expired_claims(court: Court) -> None:
    chain, sponsor, node = court.chain, court.sponsor, court.nodes[0]
    job = sponsor.create_job(params(rounds=2, slots_per_round=2, claim_timeout=10), "s", "g")
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
    chain.mine(11)
    sponsor.expire_claim(job, 0, 0)
    assert stake_info(chain, node.address).locked == 0
    assert sponsor.refundable(job) == in_flight
    sponsor.refund(job)
    assert job_info(chain, job).escrow == 0
    with pytest.raises(ChainError, match=r"claimSlot\(job 1, round 0, slot 0\) refused: "):
        node.claim_slot(job, 0, 0)


def test_a_missed_attestation_is_taken_over(court: Court) -> None:
    chain = court.chain
    job = court.sponsor.create_job(params(), "s", "g")
    cid = court.submit(job, 0, court.nodes[0])
    lazy = court.assigned(cid)
    info = verification_info(chain, cid)
    assert info.phase is Phase.ASSIGNED
    assert info.attest_deadline == info.seed_recorded_at + P.attest_window
    taker = next(v for v in court.verifiers if v.address != lazy.address)
    with pytest.raises(
        ChainError, match=r"SettlementAttestWindowOpen\(contributionId=1, deadline="
    ):
        taker.claim_attestation(cid)
    chain.mine(P.attest_window)
    taker.claim_attestation(cid)
    assert verification_info(chain, cid).verifier == taker.address
    assert stake_info(chain, lazy.address).staked == 200 * TOKEN - P.verifier_lock
    with pytest.raises(ChainError, match=r"SettlementNotAssignedVerifier\(caller=0x"):
        lazy.attest(cid, True, "late")
    taker.attest(cid, True, "bafy-report")
    chain.mine(P.challenge_window + 1)
    taker.finalize(cid)
    assert contribution_info(chain, cid).status is ContributionStatus.ACCEPTED
    penalty_share = P.verifier_lock * P.slash_reward_bps // 10_000
    assert taker.credits() == penalty_share + FEE


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
    chain.mine(P.challenge_window + 1)
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
    chain.mine(P.challenge_window)
    court.sponsor.finalize_aggregate(job, 0)
    assert round_model_cid(chain, job_info(chain, job), 1) == ("bafy-right", fake("right"))
    assert job_info(chain, job).current_round == 1
    # on a dev chain post_aggregate sees an undisputed aggregate through by default
    second = court.submit(job, 0, court.nodes[1], round_=1)
    court.assigned(second).attest(second, True, "r")
    chain.mine(P.challenge_window + 1)
    court.sponsor.finalize(second)
    poster.post_aggregate(job, 1, fake("G_2"), "bafy-g2", 2.0)
    assert job_info(chain, job).status is JobStatus.COMPLETED
    assert aggregate_info(chain, job, 1).status is AggregateStatus.FINAL


def test_unknown_dispute_and_readers(market: Market) -> None:
    with pytest.raises(ChainError, match=r"dispute 7: DisputesUnknownDispute\(disputeId=7\)"):
        dispute_info(market.chain, 7)
    assert aggregate_info(market.chain, 1, 0).status is AggregateStatus.NONE
    assert verification_info(market.chain, 1).phase is Phase.NONE
