"""The verifier daemon driven pass by pass on the in-process chain: seed, attest, finalize,
aggregate, finalize the aggregate; a restart repeats nothing."""

from __future__ import annotations

import pytest
from conftest import Market

from node.daemon import NodeDaemon
from opentrain.chain.types import TOKEN, ChainError, JobStatus, Phase, Verdict
from opentrain.chain.views import aggregate_info, contribution_info, verification_info
from opentrain.cli.demo import post_bounty
from opentrain.protocol.presets import mlp_demo_spec
from verifier.audit import Auditor
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
    assert daemon.step() >= 1  # attested (the node's daemon recorded the seed)
    info = verification_info(chain, 1)
    assert info.verdict == 1 and info.verifier == verifier.address

    restarted = VerifierDaemon(verifier, market.store, state)  # a restart attests nothing twice
    assert restarted.step() == 0

    chain.advance_to(info.challenge_deadline)
    restarted.step()  # finalizes, then posts the aggregate
    assert node.credits() == 10**18
    assert aggregate_info(chain, job_id, 0).status == 1  # pending

    chain.advance_to(aggregate_info(chain, job_id, 0).challenge_deadline)
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


def test_a_missed_window_is_taken_over_by_a_fresh_draw_and_verified(market: Market) -> None:
    """Two verifiers; the drawn one is offline. The other's daemon requests the takeover after
    the attest window, serves the fresh draw from the next block (which can only land on it:
    node and missing verifier are excluded) and verifies; the absent one's lock is burned."""
    sponsor, node = market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    verifiers = [market.new_account() for _ in range(2)]
    for v in verifiers:
        v.stake(200 * TOKEN)
        v.register_verifier()
    post_bounty(sponsor, market.store, mlp_demo_spec(rounds=1, slots_per_round=1))
    contribution = NodeDaemon(node, market.store, market.home / "node").run_once()
    assert contribution == 1
    chain = market.chain
    drawn = verification_info(chain, 1).verifier
    absent = next(v for v in verifiers if v.address == drawn)
    online = next(v for v in verifiers if v.address != drawn)
    daemon = VerifierDaemon(online, market.store, market.home / "online.json")
    assert daemon.step() == 0  # not its assignment, the window still open
    chain.advance_to(verification_info(chain, 1).attest_deadline)
    assert daemon.step() == 1  # requestTakeover: the draw needs the next block's hash
    info = verification_info(chain, 1)
    assert (info.phase, info.takeovers, info.previous_verifier) == (Phase.QUEUED, 1, drawn)
    chain.mine(1)
    assert daemon.step() == 2  # assignVerifier drew it, then it verified and attested
    info = verification_info(chain, 1)
    assert (info.verifier, info.verdict) == (online.address, 1)
    assert info.recomputed_digests_hash != bytes(32)
    assert absent.stake_of() == 200 * TOKEN - market.chain.params().verifier_lock


def test_content_it_cannot_obtain_is_retried_then_failed_as_withheld(
    market: Market, caplog: pytest.LogCaptureFixture
) -> None:
    """A manifest the verifier cannot fetch (the node's gateway behind a passing partition)
    is no verdict: nothing is attested while three quarters of the attest window last, and
    once the content is back the contribution passes. Content still missing when that share
    has run out is failed as withheld."""
    sponsor, node, verifier = market.new_account(), market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    verifier.stake(200 * TOKEN)
    verifier.register_verifier()
    chain = market.chain
    daemon = VerifierDaemon(verifier, market.store, market.home / "verifier.json")
    window = chain.params().attest_window
    verdicts = []
    for job in range(2):
        post_bounty(sponsor, market.store, mlp_demo_spec(rounds=1, slots_per_round=1))
        contribution = NodeDaemon(node, market.store, market.home / "node").run_once()
        assert contribution is not None
        block = market.store.block_path(contribution_info(chain, contribution).manifest_cid)
        hidden = block.with_name(block.name + ".away")
        block.rename(hidden)  # unreachable, as far as this verifier can tell
        chain.mine(2)
        with caplog.at_level("WARNING", logger="opentrain.verifier"):
            daemon.step()
        assert f"contribution {contribution}: content unavailable, retrying" in caplog.text
        assert verification_info(chain, contribution).verdict is Verdict.NONE
        if job == 0:
            hidden.rename(block)  # the partition heals within the window
        else:
            deadline = verification_info(chain, contribution).attest_deadline
            chain.advance_to(deadline - window // 4 + 1)
        daemon.step()
        verdicts.append(verification_info(chain, contribution).verdict)
    assert verdicts == [Verdict.PASS, Verdict.FAIL]
    # served again later, the work re-executes: an auditor flags the fail, and says why
    hidden.rename(block)
    checks = Auditor(chain, market.store).contribution(contribution).checks
    (verdict,) = [c for c in checks if c.name == "on-chain verdict matches re-execution"]
    assert not verdict.ok and "failed as withheld" in verdict.detail
