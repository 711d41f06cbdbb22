"""Availability on demand (issue 16) on the in-process chain, with the real node and verifier
code: an honest node publishes only the manifest, output and the checkpoints its sample needs;
a node that never reveals is failed and slashed once the reveal window has passed, and one that
reveals late is not paid."""

from __future__ import annotations

from conftest import Market

from node.daemon import NodeDaemon
from node.reveal import reveal_if_due, revealed_indices
from node.worker import NodeWorker
from opentrain.chain.account import ChainAccount
from opentrain.chain.types import TOKEN, ChainError, ContributionStatus, Phase, Verdict
from opentrain.chain.views import contribution_info, stake_info, verification_info
from opentrain.cli.demo import post_bounty
from opentrain.protocol.manifest import TraceManifest
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.protocol.sampling import sample_indices
from opentrain.spec import JobSpec, VerificationSpec
from verifier.daemon import VerifierDaemon

REVEAL = 120  # seconds
NODE_LOCK = 100 * TOKEN  # minNodeStake: what a claim locks and a fail slashes


def _spec() -> JobSpec:
    base = mlp_demo_spec(rounds=1, slots_per_round=1)
    # 8 segments: a sample of 2 reveals at most 5 of the 9 checkpoints (with the output)
    training = base.training.model_copy(update={"segment_steps": 5})
    return base.model_copy(
        update={
            "training": training,
            "verification": VerificationSpec(samples=2, reveal_window=REVEAL),
        }
    )


def _setup(market: Market) -> tuple[int, ChainAccount, ChainAccount]:
    sponsor, node, verifier = market.new_account(), market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    verifier.stake(200 * TOKEN)
    verifier.register_verifier()
    market.chain.mine(2)  # past the draw lag
    return post_bounty(sponsor, market.store, _spec()), node, verifier


def _manifest(market: Market, contribution_id: int) -> TraceManifest:
    cid = contribution_info(market.chain, contribution_id).manifest_cid
    return TraceManifest.from_json(market.store.get_bytes(cid))


def test_an_honest_node_publishes_only_what_its_sample_needs_and_is_paid(market: Market) -> None:
    job_id, node, verifier = _setup(market)
    contribution = NodeDaemon(node, market.store, market.home / "node").run_once()
    assert contribution is not None
    info = verification_info(market.chain, contribution)
    assert info.reveal_deadline == info.seed_recorded_at + REVEAL
    assert info.revealed_at != 0  # the daemon revealed right after recording its seed
    spec = _spec()
    sampled = sample_indices(info.seed, spec.training.num_segments, spec.verification.samples)
    manifest = _manifest(market, contribution)
    public = {c.index for c in manifest.checkpoints if market.store.has(c.cid)}
    expected = set(revealed_indices(sampled)) | {spec.training.num_segments}
    assert public == expected  # the rest stay on the node's disk
    assert len(public) < len(manifest.checkpoints)

    daemon = VerifierDaemon(verifier, market.store, market.home / "verifier.json")
    daemon.step()
    info = verification_info(market.chain, contribution)
    assert info.verdict is Verdict.PASS
    market.chain.advance_to(info.challenge_deadline + 1)
    daemon.step()
    assert contribution_info(market.chain, contribution).status is ContributionStatus.ACCEPTED
    assert node.credits() == spec.reward.reward_per_slot
    assert job_id == 1


def _submit_without_revealing(market: Market, node: ChainAccount, job_id: int) -> int:
    """Train and submit with the node's worker only: nobody runs its after-care, so nothing is
    revealed; the verifier daemon records the seed."""
    return NodeWorker(node, market.store, market.home / "node").work_slot(job_id, 0, 0)


def test_a_node_that_never_reveals_is_slashed_after_the_window(market: Market) -> None:
    job_id, node, verifier = _setup(market)
    contribution = _submit_without_revealing(market, node, job_id)
    daemon = VerifierDaemon(verifier, market.store, market.home / "verifier.json")
    market.chain.mine(2)
    daemon.step()  # records the seed; nothing to verify yet
    info = verification_info(market.chain, contribution)
    assert info.phase is Phase.ASSIGNED and info.awaits_reveal
    assert info.verdict is Verdict.NONE
    staked = stake_info(market.chain, node.address).staked
    fee_before = verifier.credits()

    market.chain.advance_to(info.reveal_deadline - 5)
    daemon.step()  # still inside the window: no fail yet
    assert verification_info(market.chain, contribution).phase is Phase.ASSIGNED

    market.chain.advance_to(info.reveal_deadline + 1)
    daemon.step()  # failUnrevealed
    info = verification_info(market.chain, contribution)
    assert info.phase is Phase.REJECTED
    assert contribution_info(market.chain, contribution).status is ContributionStatus.REJECTED
    assert stake_info(market.chain, node.address).staked == staked - NODE_LOCK
    assert verifier.credits() == fee_before + _spec().reward.verifier_fee
    assert stake_info(market.chain, verifier.address).locked == 0
    assert node.credits() == 0


def test_a_node_that_reveals_late_is_not_paid(market: Market) -> None:
    job_id, node, verifier = _setup(market)
    contribution = _submit_without_revealing(market, node, job_id)
    daemon = VerifierDaemon(verifier, market.store, market.home / "verifier.json")
    market.chain.mine(2)
    daemon.step()
    deadline = verification_info(market.chain, contribution).reveal_deadline
    market.chain.advance_to(deadline + 1)
    # the node's after-care gives up past the deadline; a direct call is refused on chain
    assert reveal_if_due(node, market.store, market.home / "node", contribution) == 0
    try:
        node.reveal(contribution)
    except ChainError as exc:
        assert "SettlementRevealWindowClosed" in str(exc)
    else:
        raise AssertionError("a late reveal was accepted")
    daemon.step()
    assert verification_info(market.chain, contribution).phase is Phase.REJECTED
    assert node.credits() == 0
    assert stake_info(market.chain, node.address).locked == 0  # slashed, not left locked
