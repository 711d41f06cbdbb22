"""The verifier daemon driven pass by pass on the in-process chain: seed, attest, finalize,
aggregate, finalize the aggregate; a restart repeats nothing."""

from __future__ import annotations

import pytest
from conftest import Market

from node.daemon import NodeDaemon
from opentrain.chain.types import TOKEN, ChainError, JobStatus
from opentrain.chain.views import aggregate_info, verification_info
from opentrain.cli.demo import post_bounty
from opentrain.protocol.presets import mlp_demo_spec
from verifier.daemon import VerifierDaemon


def test_daemon_takes_a_job_from_submission_to_completion(market: Market) -> None:
    sponsor, node, verifier = market.new_account(), market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    verifier.stake(200 * TOKEN)
    verifier.register_verifier()
    job_id = post_bounty(sponsor, market.store, mlp_demo_spec(rounds=1, slots_per_round=1))
    contribution = NodeDaemon(node, market.store, market.home / "node").run_once()
    assert contribution == 1
    chain = market.chain
    state = market.home / "verifier.json"
    daemon = VerifierDaemon(verifier, market.store, state)

    chain.mine(2)
    assert daemon.step() >= 1  # seed recorded and attested
    info = verification_info(chain, 1)
    assert info.verdict == 1 and info.verifier == verifier.address

    restarted = VerifierDaemon(verifier, market.store, state)  # a restart attests nothing twice
    assert restarted.step() == 0

    chain.wait_for_block(info.challenge_deadline)
    restarted.step()  # finalizes, then posts the aggregate
    assert node.credits() == 10**18
    assert aggregate_info(chain, job_id, 0).status == 1  # pending

    chain.wait_for_block(aggregate_info(chain, job_id, 0).challenge_deadline)
    restarted.step()
    status = chain.market.functions.jobState(job_id).call()[1]
    assert status == JobStatus.COMPLETED


def test_a_failed_pass_is_logged_and_retried_not_fatal(
    market: Market, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = market.new_account()
    daemon = VerifierDaemon(verifier, market.store, market.home / "verifier.json")
    passes: list[int] = []

    def flaky_step() -> int:
        passes.append(1)
        if len(passes) == 1:
            raise ChainError("attest(3) failed: RPC http://127.0.0.1:8545 unreachable")
        return 1

    daemon.step = flaky_step  # type: ignore[method-assign]
    with caplog.at_level("WARNING", logger="opentrain.verifier"):
        daemon.run(poll_seconds=0.01, should_stop=lambda: len(passes) >= 2)
    assert len(passes) == 2
    assert "pass failed, will retry: attest(3) failed" in caplog.text
