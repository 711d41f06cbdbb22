"""Verifier compute as a share of the node's training compute (issue 7).

    python bench/verifier_cost.py [--mlp] [--inner-steps H --segment-steps c] [--samples k]

On the in-process chain with the embedded store, a node trains one slot of the demo job through
the node daemon (time inside its training steps is measured), then the drawn verifier runs the
full check of the contribution: fetch the manifest and the sampled checkpoints, check them
against the trace root, check checkpoint 0 against G_r and re-execute the k sampled segments.
Printed: the verifier's wall time and its re-execution time, each over the node's training time,
next to the step ratio k*c/H that re-execution costs by construction. The ratio does not depend
on the model, only on how many of the H steps are sampled: with the demo's short slots (H=60,
c=15, k=2) it is 50 %; ``--inner-steps 600 --segment-steps 15`` shows a slot shaped like
production (k*c/H = 5 %).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from node_utilization import in_process_market, timed_slot  # noqa: E402

from opentrain.chain.types import TOKEN  # noqa: E402
from opentrain.protocol.contribution import check_contribution  # noqa: E402
from opentrain.protocol.presets import default_demo_spec, mlp_demo_spec  # noqa: E402
from opentrain.spec import JobSpec  # noqa: E402


def job_spec(args: argparse.Namespace) -> JobSpec:
    base = mlp_demo_spec if args.mlp else default_demo_spec
    spec = base(rounds=1, slots_per_round=1)
    training = spec.training.model_copy(
        update={
            k: v
            for k, v in (("inner_steps", args.inner_steps), ("segment_steps", args.segment_steps))
            if v
        }
    )
    verification = spec.verification.model_copy(
        update={"samples": args.samples} if args.samples else {}
    )
    return base(rounds=1, slots_per_round=1, training=training, verification=verification)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp", action="store_true", help="the tiny mlp job instead of gpt")
    parser.add_argument("--inner-steps", type=int, default=0)
    parser.add_argument("--segment-steps", type=int, default=0)
    parser.add_argument("--samples", type=int, default=0)
    args = parser.parse_args()
    spec = job_spec(args)

    chain, store, home, (_, node, verifier) = in_process_market(spec, roles=3)
    verifier.stake(200 * TOKEN)
    verifier.register_verifier()
    contribution, training, _ = timed_slot(node, store, home)
    chain.mine(1)
    verifier.record_seed(contribution)
    report = check_contribution(chain, store, contribution)
    assert report.passed, report.reason
    reexecution = sum(c.seconds for c in report.checks)
    t = spec.training
    k = spec.verification.samples
    steps_share = k * t.segment_steps / t.inner_steps
    print(f"{'model':<34}{spec.model.name}")
    print(f"{'slot: H steps, c per segment, k':<34}{t.inner_steps}, {t.segment_steps}, {k}")
    print(f"{'node: inside training steps':<34}{training:.3f} s")
    print(f"{'verifier: re-execution':<34}{reexecution:.3f} s  ({reexecution / training:.1%})")
    print(f"{'verifier: whole check':<34}{report.seconds:.3f} s  ({report.seconds / training:.1%})")
    print(f"{'by construction k*c/H':<34}{steps_share:.1%}   (target <= 5 %)")
    print(
        json.dumps(
            {
                "bench": "verifier_cost",
                "model": spec.model.name,
                "inner_steps": t.inner_steps,
                "segment_steps": t.segment_steps,
                "samples": k,
                "node_training_s": training,
                "verifier_reexecution_s": reexecution,
                "verifier_total_s": report.seconds,
                "share_reexecution": reexecution / training,
                "share_total": report.seconds / training,
                "share_by_steps": steps_share,
            }
        )
    )


if __name__ == "__main__":
    main()
