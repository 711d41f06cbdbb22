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
from opentrain.chain import TOKEN, connect, deploy  # noqa: E402
from opentrain.checkpoint import TrainState  # noqa: E402
from opentrain.demo import post_bounty  # noqa: E402
from opentrain.spec import JobSpec, default_demo_spec, mlp_demo_spec  # noqa: E402
from opentrain.store import EmbeddedStore  # noqa: E402


def main() -> None:
    spec = (
        mlp_demo_spec(rounds=1, slots_per_round=1)
        if "--mlp" in sys.argv
        else (default_demo_spec(rounds=1, slots_per_round=1))
    )
    home = Path(tempfile.mkdtemp(prefix="opentrain-bench-"))
    store = EmbeddedStore(home / "store")
    w3 = connect("inprocess")
    deployer = Account.create()
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20})
    chain = deploy(w3, deployer)
    admin = chain.account(deployer)
    accounts = []
    for _ in range(2):
        key = Account.create()
        chain.fund_eth(key.address, 10**19)
        admin.transfer(key.address, 1_000 * TOKEN)
        accounts.append(chain.account(key))
    sponsor, node = accounts
    node.stake(200 * TOKEN)
    post_bounty(sponsor, store, spec)

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
