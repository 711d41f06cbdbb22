"""Canaries end to end on the in-process chain (issue 18): a lazy verifier daemon (passes
everything without re-executing) is slashed by a canary; an honest one catches it and is paid
twice its fee from the pool. The canary is trained for real by a node account of the authority
with perturbed faulty segments and its trace root sealed with the faults; Python's seal agrees
with the contract's, and the seal opens one way only."""

from __future__ import annotations

import os

import pytest
from conftest import Market

from node.canary import CanaryRun
from node.daemon import NodeDaemon
from opentrain.chain.types import TOKEN, ChainError, ContributionStatus, Phase, Verdict
from opentrain.chain.views import contribution_info, stake_info, verification_info
from opentrain.cli.demo import post_bounty
from opentrain.protocol.canaries import canary_seal, draw_faults, fault_words
from opentrain.protocol.contribution import VerificationReport
from opentrain.protocol.manifest import TraceManifest
from opentrain.protocol.presets import mlp_demo_spec
from verifier.audit.auditor import Auditor
from verifier.daemon import VerifierDaemon
from verifier.worker import VerifierWorker

VERIFIER_LOCK = 50 * TOKEN


class LazyWorker(VerifierWorker):
    """Attests pass without fetching or re-executing anything."""

    def verify(
        self, contribution_id: int, progress: object = None, fail_unavailable: bool = False
    ) -> VerificationReport:
        info = contribution_info(self.account.chain, contribution_id)
        return VerificationReport(
            contribution_id, info.job_id, info.round, info.slot, "0x", [], True, "lazy"
        )


def _market_with_canary(market: Market, lazy: bool) -> tuple[CanaryRun, VerifierDaemon, int]:
    sponsor, verifier = market.new_account(), market.new_account()
    canary_node = market.new_account()
    canary_node.stake(200 * TOKEN)
    verifier.stake(200 * TOKEN)
    verifier.register_verifier()
    market.chain.mine(2)
    market.admin.fund_canary_pool(10 * TOKEN)  # the deployer holds CANARY_ROLE
    job_id = post_bounty(sponsor, market.store, mlp_demo_spec(rounds=1, slots_per_round=1))
    daemon = VerifierDaemon(verifier, market.store, market.home / "verifier.json")
    if lazy:
        daemon.worker = LazyWorker(verifier, market.store)
    run = CanaryRun(market.admin, canary_node, market.store, market.home / "canary")
    return run, daemon, job_id


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy verifier", "honest verifier"])
def test_a_canary_slashes_a_lazy_verifier_and_pays_an_honest_one(
    market: Market, lazy: bool
) -> None:
    run, daemon, job_id = _market_with_canary(market, lazy)
    spec = mlp_demo_spec(rounds=1, slots_per_round=1)
    planned = run.plan(job_id, faults=set(range(spec.training.num_segments)))  # every sample hits
    contribution = run.train(planned)
    assert contribution is not None
    verifier = daemon.account
    before = stake_info(market.chain, verifier.address)
    daemon.step()  # lazy: pass without looking; honest: re-executes and fails it
    info = verification_info(market.chain, contribution)
    assert info.verdict is (Verdict.PASS if lazy else Verdict.FAIL)

    assert run.reveal_if_attested(planned, contribution) is (not lazy)
    after = stake_info(market.chain, verifier.address)
    fee = spec.reward.verifier_fee
    if lazy:
        assert after.staked == before.staked - VERIFIER_LOCK
        assert after.credits == before.credits
    else:
        assert after.staked == before.staked
        assert after.credits == before.credits + 2 * fee
    assert after.locked == 0
    assert contribution_info(market.chain, contribution).status is ContributionStatus.REJECTED
    assert verification_info(market.chain, contribution).phase is Phase.REJECTED
    assert stake_info(market.chain, run.node.address).locked == 0  # the canary node is released
    # no escrow moved: the slot reopened for an honest node, whose full reward is still there
    escrow = market.chain.market.functions.jobState(job_id).call()[3]
    assert escrow == spec.reward.reward_per_slot + spec.reward.verifier_fee
    # the auditor re-executes the canary: the reveal told the truth, and the lazy pass was
    # answered for by the reveal (a remedied verdict, not a finding)
    audit = Auditor(market.chain, market.store).contribution(contribution)
    assert audit.findings == [], audit.findings
    canary_check = [c for c in audit.checks if c.name.startswith("canary reveal")]
    assert len(canary_check) == 1 and canary_check[0].ok


def test_a_canary_trace_opens_only_with_its_faults(market: Market) -> None:
    """The authority cannot choose the faults after the verdict: an honest fail of a faulty
    canary cannot be turned into a "wrong" verdict by claiming the canary was clean."""
    run, daemon, job_id = _market_with_canary(market, lazy=False)
    n = mlp_demo_spec(rounds=1, slots_per_round=1).training.num_segments
    planned = run.plan(job_id, faults=set(range(n)))  # every sample hits: an honest fail
    contribution = run.train(planned)
    assert contribution is not None
    daemon.step()
    info = contribution_info(market.chain, contribution)
    manifest = TraceManifest.from_json(market.store.get_bytes(info.manifest_cid))
    root = manifest.trace_tree().checkpoints_root
    assert manifest.trace_root == info.trace_root
    for words in ([0], fault_words({0}, n), fault_words({n - 1}, n)):
        with pytest.raises(ChainError, match="CanariesSealMismatch"):
            market.admin.reveal_canary(contribution, root, planned.secret, words)
    with pytest.raises(ChainError, match="CanariesSealMismatch"):
        market.admin.reveal_canary(contribution, root, os.urandom(32), list(planned.words))
    assert run.reveal_if_attested(planned, contribution) is True


def test_a_lying_authority_that_slashes_an_honest_verifier_shows_in_the_audit(
    market: Market,
) -> None:
    """The trust that is left (CANARIES.md): an authority can seal faults it did not inject,
    train honestly and so slash a verifier whose pass was right. It gains nothing (the slash is
    burned) and the auditor, re-executing from public data, names the false reveal."""
    run, daemon, job_id = _market_with_canary(market, lazy=False)
    n = mlp_demo_spec(rounds=1, slots_per_round=1).training.num_segments
    planned = run.plan(job_id, faults=set(range(n)))  # says every segment is faulty ...
    node = NodeDaemon(  # ... but trains every one honestly
        run.node,
        market.store,
        run.workdir,
        only_jobs={job_id},
        seal_fn=lambda job, round_, slot: run.seal(planned, job, round_, slot),
    )
    contribution = node.run_once()
    assert contribution is not None
    daemon.step()
    assert verification_info(market.chain, contribution).verdict is Verdict.PASS  # right
    assert run.reveal_if_attested(planned, contribution) is False  # "wrong": slashed
    audit = Auditor(market.chain, market.store).contribution(contribution)
    assert [f.name for f in audit.findings] == [
        "canary reveal's expected verdict matches re-execution"
    ]
    assert "reveal expects fail, re-execution pass" in audit.findings[0].detail


def test_the_python_seal_and_faults_agree_with_the_contract(market: Market) -> None:
    chain = market.chain
    for n, k in ((8, 2), (300, 3), (4096, 32)):
        secret = os.urandom(32)
        faults = draw_faults(secret, n, k)
        assert 0 < len(faults) < n or n == 8  # about n/k of them
        words = fault_words(faults, n)
        node = market.new_account().address
        ours = canary_seal(
            chain.w3.eth.chain_id, chain.market.address, 7, 2, 1, node, secret, words
        )
        theirs = chain.canaries.functions.canarySeal(7, 2, 1, node, secret, words).call()
        assert ours == bytes(theirs)
