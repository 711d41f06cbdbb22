"""Canaries end to end on the in-process chain (issue 18): a lazy verifier daemon (passes
everything without re-executing) is slashed by a canary; an honest one catches it and is paid
twice its fee from the pool. The canary is trained for real by a node account of the authority
with perturbed faulty segments; Python's commitment agrees with the contract's."""

from __future__ import annotations

import os

import pytest
from conftest import Market

from node.canary import CanaryRun
from opentrain.chain.types import TOKEN, ContributionStatus, Phase, Verdict
from opentrain.chain.views import contribution_info, stake_info, verification_info
from opentrain.cli.demo import post_bounty
from opentrain.protocol.canaries import canary_commitment, draw_faults, fault_words
from opentrain.protocol.contribution import VerificationReport
from opentrain.protocol.presets import mlp_demo_spec
from verifier.daemon import VerifierDaemon
from verifier.worker import VerifierWorker

VERIFIER_LOCK = 50 * TOKEN


class LazyWorker(VerifierWorker):
    """Attests pass without fetching or re-executing anything."""

    def verify(self, contribution_id: int, progress: object = None) -> VerificationReport:
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


def test_the_python_commitment_and_faults_agree_with_the_contract(market: Market) -> None:
    chain = market.chain
    for n, k in ((8, 2), (300, 3), (4096, 32)):
        secret = os.urandom(32)
        faults = draw_faults(secret, n, k)
        assert 0 < len(faults) < n or n == 8  # about n/k of them
        words = fault_words(faults, n)
        node = market.new_account().address
        ours = canary_commitment(
            chain.w3.eth.chain_id, chain.market.address, 7, node, secret, words
        )
        theirs = chain.canaries.functions.canaryCommitment(7, node, secret, words).call()
        assert ours == bytes(theirs)
