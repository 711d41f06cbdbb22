"""Compute utilization of a node on the demo job: time inside training steps divided by wall
time from claim to submission, with the embedded store and the in-process chain (issue 6).

    python bench/node_utilization.py [--mlp]

Prints a readable table and one JSON line. Where the rest goes: job loading (spec, data, G_r
from the store), claim and submit transactions, checkpoint encoding and digests, the final
wait for background uploads, the manifest.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.daemon import NodeDaemon  # noqa: E402
from node.worker import honest_segment  # noqa: E402
from opentrain.chain.account import ChainAccount  # noqa: E402
from opentrain.chain.client import DEV_PARAMS, Chain, connect  # noqa: E402
from opentrain.chain.deployment import deploy  # noqa: E402
from opentrain.chain.types import TOKEN  # noqa: E402
from opentrain.cli.demo import post_bounty  # noqa: E402
from opentrain.content.embedded import EmbeddedStore  # noqa: E402
from opentrain.protocol.presets import default_demo_spec, mlp_demo_spec  # noqa: E402
from opentrain.spec import JobSpec  # noqa: E402
from opentrain.training.checkpoint import TrainState  # noqa: E402


def in_process_market(
    spec: JobSpec, roles: int = 2
) -> tuple[Chain, EmbeddedStore, Path, list[ChainAccount]]:
    """A fresh deployment on the in-process chain and embedded store, ``roles`` funded
    accounts (the first is the sponsor), and the job posted."""
    home = Path(tempfile.mkdtemp(prefix="opentrain-bench-"))
    store = EmbeddedStore(home / "store")
    w3 = connect("inprocess")
    deployer = Account.create()
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20})
    chain = deploy(w3, deployer, DEV_PARAMS)
    admin = chain.account(deployer)
    accounts = []
    for _ in range(roles):
        key = Account.create()
        chain.fund_eth(key.address, 10**19)
        admin.transfer(key.address, 1_000 * TOKEN)
        accounts.append(chain.account(key))
    post_bounty(accounts[0], store, spec)
    return chain, store, home, accounts


def timed_slot(node: ChainAccount, store: EmbeddedStore, home: Path) -> tuple[int, float, float]:
    """One slot through the node daemon: (contribution id, seconds inside training steps,
    wall seconds from claim to submission)."""
    node.stake(200 * TOKEN)
    training = 0.0

    def timed(s: JobSpec, state: TrainState, r: int, slot: int) -> TrainState:
        nonlocal training
        began = time.perf_counter()
        out = honest_segment(s, state, r, slot)
        training += time.perf_counter() - began
        return out

    daemon = NodeDaemon(node, store, home / "node", segment_fn=timed)
    began = time.perf_counter()
    contribution = daemon.run_once()
    wall = time.perf_counter() - began
    assert contribution is not None
    return contribution, training, wall


def main() -> None:
    spec = (
        mlp_demo_spec(rounds=1, slots_per_round=1)
        if "--mlp" in sys.argv
        else (default_demo_spec(rounds=1, slots_per_round=1))
    )
    _, store, home, (_, node) = in_process_market(spec)
    _, training, wall = timed_slot(node, store, home)
    utilization = training / wall
    print(f"{'model':<28}{spec.model.name}")
    print(f"{'segments x steps':<28}{spec.training.num_segments} x {spec.training.segment_steps}")
    print(f"{'wall, claim to submission':<28}{wall:.3f} s")
    print(f"{'inside training steps':<28}{training:.3f} s")
    print(f"{'utilization':<28}{utilization:.1%}  (target >= 95%)")
    print(
        json.dumps(
            {
                "bench": "node_utilization",
                "model": spec.model.name,
                "wall_s": wall,
                "training_s": training,
                "utilization": utilization,
            }
        )
    )


if __name__ == "__main__":
    main()
