"""An RPC endpoint that goes away for a while, then comes back: no lost and no duplicate
transaction (issue 6)."""

from __future__ import annotations

import threading
from pathlib import Path

from conftest import deploy_on
from rpc_proxy import FlakyProxy

from node.daemon import NodeDaemon
from node.worker import honest_segment
from opentrain.chain.client import Chain, connect
from opentrain.chain.types import TOKEN
from opentrain.cli.demo import post_bounty
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.spec import JobSpec
from opentrain.training.checkpoint import TrainState


def test_outage_during_a_slot_neither_loses_nor_duplicates_a_transaction(
    hardhat_rpc: str, tmp_path: Path
) -> None:
    market = deploy_on(hardhat_rpc, tmp_path)
    sponsor, node = market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    spec = mlp_demo_spec(rounds=1, slots_per_round=1)
    job_id = post_bounty(sponsor, market.store, spec)
    nonce_before = market.chain.w3.eth.get_transaction_count(node.address)

    proxy = FlakyProxy(int(hardhat_rpc.rsplit(":", 1)[1]))
    via_proxy = Chain(connect(proxy.url), market.chain.deployment)
    outages = []

    def segment_then_outage(s: JobSpec, state: TrainState, r: int, slot: int) -> TrainState:
        out = honest_segment(s, state, r, slot)
        if out.step == s.training.inner_steps:  # the submission is next: pull the plug
            proxy.down()
            outages.append(1)
            threading.Timer(3.0, proxy.restore).start()
        return out

    daemon = NodeDaemon(
        via_proxy.account(node.signer),
        market.store,
        tmp_path / "node",
        segment_fn=segment_then_outage,
    )
    contribution = daemon.run_once()
    assert outages and contribution == 1

    w3 = market.chain.w3
    # claim, submit, and the seed the node records itself right after the seed block
    assert w3.eth.get_transaction_count(node.address) == nonce_before + 3
    claims = market.chain.market.events.SlotClaimed.get_logs(from_block=0)
    submissions = market.chain.market.events.ContributionSubmitted.get_logs(from_block=0)
    assert [c["args"]["jobId"] for c in claims] == [job_id]
    assert [s["args"]["contributionId"] for s in submissions] == [1]
