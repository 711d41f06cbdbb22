"""DiLoCo vs synchronous data-parallel training at equal total steps on the demo corpus.

Both runs see exactly the same batches: worker w at inner step t of round r draws the batch
that slot w of round r draws in the protocol. They differ only in how workers combine work:

- sync DP: every step, the W workers' gradients are averaged (one batch of W x B) and one
  AdamW step is taken; each worker sends its float32 gradient every step;
- DiLoCo (the protocol's rounds, via ``train_segment`` and ``aggregate``): each worker runs H
  AdamW steps alone from G_r, then sends one pseudo-gradient per round (float32 or int8).

Both start from G_0 (or, with ``--warm-start N``, from a model pretrained by N sync steps, as
in the DiLoCo paper). Defaults: W=2, H=50, R=4, inner AdamW lr 1e-3 with a 10-step warmup per
slot, outer Nesterov lr 0.7 and momentum 0.5 (picked by a sweep recorded in
docs/determinism.md). Reports the final held-out loss (ratio DiLoCo / sync;
target within 3 % at H >= 50) and bytes sent per worker (ratio sync / DiLoCo; targets >= H
and, with int8, >= 4H). Bytes are the encoded uploads (``encode_pseudo_gradient``: one
safetensors file, header included); the sync run's per-step gradients use the same encoding.

Run: python bench/diloco_vs_sync.py [--rounds R] [--inner-steps H] [--warm-start N] [--device]
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.aggregation import aggregate, encode_pseudo_gradient
from opentrain.protocol.presets import default_demo_spec
from opentrain.spec import GPTSpec, JobSpec, TrainingSpec
from opentrain.training.checkpoint import (
    decode_params,
    encode_checkpoint,
    encode_params,
    fresh_state,
    make_optimizer,
    move_state,
)
from opentrain.training.corpus import publish_corpus
from opentrain.training.data import DataSource, data_source, load_batch
from opentrain.training.determinism import set_determinism
from opentrain.training.models import build_model, model_params
from opentrain.training.train import compute_loss, evaluate_loss, train_segment

Params = dict[str, torch.Tensor]


def bench_spec(
    args: argparse.Namespace, pseudo_gradient: Literal["float32", "int8"] = "float32"
) -> JobSpec:
    """A small gpt on the demo corpus, W slots per round, one segment per slot."""
    return default_demo_spec(
        name="bench-diloco",
        rounds=args.rounds,
        slots_per_round=args.workers,
        model=GPTSpec(n_layer=2, n_head=4, n_embd=64, block_size=64),
        training=TrainingSpec(
            inner_steps=args.inner_steps,
            segment_steps=args.inner_steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.warmup,
            outer_lr=args.outer_lr,
            outer_momentum=args.outer_momentum,
            pseudo_gradient=pseudo_gradient,
        ),
        verification={"samples": 1},
    )


class SyncDP:
    """Synchronous data parallelism on the protocol's batches, one persistent AdamW."""

    def __init__(self, spec: JobSpec, device: str) -> None:
        set_determinism()
        self.spec, self.device = spec, device
        self.model: nn.Module = build_model(spec.model).to(device)
        self.optimizer = make_optimizer(self.model, spec.training)
        self.steps = 0
        self.step_bytes = 0

    def train_round(self, r: int, data: DataSource) -> None:
        w, tr = self.spec.slots_per_round, self.spec.training
        for t in range(tr.inner_steps):
            for group in self.optimizer.param_groups:  # warmup once, at the very start
                group["lr"] = tr.lr_at(self.steps)
            self.optimizer.zero_grad(set_to_none=True)
            for s in range(w):
                x, y = (z.to(self.device) for z in load_batch(self.spec, r, s, t, data))
                (compute_loss(self.model, x, y) / w).backward()  # type: ignore[no-untyped-call]
            if not self.step_bytes:
                grads = {
                    n: p.grad.cpu() for n, p in self.model.named_parameters() if p.grad is not None
                }
                self.step_bytes = len(encode_pseudo_gradient(self.spec, grads))
            self.optimizer.step()
            self.steps += 1

    def params(self) -> Params:
        return model_params(self.model)


def run_sync(
    spec: JobSpec, data: DataSource, start: SyncDP, first_round: int
) -> tuple[list[float], int]:
    """Continue ``start`` (a copy) for ``spec.rounds`` rounds; losses per round, bytes sent."""
    sync = copy.deepcopy(start)
    losses, sent = [], 0
    for r in range(first_round, first_round + spec.rounds):
        sync.train_round(r, data)
        sent += sync.step_bytes * spec.training.inner_steps
        losses.append(evaluate_loss(spec, sync.params(), data))
    return losses, sent


def run_diloco(
    spec: JobSpec, data: DataSource, g0: Params, first_round: int, device: str = "cpu"
) -> tuple[list[float], int]:
    """``spec.rounds`` protocol rounds from G = ``g0`` (zero outer momentum)."""
    g = encode_params(g0)
    losses, sent = [], 0
    for r in range(first_round, first_round + spec.rounds):
        params = decode_params(spec, g)
        outputs = []
        for s in range(spec.slots_per_round):
            state = move_state(fresh_state(spec, params), device)
            train_segment(spec, state, r, s, spec.training.inner_steps, data=data)
            outputs.append(encode_checkpoint(state, r, s))
            if s == 0:
                delta = {n: params[n] - p.detach().cpu() for n, p in state.model.named_parameters()}
                sent += len(encode_pseudo_gradient(spec, delta))
        g = aggregate(spec, g, outputs)
        losses.append(evaluate_loss(spec, decode_params(spec, g), data))
    return losses, sent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--inner-steps", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=10, help="inner lr warmup steps per slot")
    parser.add_argument("--outer-lr", type=float, default=0.7)
    parser.add_argument("--outer-momentum", type=float, default=0.5)
    parser.add_argument(
        "--warm-start", type=int, default=0, help="sync DP steps before both runs (a multiple of H)"
    )
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    began = time.perf_counter()
    spec = bench_spec(args)
    h = spec.training.inner_steps
    if args.warm_start % h:
        raise SystemExit(f"--warm-start must be a multiple of H={h}")
    store = EmbeddedStore(Path(tempfile.mkdtemp(prefix="opentrain-diloco-")) / "store")
    publish_corpus(store)
    data = data_source(spec, store)
    start = SyncDP(spec, args.device)
    initial = evaluate_loss(spec, start.params(), data)
    pre_rounds = args.warm_start // h
    for r in range(pre_rounds):
        start.train_round(r, data)
    warm = evaluate_loss(spec, start.params(), data)
    g0 = start.params()
    runs = {
        "sync DP": run_sync(spec, data, start, pre_rounds),
        "DiLoCo fp32": run_diloco(spec, data, g0, pre_rounds, args.device),
        "DiLoCo int8": run_diloco(bench_spec(args, "int8"), data, g0, pre_rounds, args.device),
    }
    sync_loss, sync_bytes = runs["sync DP"][0][-1], runs["sync DP"][1]
    tr = spec.training
    print(
        f"{spec.slots_per_round} workers x {spec.rounds} rounds x H={h} steps (batch "
        f"{tr.batch_size} each, lr {tr.lr:g}, warmup {tr.warmup_steps}, outer lr "
        f"{tr.outer_lr:g}, momentum {tr.outer_momentum:g}), model {spec.model}"
    )
    print(f"loss: initial {initial:.4f}, after {args.warm_start} warm-start sync steps {warm:.4f}")
    print(
        f"{'run':<12} {'held-out loss by round':<36} {'final':>7} {'ratio':>6} "
        f"{'MB sent/worker':>15} {'bytes ratio':>12}"
    )
    result: dict[str, object] = {
        "bench": "diloco_vs_sync",
        "workers": spec.slots_per_round,
        "rounds": spec.rounds,
        "inner_steps": h,
        "warm_start_steps": args.warm_start,
        "initial_loss": initial,
        "warm_start_loss": warm,
    }
    for name, (losses, sent) in runs.items():
        ratio, bytes_ratio = losses[-1] / sync_loss, sync_bytes / sent
        curve = " ".join(f"{x:.3f}" for x in losses)
        print(
            f"{name:<12} {curve:<36} {losses[-1]:>7.4f} {ratio:>6.3f} "
            f"{sent / 1e6:>15.3f} {bytes_ratio:>11.2f}x"
        )
        result[name.replace(" ", "_").lower()] = {
            "losses": losses,
            "final_loss": losses[-1],
            "loss_ratio": ratio,
            "bytes_sent_per_worker": sent,
            "bytes_ratio": bytes_ratio,
            "bytes_ratio_over_H": bytes_ratio / h,
        }
    fp32, int8 = runs["DiLoCo fp32"], runs["DiLoCo int8"]
    checks = {
        "fp32_loss_within_3pct": fp32[0][-1] / sync_loss <= 1.03,
        "int8_loss_within_3pct": int8[0][-1] / sync_loss <= 1.03,
        "fp32_bytes_ratio_ge_H": sync_bytes / fp32[1] >= h,
        "int8_bytes_ratio_ge_4H": sync_bytes / int8[1] >= 4 * h,
    }
    print("targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in checks.items()))
    result["targets"] = checks
    result["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
