"""DiLoCo vs synchronous data-parallel training at equal total steps on the demo corpus.

Both runs see exactly the same batches: worker w at inner step t of round r draws the batch
that slot w of round r draws in the protocol. They differ only in how workers combine work:

- sync DP: every step, the W workers' gradients are averaged (one batch of W x B) and one
  AdamW step is taken; each worker sends its float32 gradient every step;
- DiLoCo (the protocol's rounds, via ``train_segment`` and ``aggregate``): each worker runs H
  AdamW steps alone from G_r, then sends one pseudo-gradient per round: float32, int8, or
  ``topk`` (``opentrain.protocol.codecs``: a ``density`` fraction per chunk, 2- or 4-bit codes,
  error feedback through the committed residual, aggregated from the encoded updates with
  ``aggregate_pseudo_gradients`` exactly as the protocol's aggregator does).

Both start from G_0 (or, with ``--warm-start N``, from a model pretrained by N sync steps, as
in the DiLoCo paper). Defaults: W=2, H=100, R=400 (40,000 steps per worker: sparse updates
need hundreds of rounds, docs/determinism.md), 400 warm-start sync steps, a 2-layer d=48 gpt
on blocks of 32 bytes, batch 8, inner AdamW lr 1e-3 with a 10-step warmup per slot, outer
Nesterov lr 0.7 and momentum 0.9 (the DiLoCo paper's, best in the H=100 sweep recorded in
docs/determinism.md); topk at densities 0.01 and 0.03, 2 and 4 bits, error decay 0.95
(SparseLoCo's). Rows run in parallel single-threaded processes, one per core (``--jobs``):
about 40 minutes for the seven rows on 2 cores; ``--rounds 32`` gives a first look in five.

Reports the held-out loss by round on the whole validation shard of the corpus (620 windows,
20,460 targets: a job's published loss uses 64 windows, which alone moves a ratio by a few
percent, so the table also shows the final ratio on those 64 and its range over ten
interleaved tenths of the held-out set), the final ratio to sync (target within 3 %; beside
it the ratio of the mean over the last tenth of the rounds) and bytes sent per worker (ratio
sync / run; target >= 10,000x for the best codec within 3 %). Bytes are the encoded uploads
(``encode_pseudo_gradient``: one safetensors file, header included); the sync run's per-step
gradients use the same encoding.

The topk rows use SparseLoCo's outer step by default (plain SGD, lr 1, no momentum: the error
feedback carries what momentum would; ``--topk-outer-lr``, ``--topk-outer-momentum``,
``--error-decay``; at R = 400 lr 1.5 and 2 were worse).

Run: python bench/diloco_vs_sync.py [--rounds R] [--inner-steps H] [--densities 0.01,0.03]
[--bits 2,4] [--warm-start N] [--device] [--rows "sync DP,DiLoCo fp32,..."] [--jobs N]
[--json FILE] [--png FILE]
Prints a table and one JSON line, and plots held-out loss against bytes sent per worker to
bench/out/diloco_vs_sync.png.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.aggregation import (
    aggregate,
    aggregate_pseudo_gradients,
    encode_pseudo_gradient,
)
from opentrain.protocol.codecs import decode_residual, slot_update, zero_residual
from opentrain.protocol.presets import default_demo_spec
from opentrain.spec import DilocoSpec, GPTSpec, JobSpec, TrainingSpec
from opentrain.training.checkpoint import (
    decode_params,
    encode_checkpoint,
    encode_params,
    fresh_state,
    make_optimizer,
    move_state,
)
from opentrain.training.corpus import builtin_corpus_spec, publish_corpus
from opentrain.training.data import DataSource, data_source, load_batch
from opentrain.training.determinism import set_determinism
from opentrain.training.models import build_model, model_params
from opentrain.training.train import compute_loss, evaluate_loss, train_segment

Params = dict[str, torch.Tensor]


OUT = Path(__file__).resolve().parent / "out"
# The builtin corpus's validation shard (20,480 bytes) cut into 620 windows of block + 1 = 33
# bytes: every held-out byte once. A job's published loss uses 64 windows (2,048 targets),
# too few to tell two runs 1 % apart; the bench measures on all 20,460 targets.
VALIDATION_WINDOWS = 620


def bench_spec(
    args: argparse.Namespace,
    pseudo_gradient: Literal["float32", "int8"] = "float32",
    diloco: DilocoSpec | None = None,
) -> JobSpec:
    """A small gpt on the demo corpus, W slots per round, one segment per slot."""
    topk = diloco is not None and diloco.compression == "topk"
    return default_demo_spec(
        name="bench-diloco",
        data=builtin_corpus_spec(validation_size=args.validation_size),
        rounds=args.rounds,
        slots_per_round=args.workers,
        model=GPTSpec(
            n_layer=args.n_layer, n_head=4, n_embd=args.n_embd, block_size=args.block_size
        ),
        training=TrainingSpec(
            inner_steps=args.inner_steps,
            segment_steps=args.inner_steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.warmup,
            outer_lr=args.topk_outer_lr if topk else args.outer_lr,
            outer_momentum=args.topk_outer_momentum if topk else args.outer_momentum,
            pseudo_gradient=pseudo_gradient,
        ),
        diloco=diloco or DilocoSpec(),
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


@dataclass
class Run:
    """One row: held-out loss and bytes sent so far after each round, and the final model."""

    losses: list[float]
    sent: list[int]
    params: Params


def run_sync(spec: JobSpec, data: DataSource, start: SyncDP, first_round: int) -> Run:
    """Continue ``start`` (a copy) for ``spec.rounds`` rounds."""
    sync = copy.deepcopy(start)
    losses, sent = [], [0]
    for r in range(first_round, first_round + spec.rounds):
        sync.train_round(r, data)
        sent.append(sent[-1] + sync.step_bytes * spec.training.inner_steps)
        losses.append(evaluate_loss(spec, sync.params(), data))
    return Run(losses, sent[1:], sync.params())


def _train_slot(spec: JobSpec, params: Params, r: int, s: int, data: DataSource, device: str):  # type: ignore[no-untyped-def]
    state = move_state(fresh_state(spec, params), device)
    train_segment(spec, state, r, s, spec.training.inner_steps, data=data)
    return state


def run_diloco(
    spec: JobSpec, data: DataSource, g0: Params, first_round: int, device: str = "cpu"
) -> Run:
    """``spec.rounds`` protocol rounds from G = ``g0`` (zero outer momentum)."""
    g = encode_params(g0)
    losses, sent = [], [0]
    for r in range(first_round, first_round + spec.rounds):
        params = decode_params(spec, g)
        outputs = []
        for s in range(spec.slots_per_round):
            state = _train_slot(spec, params, r, s, data, device)
            outputs.append(encode_checkpoint(state, r, s))
            if s == 0:
                delta = {n: params[n] - p.detach().cpu() for n, p in state.model.named_parameters()}
                sent.append(sent[-1] + len(encode_pseudo_gradient(spec, delta)))
        g = aggregate(spec, g, outputs)
        losses.append(evaluate_loss(spec, decode_params(spec, g), data))
    return Run(losses, sent[1:], decode_params(spec, g))


def run_topk(
    spec: JobSpec, data: DataSource, g0: Params, first_round: int, device: str = "cpu"
) -> Run:
    """Protocol rounds under ``topk``: each slot keeps its committed residual for the next
    round; G_{r+1} is aggregated from the encoded updates alone."""
    g = encode_params(g0)
    residuals = [zero_residual(spec) for _ in range(spec.slots_per_round)]
    losses, sent = [], [0]
    for r in range(first_round, first_round + spec.rounds):
        params = decode_params(spec, g)
        updates = []
        for s in range(spec.slots_per_round):
            state = _train_slot(spec, params, r, s, data, device)
            output = {n: p.detach().cpu() for n, p in state.model.named_parameters()}
            update, residual = slot_update(spec, params, output, residuals[s])
            residuals[s] = decode_residual(spec, residual)
            updates.append(update)
        sent.append(sent[-1] + len(updates[0]))
        g = aggregate_pseudo_gradients(spec, g, updates)
        losses.append(evaluate_loss(spec, decode_params(spec, g), data))
    return Run(losses, sent[1:], decode_params(spec, g))


def plot(runs: dict[str, Run], path: Path, title: str, target: float) -> bool:
    """Held-out loss against bytes sent per worker (log scale), one line per run, and the
    3 % band above sync's final loss as a dashed line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, run in runs.items():
        ax.plot(run.sent, run.losses, marker="o", markersize=3, label=name)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="sync final x 1.03")
    ax.set_xscale("log")
    ax.set_xlabel("bytes sent per worker (cumulative)")
    ax.set_ylabel("held-out loss")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--inner-steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=48)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=10, help="inner lr warmup steps per slot")
    parser.add_argument("--outer-lr", type=float, default=0.7)
    parser.add_argument("--outer-momentum", type=float, default=0.9)
    parser.add_argument(
        "--warm-start",
        type=int,
        default=400,
        help="sync DP steps before all runs (a multiple of H)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--validation-size",
        type=int,
        default=VALIDATION_WINDOWS,
        help="held-out windows (default: the whole validation shard; a job publishes 64)",
    )
    parser.add_argument("--densities", default="0.01,0.03", help="topk densities, comma-separated")
    parser.add_argument("--bits", default="2,4", help="topk bits, comma-separated")
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--error-decay", type=float, default=0.95)
    parser.add_argument("--topk-outer-lr", type=float, default=1.0)
    parser.add_argument("--topk-outer-momentum", type=float, default=0.0)
    parser.add_argument("--rows", default="", help="only these rows (comma-separated names)")
    parser.add_argument("--png", default=str(OUT / "diloco_vs_sync.png"))
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="rows run at once, each in a 1-thread process (default: one per core; 1: in turn)",
    )
    parser.add_argument("--json", default="", help="also write the JSON line to this file")
    return parser.parse_args()


@dataclass
class Prepared:
    """What every row starts from: the spec, the corpus and the warm-started sync run."""

    spec: JobSpec
    store: EmbeddedStore
    data: DataSource
    start: SyncDP
    pre_rounds: int
    initial_loss: float
    warm_loss: float


def prepare(args: argparse.Namespace) -> Prepared:
    """Publish the corpus and warm-start by ``--warm-start`` sync steps (deterministic, so
    every worker process that calls this starts from the same G_0)."""
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
    return Prepared(spec, store, data, start, pre_rounds, initial, warm)


def plans(args: argparse.Namespace, prep: Prepared) -> dict[str, Callable[[], Run]]:
    """Every row the bench knows, by name, each a call that runs it from ``prep``."""
    spec, data, pre_rounds = prep.spec, prep.data, prep.pre_rounds
    g0 = prep.start.params()
    rows: dict[str, Callable[[], Run]] = {
        "sync DP": lambda: run_sync(spec, data, prep.start, pre_rounds),
        "DiLoCo fp32": lambda: run_diloco(spec, data, g0, pre_rounds, args.device),
        "DiLoCo int8": lambda: run_diloco(
            bench_spec(args, "int8"), data, g0, pre_rounds, args.device
        ),
    }
    for density in (float(x) for x in args.densities.split(",")):
        for bits in (int(x) for x in args.bits.split(",")):
            codec = DilocoSpec(
                compression="topk",
                density=density,
                bits=bits,  # type: ignore[arg-type]
                chunk=args.chunk,
                error_decay=args.error_decay,
            )
            job = bench_spec(args, diloco=codec)
            rows[f"topk {density:g} {bits}b"] = lambda job=job: run_topk(  # type: ignore[misc]
                job, data, g0, pre_rounds, args.device
            )
    return rows


def run_row(args: argparse.Namespace, name: str) -> tuple[Run, float]:
    """One row in a worker process of its own (``--jobs``): one thread, its own warm start."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run = plans(args, prepare(args))[name]()
    return run, time.perf_counter() - t0


def run_rows(args: argparse.Namespace, prep: Prepared, wanted: list[str]) -> dict[str, Run]:
    """The wanted rows, one after the other or ``--jobs`` at a time in worker processes (on
    few cores a single-threaded process trains this small model as fast as two threads)."""
    if args.jobs <= 1:
        table = plans(args, prep)
        runs = {}
        for name in wanted:
            t0 = time.perf_counter()
            runs[name] = table[name]()
            print(f"  {name}: {time.perf_counter() - t0:.0f}s", flush=True)
        return runs
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(wanted)), mp_context=context) as pool:
        futures = {name: pool.submit(run_row, args, name) for name in wanted}
        results = {}
        for name, future in futures.items():
            results[name], seconds = future.result()
            print(f"  {name}: {seconds:.0f}s", flush=True)
    return results


PUBLISHED_WINDOWS = 64  # what a job publishes per round (the demo corpus spec's default)
SUBSETS = 10  # interleaved parts of the bench's held-out set, each about a published set's size


def window_losses(spec: JobSpec, params: Params, data: DataSource) -> torch.Tensor:
    """Mean cross-entropy of each held-out window (float64), for the spread below."""
    model = build_model(spec.model, initialize=False)
    model.load_state_dict(params, strict=True)
    model.eval()
    x, y = data.validation()
    with torch.no_grad():
        logits = model(x)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    return ce.double().reshape(x.shape[0], -1).mean(dim=1)


def measurement_noise(
    args: argparse.Namespace, prep: Prepared, runs: dict[str, Run]
) -> dict[str, dict[str, float]]:
    """Each run's final loss ratio to sync as a job's published loss would measure it (its 64
    windows), and its range over ``SUBSETS`` interleaved parts of the bench's held-out set:
    how far a held-out set of that size alone moves the ratio."""
    published = bench_spec(args).model_copy(
        update={"data": builtin_corpus_spec(validation_size=PUBLISHED_WINDOWS)}
    )
    published_data = data_source(published, prep.store)
    sync = runs["sync DP"].params
    sync_published = evaluate_loss(published, sync, published_data)
    sync_windows = window_losses(prep.spec, sync, prep.data)
    out = {}
    for name, run in runs.items():
        windows = window_losses(prep.spec, run.params, prep.data)
        parts = [
            float(windows[i::SUBSETS].mean() / sync_windows[i::SUBSETS].mean())
            for i in range(SUBSETS)
        ]
        out[name] = {
            "published_set_ratio": evaluate_loss(published, run.params, published_data)
            / sync_published,
            "subset_ratio_min": min(parts),
            "subset_ratio_max": max(parts),
        }
    return out


def main() -> None:
    args = parse_args()
    began = time.perf_counter()
    prep = prepare(args)
    spec, h = prep.spec, prep.spec.training.inner_steps
    initial, warm = prep.initial_loss, prep.warm_loss
    known = plans(args, prep)
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()] or list(known)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {', '.join(known)}")
    if "sync DP" not in wanted:
        wanted.insert(0, "sync DP")
    runs = run_rows(args, prep, wanted)
    sync_loss, sync_bytes = runs["sync DP"].losses[-1], runs["sync DP"].sent[-1]
    noise = measurement_noise(args, prep, runs)
    tr = spec.training
    print(
        f"{spec.slots_per_round} workers x {spec.rounds} rounds x H={h} steps (batch "
        f"{tr.batch_size} each, lr {tr.lr:g}, warmup {tr.warmup_steps}, outer lr "
        f"{tr.outer_lr:g}, momentum {tr.outer_momentum:g}; topk: outer lr {args.topk_outer_lr:g}, "
        f"momentum {args.topk_outer_momentum:g}, chunk {args.chunk}, error decay "
        f"{args.error_decay:g}), model {spec.model}"
    )
    print(f"loss: initial {initial:.4f}, after {args.warm_start} warm-start sync steps {warm:.4f}")
    shown = sorted({round(i * (spec.rounds - 1) / 15) for i in range(16)})  # at most 16
    tail = max(1, spec.rounds // 10)
    width = 6 * len(shown)
    print(
        f"held-out set: {args.validation_size} windows of {spec.model.block_size} targets; "  # type: ignore[union-attr]
        f"'last {tail}': ratio of the mean over the last {tail} rounds; '64 win.': the final "
        f"ratio on a job's published {PUBLISHED_WINDOWS}-window set; 'parts': its range over "
        f"{SUBSETS} interleaved parts of the held-out set"
    )
    print(
        f"{'run':<14} {'held-out loss at rounds ' + ','.join(str(r + 1) for r in shown):<{width}} "
        f"{'final':>7} {'ratio':>6} {f'last {tail}':>8} {'64 win.':>8} {'parts':>13} "
        f"{'KB sent/worker':>15} {'bytes ratio':>12}"
    )
    result: dict[str, object] = {
        "bench": "diloco_vs_sync",
        "workers": spec.slots_per_round,
        "rounds": spec.rounds,
        "inner_steps": h,
        "warm_start_steps": args.warm_start,
        "initial_loss": initial,
        "warm_start_loss": warm,
        "topk_outer_lr": args.topk_outer_lr,
        "topk_outer_momentum": args.topk_outer_momentum,
        "chunk": args.chunk,
        "error_decay": args.error_decay,
        "tail_rounds": tail,
        "validation_windows": args.validation_size,
        "runs": {},
    }
    rows: dict[str, dict[str, Any]] = {}
    sync_tail = sum(runs["sync DP"].losses[-tail:]) / tail
    for name, run in runs.items():
        losses, sent, spread = run.losses, run.sent, noise[name]
        ratio, bytes_ratio = losses[-1] / sync_loss, sync_bytes / sent[-1]
        tail_ratio = sum(losses[-tail:]) / tail / sync_tail
        curve = " ".join(f"{losses[r]:.3f}" for r in shown)
        parts = f"{spread['subset_ratio_min']:.3f}-{spread['subset_ratio_max']:.3f}"
        print(
            f"{name:<14} {curve:<{width}} {losses[-1]:>7.4f} {ratio:>6.3f} {tail_ratio:>8.3f} "
            f"{spread['published_set_ratio']:>8.3f} {parts:>13} "
            f"{sent[-1] / 1e3:>15.1f} {bytes_ratio:>11.1f}x"
        )
        rows[name] = {
            **spread,
            "losses": losses,
            "bytes_sent_by_round": sent,
            "final_loss": losses[-1],
            "loss_ratio": ratio,
            "tail_loss_ratio": tail_ratio,
            "bytes_sent_per_worker": sent[-1],
            "bytes_ratio": bytes_ratio,
        }
    result["runs"] = rows
    within = [n for n in rows if n != "sync DP" and rows[n]["loss_ratio"] <= 1.03]
    best = max(within, key=lambda n: rows[n]["bytes_ratio"], default=None)
    checks = {f"{n}_within_3pct": rows[n]["loss_ratio"] <= 1.03 for n in rows if n != "sync DP"}
    checks["best_within_3pct_ge_10000x"] = best is not None and rows[best]["bytes_ratio"] >= 1e4
    if best is not None:
        print(
            f"best within 3% of sync: {best} (loss ratio {rows[best]['loss_ratio']:.3f}, "
            f"{rows[best]['bytes_ratio']:,.0f}x less traffic than sync DP)"
        )
    else:
        print("no codec within 3% of sync")
    print("targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in checks.items()))
    result["best_within_3pct"] = best
    result["targets"] = checks
    png = Path(args.png)
    title = (
        f"W={spec.slots_per_round}, H={h}, R={spec.rounds}, {spec.model.name} d={spec.model.n_embd}"  # type: ignore[union-attr]
    )
    if plot(runs, png, title, 1.03 * sync_loss):
        print(f"plot: {png}")
        result["png"] = str(png)
    result["seconds"] = round(time.perf_counter() - began, 1)
    line = json.dumps(result)
    print(line)
    if args.json:
        Path(args.json).write_text(line + "\n")


if __name__ == "__main__":
    main()
