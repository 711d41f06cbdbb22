"""Probability that a verifier catches a node that fakes a fraction f of its segments, measured
over many seeds with the real sampling rule and real re-execution (issue 7).

    python bench/detection.py [--seeds 20000] [--segments 20] [--fraction 0.1]

A cheating node trains a slot of n segments but skips training in round(f*n) of them (it claims
the steps and trains nothing, the cheapest fake). Every segment of that trace is re-executed once
with the shared ``check_segment``: exactly the faked ones fail. Then, for each of ``--seeds``
seeds, the segments ``sample_indices(seed, n, k)`` picks are looked up: the node is caught when
any sampled segment failed. The measured rate is printed next to 1-(1-f)^k (sampling with
replacement, the rule JobMarket prices with) and the exact hypergeometric value (the rule
samples without replacement, so it catches slightly more), for k = 1..4. Finally the stake that
makes cheating unprofitable: a cheat gains the reward when not caught and loses its locked stake
when caught, so it loses on average iff p * (stake + reward) > reward.
"""

from __future__ import annotations

import argparse
import json
import sys
from math import comb
from pathlib import Path

from eth_utils import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentrain.chain.types import TOKEN  # noqa: E402
from opentrain.cli.demo import skip_training  # noqa: E402
from opentrain.protocol.economics import cheating_loses, detection_probability  # noqa: E402
from opentrain.protocol.presets import mlp_demo_spec  # noqa: E402
from opentrain.protocol.sampling import sample_indices  # noqa: E402
from opentrain.protocol.segment import check_segment  # noqa: E402
from opentrain.spec import JobSpec, TrainingSpec  # noqa: E402
from opentrain.training.checkpoint import (
    decode_params,
    encode_checkpoint,
    encode_params,
    fresh_state,
)
from opentrain.training.models import build_model, model_params  # noqa: E402
from opentrain.training.train import train_segment  # noqa: E402

ROUND, SLOT = 0, 0


def faked_trace(n: int, faked: set[int]) -> tuple[JobSpec, list[bytes]]:
    spec = mlp_demo_spec(training=TrainingSpec(inner_steps=2 * n, segment_steps=2, lr=5e-3))
    g0 = decode_params(spec, encode_params(model_params(build_model(spec.model))))
    state = fresh_state(spec, g0)
    trace = [encode_checkpoint(state, ROUND, SLOT)]
    for j in range(n):
        if j in faked:
            skip_training(spec, state, ROUND, SLOT)
        else:
            train_segment(spec, state, ROUND, SLOT)
        trace.append(encode_checkpoint(state, ROUND, SLOT))
    return spec, trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20_000)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--fraction", type=float, default=0.1)
    args = parser.parse_args()
    n, f = args.segments, args.fraction
    m = round(f * n)
    faked = {1 + i * (n // m) for i in range(m)}  # spread out, none at the ends
    spec, trace = faked_trace(n, faked)
    fails = {
        j
        for j in range(n)
        if not check_segment(spec, trace[j], trace[j + 1], j, ROUND, SLOT).passed
    }
    assert fails == faked, f"re-execution failed {sorted(fails)}, faked {sorted(faked)}"
    print(
        f"trace of {n} segments, faked {sorted(faked)} (f = {m / n:.0%}); re-execution fails "
        f"exactly those"
    )
    print(f"{'k':>3} {'measured':>10} {'1-(1-f)^k':>10} {'exact':>8} {'seeds':>7}")
    rows = []
    for k in range(1, 5):
        caught = sum(
            1
            for s in range(args.seeds)
            if fails.intersection(sample_indices(keccak(s.to_bytes(32, "big")), n, k))
        )
        measured = caught / args.seeds
        bound = 1 - (1 - m / n) ** k
        exact = 1 - comb(n - m, k) / comb(n, k)
        rows.append({"k": k, "measured": measured, "with_replacement": bound, "exact": exact})
        print(f"{k:>3} {measured:>10.4f} {bound:>10.4f} {exact:>8.4f} {args.seeds:>7}")

    reward = TOKEN
    bps = round(f * 10_000)
    print(f"\nstake that makes faking {f:.0%} of the segments lose money (reward 1 TRAIN):")
    for k in (1, 2, 4, 8, 16):
        p = detection_probability(bps, k) / 10**18
        needed = reward * (1 - p) / p
        ok = cheating_loses(bps, k, 100 * TOKEN, reward)
        print(
            f"  k={k:<3} p={p:.4f}  stake > {needed / TOKEN:6.2f} TRAIN   "
            f"(the demo's 100 TRAIN lock: {'unprofitable' if ok else 'PROFITABLE'})"
        )
    print(json.dumps({"bench": "detection", "segments": n, "fraction": m / n, "rows": rows}))


if __name__ == "__main__":
    main()
