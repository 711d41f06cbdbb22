"""The straight path end to end on the in-process EVM, with real training and re-execution."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Market
from rich.console import Console

from node.worker import NodeWorker
from opentrain.chain.types import TOKEN, Verdict
from opentrain.chain.views import verification_info
from opentrain.cli.demo import post_bounty, run_demo, skip_training
from opentrain.content.errors import ContentUnavailable
from opentrain.protocol.manifest import TraceManifest
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.protocol.sampling import sample_indices
from opentrain.spec import JobSpec
from verifier.worker import VerifierWorker

CONTRIBUTION_ACCEPTED, CONTRIBUTION_REJECTED = 2, 3


def small_spec(**overrides: object) -> JobSpec:
    return mlp_demo_spec(rounds=1, slots_per_round=1, **overrides)


def test_demo_catches_the_cheat_pays_both_nodes_and_its_audit_finds_nothing(
    tmp_path: Path,
) -> None:
    spec = mlp_demo_spec()
    result = run_demo(tmp_path, spec=spec, console=Console(quiet=True), cheat=True, audit=True)
    verdicts = [verdict for *_, verdict in result.contributions]
    assert verdicts[0] == "fail" and verdicts[1:] == ["pass"] * spec.rounds * spec.slots_per_round
    assert result.cheat_slashed == 100 * TOKEN
    cheat_lost = result.balances_before["cheat"] - result.balances_after["cheat"] - 200 * TOKEN
    assert cheat_lost == 0  # wallet: 200 still staked (100 of it slashed); see stake below
    assert result.chain is not None
    cheat_stake = result.chain.stakes.functions.stakeOf(
        result.chain.market.events.ContributionSubmitted.get_logs(
            from_block=result.chain.deployment.block
        )[0]["args"]["node"]
    ).call()
    assert cheat_stake == 100 * TOKEN
    assert result.audit_findings == 0 and result.audit_checks > 40
    assert result.audit_report is not None and "no findings" in result.audit_report.read_text()
    sponsor_spent = result.balances_before["sponsor"] - result.balances_after["sponsor"]
    assert sponsor_spent == result.paid_out == result.escrow - result.refunded
    stake = 200 * TOKEN
    for node in ("node-1", "node-2"):
        earned = result.balances_after[node] + stake - result.balances_before[node]
        assert earned == spec.rounds * spec.reward.reward_per_slot  # one slot per round each
    assert result.losses[-1] < result.losses[0]


def _staked(market: Market) -> tuple:
    sponsor, node, verifier = market.new_account(), market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    verifier.stake(200 * TOKEN)
    verifier.register_verifier()
    return sponsor, node, verifier


def _settle(market: Market, contribution_id: int) -> None:
    market.chain.advance(market.chain.settlement.functions.challengeWindow().call() + 1)
    market.admin.finalize(contribution_id)


def test_checkpoint_altered_after_submission_fails_and_node_is_not_paid(market: Market) -> None:
    sponsor, node_acct, verifier_acct = _staked(market)
    spec = small_spec()
    job_id = post_bounty(sponsor, market.store, spec)
    node = NodeWorker(node_acct, market.store, market.home / "node")
    contribution_id = node.work_slot(job_id, 0, 0)
    market.chain.mine(1)
    verifier = VerifierWorker(verifier_acct, market.store)
    assert verifier.ensure_seed(contribution_id)

    # the node alters a committed checkpoint in its store after submitting
    seed = verification_info(market.chain, contribution_id).seed
    sampled = sample_indices(seed, spec.training.num_segments, spec.verification.samples)
    info = market.chain.market.functions.getContribution(contribution_id).call()
    assert info[0] == node_acct.address
    manifest_cid = market.chain.market.events.ContributionSubmitted.get_logs(
        from_block=0, argument_filters={"contributionId": contribution_id}
    )[0]["args"]["manifestCid"]
    manifest = TraceManifest.from_json(market.store.get_bytes(manifest_cid))
    block = market.store.block_path(manifest.checkpoints[sampled[0] + 1].cid)
    data = bytearray(block.read_bytes())
    data[-1] ^= 0xFF
    block.write_bytes(bytes(data))

    # bytes that do not hash to the committed CID are no copy of it: the checkpoint is
    # unavailable, which the verifier retries (nothing attested) for most of its window ...
    with pytest.raises(ContentUnavailable, match="mismatch"):
        verifier.verify_and_attest(contribution_id)
    assert verification_info(market.chain, contribution_id).verdict is Verdict.NONE
    # ... then fails as withheld
    report = verifier.verify_and_attest(contribution_id, fail_unavailable=True)
    assert not report.passed
    assert report.reason.startswith("content unavailable") and "mismatch" in report.reason
    _settle(market, contribution_id)
    record = market.chain.market.functions.getContribution(contribution_id).call()
    assert record[6] == CONTRIBUTION_REJECTED
    assert node_acct.credits() == 0
    assert node_acct.stake_of() == 100 * TOKEN  # the locked 100 was slashed
    assert verifier_acct.credits() == spec.reward.verifier_fee  # the fee, the rest burned


def test_node_that_skips_training_in_a_segment_is_caught(market: Market) -> None:
    sponsor, node_acct, verifier_acct = _staked(market)
    spec = small_spec()
    spec = spec.model_copy(
        update={"verification": spec.verification.model_copy(update={"samples": 4})}
    )
    job_id = post_bounty(sponsor, market.store, spec)

    node = NodeWorker(node_acct, market.store, market.home / "node")
    contribution_id = node.work_slot(job_id, 0, 0, segment_fn=skip_training)
    market.chain.mine(1)
    verifier = VerifierWorker(verifier_acct, market.store)
    verifier.ensure_seed(contribution_id)
    report = verifier.verify_and_attest(contribution_id)
    assert not report.passed
    assert "digest differs" in report.reason
    _settle(market, contribution_id)
    assert node_acct.credits() == 0


def test_honest_slot_is_paid(market: Market) -> None:
    sponsor, node_acct, verifier_acct = _staked(market)
    spec = small_spec()
    job_id = post_bounty(sponsor, market.store, spec)
    contribution_id = NodeWorker(node_acct, market.store, market.home / "n").work_slot(job_id, 0, 0)
    market.chain.mine(1)
    verifier = VerifierWorker(verifier_acct, market.store)
    verifier.ensure_seed(contribution_id)
    report = verifier.verify_and_attest(contribution_id)
    assert report.passed, report.reason
    assert len(report.checks) == 1 + spec.verification.samples
    _settle(market, contribution_id)
    assert node_acct.credits() == spec.reward.reward_per_slot
    assert verifier_acct.credits() == spec.reward.verifier_fee
    before = node_acct.balance()
    node_acct.withdraw()
    assert node_acct.balance() - before == spec.reward.reward_per_slot
    assert node_acct.locked_of() == 0


@pytest.mark.parametrize(
    "bad", ["not-a-cid", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"]
)
def test_job_with_missing_or_bad_spec_cid_is_refused_by_the_node(market: Market, bad: str) -> None:
    from opentrain.chain.types import JobParams
    from opentrain.content.errors import ContentError
    from opentrain.protocol.jobs import load_job

    sponsor = market.new_account()
    params = JobParams(b"\x01" * 32, b"\x02" * 32, 1, 1, 4, 2, TOKEN, TOKEN // 10)
    job_id = sponsor.create_job(params, bad, "model")
    with pytest.raises(ContentError):
        load_job(market.chain, market.store, job_id)
