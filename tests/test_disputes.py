"""Disputes end to end on the chain with real re-execution, driven by the daemons themselves:
a cheating node that contests its fail loses and is slashed; an honest node failed by a lying
verifier contests on its own, wins the committee vote and the liar is slashed (also when the
fail comes late in the window, answered by the node's watcher thread while it trains the next
slot); a wrong aggregate is challenged by a verifier, replaced, and the next round trains from
the right one; an absent committee escalates and ends Undecided: the slot is redone, nobody
slashed. Windows are seconds: the daemons' passes move the clock with ``Chain.advance``."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from conftest import Market

from node.daemon import NodeDaemon
from node.disputes import Aftercare
from opentrain.chain.account import ChainAccount
from opentrain.chain.client import DEV_PARAMS
from opentrain.chain.types import (
    TOKEN,
    AggregateStatus,
    ContributionStatus,
    DisputeKind,
    DisputeStatus,
    JobParams,
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
from opentrain.cli.demo import post_bounty, skip_training
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.spec import JobSpec
from opentrain.training.checkpoint import decode_params, digest, encode_params
from verifier.audit import Auditor
from verifier.daemon import VerifierDaemon

P = DEV_PARAMS
STAKE = 200 * TOKEN
STEP = P.challenge_window // 5  # seconds of chain time per daemon pass
FAKE_HASH = hashlib.sha256(b"nothing recomputed").digest()


class Cast:
    """A sponsor, nodes running the node daemon and four verifiers running the verifier
    daemon (a contest excludes node and verifier, leaving exactly a committee of three)."""

    def __init__(self, market: Market, spec: JobSpec) -> None:
        self.market, self.chain, self.spec = market, market.chain, spec
        self.sponsor = market.new_account()
        self.verifiers = [market.new_account() for _ in range(4)]
        for v in self.verifiers:
            v.stake(STAKE)
            v.register_verifier()
        self.daemons = {
            v.address: VerifierDaemon(v, market.store, market.home / f"v{i}.json")
            for i, v in enumerate(self.verifiers)
        }
        self.job_id = post_bounty(self.sponsor, market.store, spec)

    def node(self, name: str, **kwargs: object) -> tuple[ChainAccount, NodeDaemon]:
        account = self.market.new_account()
        account.stake(STAKE)
        return account, NodeDaemon(account, self.market.store, self.market.home / name, **kwargs)  # type: ignore[arg-type]

    def run(
        self,
        done: Callable[[], bool],
        nodes: tuple[NodeDaemon, ...] = (),
        skip: tuple[str, ...] = (),
        passes: int = 80,
    ) -> None:
        """Step every daemon (verifiers not in ``skip``, the nodes' aftercare), ``STEP``
        seconds of chain time per pass, until ``done``."""
        for _ in range(passes):
            if done():
                return
            for address, daemon in self.daemons.items():
                if address not in skip:
                    daemon.step()
            for n in nodes:
                n.aftercare.step()
            self.chain.advance(STEP)
        raise AssertionError("the daemons did not get there")

    def falsely_failed(self) -> tuple[ChainAccount, NodeDaemon, int, ChainAccount]:
        """An honest node's slot that its drawn verifier fails anyway: (node, its daemon,
        the contribution, the lying verifier)."""
        node, daemon = self.node("honest")
        contribution = daemon.run_once()
        assert contribution is not None
        liar = self.drawn_verifier(contribution)
        report = self.market.store.put_bytes(b'{"passed":false}')
        liar.attest(contribution, False, report, FAKE_HASH)
        return node, daemon, contribution, liar

    def drawn_verifier(self, contribution_id: int) -> ChainAccount:
        """The verifier drawn when the node's daemon recorded its own seed."""
        drawn = verification_info(self.chain, contribution_id).verifier
        return next(v for v in self.verifiers if v.address == drawn)


def spec_one_slot() -> JobSpec:
    return mlp_demo_spec(rounds=1, slots_per_round=1)


def test_cheating_node_contests_its_fail_loses_the_vote_and_is_slashed(market: Market) -> None:
    cast = Cast(market, spec_one_slot())
    cheat, daemon = cast.node("cheat", segment_fn=skip_training)
    contribution = daemon.run_once()
    assert contribution is not None
    cast.run(lambda: verification_info(cast.chain, contribution).verdict is Verdict.FAIL)
    accuser = verification_info(cast.chain, contribution).verifier

    # its own daemon re-executes first and does not throw a bond after a fail it cannot win
    daemon.aftercare.step()
    assert verification_info(cast.chain, contribution).phase.name == "ASSIGNED"
    assert contribution in daemon.aftercare.upheld

    dispute_id = cheat.contest(contribution)  # a cheat that tries its luck anyway
    cast.run(lambda: dispute_info(cast.chain, dispute_id).ruling is not Ruling.NONE)
    d = dispute_info(cast.chain, dispute_id)
    assert (d.kind, d.ruling, d.valid_votes, d.invalid_votes) == (
        DisputeKind.CONTEST,
        Ruling.INVALID,
        0,
        3,
    )
    assert accuser not in d.members and cheat.address not in d.members
    assert contribution_info(cast.chain, contribution).status is ContributionStatus.REJECTED
    assert stake_info(cast.chain, cheat.address).staked == STAKE - P.min_node_stake - P.dispute_bond
    assert cheat.credits() == 0
    share = (P.min_node_stake + P.dispute_bond) * P.slash_reward_bps // 10_000
    assert stake_info(cast.chain, accuser).credits == share
    # every vote is backed by a report in the store that re-executed the sampled segments
    votes = cast.chain.disputes.events.Voted.get_logs(from_block=cast.chain.deployment.block)
    assert len(votes) == 3
    for vote in votes:
        report = market.store.get_bytes(vote["args"]["reportCid"])
        assert b'"passed":false' in report and b"digest differs" in report
    audit = Auditor(cast.chain, market.store).contribution(contribution)
    assert audit.findings == []
    assert any(c.name == "outcome after dispute matches re-execution" for c in audit.checks)


def test_honest_node_failed_by_a_lying_verifier_contests_wins_and_the_liar_is_slashed(
    market: Market,
) -> None:
    spec = spec_one_slot()
    cast = Cast(market, spec)
    node, daemon, contribution, liar = cast.falsely_failed()

    # the node's aftercare re-executes, disagrees and contests; the committee re-executes too
    cast.run(
        lambda: verification_info(cast.chain, contribution).finalized,
        nodes=(daemon,),
        skip=(liar.address,),
    )
    opened = cast.chain.disputes.events.DisputeOpened.get_logs(
        from_block=cast.chain.deployment.block
    )
    assert len(opened) == 1  # exactly one contest, sent by the node's daemon
    d = dispute_info(cast.chain, int(opened[0]["args"]["disputeId"]))
    assert (d.kind, d.disputer, d.defendant, d.ruling) == (
        DisputeKind.CONTEST,
        node.address,
        liar.address,
        Ruling.VALID,
    )
    assert d.valid_votes == 3
    assert contribution_info(cast.chain, contribution).status is ContributionStatus.ACCEPTED
    winner_share = P.verifier_lock * P.slash_reward_bps // 10_000
    assert node.credits() == spec.reward.reward_per_slot + winner_share
    assert stake_info(cast.chain, node.address).locked == 0
    assert stake_info(cast.chain, liar.address).staked == STAKE - P.verifier_lock
    assert liar.credits() == 0  # no fee for a false fail
    # the auditor sees the false fail, the overturning ruling and that the money followed it
    audit = Auditor(cast.chain, market.store)
    checks = audit.contribution(contribution).checks
    assert all(c.ok for c in checks)
    assert any("remedied: dispute" in c.detail for c in checks)
    assert audit.accounting(cast.job_id).findings == []


def test_a_wrong_aggregate_is_challenged_replaced_and_the_next_round_uses_the_right_one(
    market: Market,
) -> None:
    spec = mlp_demo_spec(rounds=2, slots_per_round=1)
    cast = Cast(market, spec)
    node, daemon = cast.node("node")
    rogue = market.new_account()
    rogue.stake(STAKE)
    contribution = daemon.run_once()
    assert contribution is not None
    # verifiers settle the slot but do not aggregate yet: the rogue posts first
    for verifier in cast.daemons.values():
        verifier.aggregate = False
    cast.run(lambda: contribution_info(cast.chain, contribution).status.name == "ACCEPTED")
    g0 = market.store.get_bytes(job_info(cast.chain, cast.job_id).initial_model_cid)
    wrong = encode_params({k: v + 0.01 for k, v in decode_params(spec, g0).items()})
    rogue.post_aggregate(
        cast.job_id, 0, digest(wrong), market.store.put_bytes(wrong), 1.0, wait_final=False
    )
    for verifier in cast.daemons.values():
        verifier.aggregate = True
    cast.run(lambda: job_info(cast.chain, cast.job_id).current_round == 1)

    opened = cast.chain.disputes.events.DisputeOpened.get_logs(
        from_block=cast.chain.deployment.block
    )
    assert len(opened) == 1
    d = dispute_info(cast.chain, int(opened[0]["args"]["disputeId"]))
    assert (d.kind, d.defendant, d.ruling, d.invalid_votes) == (
        DisputeKind.AGGREGATE,
        rogue.address,
        Ruling.INVALID,
        3,
    )
    agg = aggregate_info(cast.chain, cast.job_id, 0)
    assert agg.status is AggregateStatus.FINAL and agg.poster == d.disputer
    assert agg.model_digest != digest(wrong)
    cid, g1_digest = round_model_cid(cast.chain, job_info(cast.chain, cast.job_id), 1)
    assert digest(market.store.get_bytes(cid)) == g1_digest == agg.model_digest
    assert stake_info(cast.chain, rogue.address).staked == STAKE - P.dispute_bond

    # round 1 trains from the replaced aggregate and the job completes
    second = daemon.run_once()
    assert second is not None
    cast.run(lambda: job_info(cast.chain, cast.job_id).status.name == "COMPLETED")
    assert node.credits() == 2 * spec.reward.reward_per_slot
    assert Auditor(cast.chain, market.store).job(cast.job_id).findings == []


def test_node_aftercare_releases_its_own_expired_claims(market: Market) -> None:
    sponsor, node, other = market.new_account(), market.new_account(), market.new_account()
    node.stake(STAKE)
    other.stake(STAKE)
    label = hashlib.sha256(b"spec").digest()
    params = JobParams(label, label, 1, 3, 4, 2, TOKEN, TOKEN // 10, claim_timeout=60)
    job_id = sponsor.create_job(params, "bafy-spec", "bafy-g0")
    node.claim_slot(job_id, 0, 0)
    node.claim_slot(job_id, 0, 1)
    other.claim_slot(job_id, 0, 2)  # not this node's to release
    aftercare = Aftercare(node, market.store, market.home / "aftercare.json")
    assert aftercare.step() == 0  # still inside the claim window
    assert stake_info(market.chain, node.address).locked == 2 * P.min_node_stake
    market.chain.advance(61)
    assert aftercare.step() == 2
    assert stake_info(market.chain, node.address).locked == 0
    slots = market.chain.market.functions
    assert [slots.slotState(job_id, 0, s).call()[2] for s in range(3)] == [0, 0, 1]
    assert stake_info(market.chain, other.address).locked == P.min_node_stake
    assert Aftercare(node, market.store, market.home / "aftercare.json").step() == 0


def test_a_false_fail_late_in_the_window_is_contested_by_the_watcher_while_the_node_trains(
    market: Market,
) -> None:
    spec = mlp_demo_spec(rounds=1, slots_per_round=2)
    cast = Cast(market, spec)
    node, daemon, contribution, liar = cast.falsely_failed()
    # while slot 0 awaits its verdict the node claims slot 1: both locks plus a contest's bond
    node.stake(P.dispute_bond)
    deadline = verification_info(cast.chain, contribution).challenge_deadline
    cast.chain.advance_to(deadline - 90)  # the fail is noticed late: 90 s of window left

    def contested() -> bool:
        return bool(cast.chain.disputes.events.DisputeOpened.get_logs(from_block=0))

    def submitted_second() -> bool:
        return int(cast.chain.market.functions.contributionCount().call()) >= 2

    began = time.monotonic()
    # the real run loop: it trains slot 1 while its watcher thread answers the fail on slot 0
    daemon.run(
        poll_seconds=0.2,
        watch_seconds=0.2,
        should_stop=lambda: (contested() and submitted_second()) or time.monotonic() > began + 300,
    )
    opened = cast.chain.disputes.events.DisputeOpened.get_logs(from_block=0)
    assert len(opened) == 1 and submitted_second()
    landed = cast.chain.w3.eth.get_block(opened[0]["blockNumber"])["timestamp"]
    assert deadline - 90 < landed <= deadline  # late, but inside the window
    dispute_id = int(opened[0]["args"]["disputeId"])
    cast.run(
        lambda: dispute_info(cast.chain, dispute_id).ruling is not Ruling.NONE,
        nodes=(daemon,),
        skip=(liar.address,),
    )
    d = dispute_info(cast.chain, dispute_id)
    assert (d.disputer, d.ruling, d.valid_votes) == (node.address, Ruling.VALID, 3)
    assert contribution_info(cast.chain, contribution).status is ContributionStatus.ACCEPTED
    # the liar loses its lock for the false fail, and one more per window it missed meanwhile
    # (it stays offline: if slot 1 drew it, a takeover burned that lock too)
    missed = cast.chain.settlement.events.AttestationMissed.get_logs(
        from_block=0, argument_filters={"previousVerifier": liar.address}
    )
    expected = STAKE - P.verifier_lock * (1 + len(missed))
    assert stake_info(cast.chain, liar.address).staked == expected


def test_an_absent_committee_escalates_and_ends_undecided_the_slot_is_redone_unslashed(
    market: Market,
) -> None:
    spec = spec_one_slot()
    cast = Cast(market, spec)
    node, daemon, contribution, liar = cast.falsely_failed()
    # only the node's daemon runs: it contests, draws the committee, and resolves after each
    # window; no member votes, so each round escalates to a larger draw and a longer window
    for _ in range(80):
        daemon.aftercare.step()
        if verification_info(cast.chain, contribution).finalized:
            break
        cast.chain.advance(STEP)
    d = dispute_info(cast.chain, 1)
    assert (d.ruling, d.status, d.escalation) == (Ruling.UNDECIDED, DisputeStatus.RESOLVED, 2)
    assert (d.valid_votes, d.invalid_votes) == (0, 0)
    escalated = cast.chain.disputes.events.DisputeEscalated.get_logs(from_block=0)
    assert [int(e["args"]["round"]) for e in escalated] == [1, 2]
    # Undecided on a contest: redo the slot, no slash: the node keeps its stake and its bond
    assert contribution_info(cast.chain, contribution).status is ContributionStatus.REJECTED
    assert stake_info(cast.chain, node.address).staked == STAKE
    assert stake_info(cast.chain, node.address).locked == 0
    assert stake_info(cast.chain, liar.address).locked == 0
    assert node.credits() == liar.credits() == 0
    # each absent member lost its seat lock in every round it was drawn and did not vote
    for member in d.members:
        assert stake_info(cast.chain, member).staked < STAKE
    # the money followed the rules, but the verdict contradicts re-execution: a finding
    audit = Auditor(cast.chain, market.store)
    findings = {c.name: c.detail for c in audit.contribution(contribution).findings}
    assert "on-chain verdict matches re-execution" in findings
    assert (
        "undecided: the slot was redone, nobody slashed"
        in findings["on-chain verdict matches re-execution"]
    )
    assert audit.accounting(cast.job_id).findings == []
