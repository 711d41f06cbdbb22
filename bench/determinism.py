"""How far apart are honest re-executions of one segment? And how far is the nearest cheat?

Tolerance mode accepts a segment when every tensor's relative L2 distance to the verifier's
re-execution is below the job's tolerance. This study re-runs segments of the demo job from
the same checkpoint under conditions an honest node may differ in:

- thread count: 1 vs 2 (subprocesses with OMP_NUM_THREADS / MKL_NUM_THREADS),
- gradient accumulation: micro_batches 1 vs 2 vs 4 (the spec field),
- device: CPU vs CUDA and CUDA vs CUDA (with --device cuda; skipped without CUDA),

and under the smallest cheats of the attack tests (1 % larger learning rate, one step short,
another slot's shard). Distances are the max relative L2 over tensors of each group (parameters,
AdamW first and second moments, and the AdamW step direction the moments imply); tolerance mode
checks all four, so a run's figure is the largest of them. Per group it recommends the smallest
power of ten at least 10x above every honest distance of that group (the spec's
``verification.tolerances``), and reports, for each cheat, by how far the group that gives it
away lands above its tolerance.

With ``--precision bf16`` the job trains under bf16 autocast (``training.precision``); its
table adds an fp32 re-execution of the bf16 segment for reference (not an honest condition:
the verifier re-executes under the job's precision).

Run: python bench/determinism.py [--device cuda] [--quick] [--warmup N] [--late-only]
     [--first-only] [--precision bf16] [--late-step N]
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.presets import default_demo_spec, small_gpt_spec
from opentrain.protocol.segment import compared_tensors, group_maxima, relative_l2
from opentrain.spec import TENSOR_GROUPS, JobSpec, canonical_json, parse_spec
from opentrain.training.checkpoint import (
    TrainState,
    decode_checkpoint,
    digest,
    encode_checkpoint,
    fresh_state,
    move_state,
)
from opentrain.training.corpus import publish_corpus
from opentrain.training.data import data_source
from opentrain.training.models import build_model, model_params
from opentrain.training.train import train_segment

ROUND, SLOT = 0, 1


def distances(a: bytes, b: bytes, spec: JobSpec) -> dict[str, float]:
    """Max relative L2 per group (parameters, first moments, second moments, AdamW step
    direction), exactly as the verifier computes them (``segment.compared_tensors``)."""
    ta = compared_tensors(spec, decode_checkpoint(spec, a))
    tb = compared_tensors(spec, decode_checkpoint(spec, b))
    maxima = group_maxima({name: relative_l2(ta[name], tb[name]) for name in tb})
    return {str(group): d for group, d in maxima.items()}


def run_segment(
    spec: JobSpec,
    start: bytes,
    store: EmbeddedStore,
    *,
    device: str = "cpu",
    steps: int | None = None,
    slot: int = SLOT,
) -> bytes:
    state: TrainState = decode_checkpoint(spec, start)
    if device != "cpu":
        move_state(state, device)
    train_segment(spec, state, ROUND, slot, steps, data=data_source(spec, store))
    if steps is not None and steps < spec.training.segment_steps:
        # a short cheat claims the full segment: bump the step counters it skipped
        missing = spec.training.segment_steps - steps
        state.step += missing
        for p in state.model.parameters():
            state.optimizer.state[p]["step"] += missing
    return encode_checkpoint(state, ROUND, SLOT)


def _worker(argv: list[str]) -> None:
    """Child process: run one segment with the thread count set by the parent's env."""
    spec_path, start_path, out_path, store_dir = argv
    spec = parse_spec(Path(spec_path).read_bytes())
    store = EmbeddedStore(Path(store_dir))
    end = run_segment(spec, Path(start_path).read_bytes(), store)
    Path(out_path).write_bytes(end)
    print(torch.get_num_threads())


def run_with_threads(
    threads: int, spec: JobSpec, start: bytes, store: EmbeddedStore, tmp: Path
) -> bytes:
    (tmp / "spec.json").write_bytes(canonical_json(spec))
    (tmp / "start.safetensors").write_bytes(start)
    out = tmp / f"end-{threads}.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    args = [str(tmp / "spec.json"), str(tmp / "start.safetensors"), str(out), str(store.root)]
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {proc.stderr.strip().splitlines()[-1:]}")
    if proc.stdout.split()[-1] != str(threads):
        raise RuntimeError(f"worker ran {proc.stdout.split()[-1]} threads, not {threads}")
    return out.read_bytes()


def start_checkpoints(
    spec: JobSpec, store: EmbeddedStore, *, late: bool = True, late_step: int | None = None
) -> dict[str, bytes]:
    """Checkpoint 0 (G_0, fresh AdamW) and a later segment start of slot (ROUND, SLOT): the
    last segment's unless ``late_step`` (a multiple of segment_steps) says otherwise."""
    state = fresh_state(spec, model_params(build_model(spec.model)))
    first = encode_checkpoint(state, ROUND, SLOT)
    if not late:
        return {"first": first}
    late_steps = (spec.training.num_segments - 1) * spec.training.segment_steps
    if late_step is not None:
        late_steps = late_step
    train_segment(spec, state, ROUND, SLOT, late_steps, data=data_source(spec, store))
    return {"first": first, f"step {late_steps}": encode_checkpoint(state, ROUND, SLOT)}


GROUPS = TENSOR_GROUPS


def per_group(
    rows: list[tuple[str, str, bool, dict[str, float]]],
) -> tuple[dict[str, dict[str, float]], list[dict[str, object]]]:
    """Per group: worst honest distance, recommended tolerance and its honest margin; per
    cheat: each group's distance over its tolerance, and which group catches it by most."""
    groups: dict[str, dict[str, float]] = {}
    for g in GROUPS:
        worst = max(d[g] for _, label, _, d in rows if not label.startswith("CHEAT"))
        nearest = min(d[g] for _, label, _, d in rows if label.startswith("CHEAT"))
        tol, honest_margin, _ = recommend(worst, nearest)
        groups[g] = {
            "worst_honest": worst,
            "tolerance": tol,
            "honest_margin": honest_margin,
            "nearest_cheat": nearest,
        }
    cheats: list[dict[str, object]] = []
    for where, label, _, d in rows:
        if label.startswith("CHEAT"):
            ratios = {g: d[g] / groups[g]["tolerance"] for g in GROUPS}
            best = max(ratios, key=lambda g: ratios[g])
            cheats.append(
                {"start": where, "cheat": label, "caught_by": best, "margin": ratios[best]}
            )
    return groups, cheats


def recommend(worst_honest: float, nearest_cheat: float) -> tuple[float, float, float]:
    """Smallest of 1, 2, 5 x 10^n that is >= 10x the worst honest distance (at least 1e-6),
    and the safety margins on both sides (below 1 on the cheat side: that cheat passes)."""
    floor = max(worst_honest * 10.0, 1e-6)
    decade = 10.0 ** math.floor(math.log10(floor))
    tol = next(m * decade for m in (1.0, 2.0, 5.0, 10.0) if m * decade >= floor * (1 - 1e-12))
    honest_margin = tol / worst_honest if worst_honest > 0 else math.inf
    return tol, honest_margin, nearest_cheat / tol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="the tiny test model instead")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument(
        "--late-step", type=int, default=None, help="second start (default: the last segment's)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="override training.warmup_steps (0: worst case)"
    )
    parser.add_argument(
        "--late-only", action="store_true", help="only the last segment (skips checkpoint 0)"
    )
    parser.add_argument(
        "--first-only", action="store_true", help="only the first segment (no long pre-training)"
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker)
        return

    began = time.perf_counter()
    spec = small_gpt_spec() if args.quick else default_demo_spec()
    spec = spec.model_copy(
        update={"training": spec.training.model_copy(update={"precision": args.precision})}
    )
    if args.warmup is not None:
        spec = spec.model_copy(
            update={"training": spec.training.model_copy(update={"warmup_steps": args.warmup})}
        )
    cuda = args.device == "cuda" and torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        print("CUDA requested but not available: CPU comparisons only")
    tmp = Path(tempfile.mkdtemp(prefix="opentrain-determinism-"))
    store = EmbeddedStore(tmp / "store")
    publish_corpus(store)
    starts = start_checkpoints(spec, store, late=not args.first_only, late_step=args.late_step)
    if args.late_only:
        starts.pop("first")

    cuda_error = ""
    rows: list[tuple[str, str, bool, dict[str, float]]] = []
    honest: list[float] = []
    cheats: list[tuple[str, str, float]] = []
    for where, start in starts.items():
        ref = run_segment(spec, start, store)
        t1 = run_with_threads(1, spec, start, store, tmp)
        t2 = run_with_threads(2, spec, start, store, tmp)
        compared = [("threads 1 vs 2", t1, t2), ("threads 1 vs this process", t1, ref)]
        for m in (2, 4):
            mspec = spec.model_copy(
                update={"training": spec.training.model_copy(update={"micro_batches": m})}
            )
            compared.append((f"micro-batches 1 vs {m}", ref, run_segment(mspec, start, store)))
        if cuda:
            try:
                g1 = run_segment(spec, start, store, device="cuda")
                g2 = run_segment(spec, start, store, device="cuda")
                compared += [("cpu vs cuda", ref, g1), ("cuda vs cuda", g1, g2)]
            except Exception as exc:  # report, keep the CPU figures
                print(f"CUDA run failed: {type(exc).__name__}: {exc}")
                cuda_error = f"{type(exc).__name__}: {exc}"
        for label, a, b in compared:
            d = distances(a, b, spec)
            rows.append((where, label, digest(a) == digest(b), d))
            honest.append(max(d.values()))  # tolerance mode checks every tensor
        if spec.training.precision != "fp32":  # reference only: verifiers follow the spec
            fspec = spec.model_copy(
                update={"training": spec.training.model_copy(update={"precision": "fp32"})}
            )
            d = distances(ref, run_segment(fspec, start, store), spec)
            rows.append((where, "(ref) fp32 re-execution", False, d))
        lr_spec = spec.model_copy(
            update={"training": spec.training.model_copy(update={"lr": spec.training.lr * 1.01})}
        )
        for label, cheat in [
            ("CHEAT lr x1.01", run_segment(lr_spec, start, store)),
            (
                "CHEAT one step short",
                run_segment(spec, start, store, steps=spec.training.segment_steps - 1),
            ),  # noqa: E501
            ("CHEAT other slot's shard", run_segment(spec, start, store, slot=0)),
        ]:
            d = distances(ref, cheat, spec)
            rows.append((where, label, False, d))
            cheats.append((where, label, max(d.values())))  # caught if any tensor is off

    worst, nearest = max(honest), min(c[2] for c in cheats)
    tol, honest_margin, cheat_margin = recommend(worst, nearest)
    missed = [f"{label} ({where}, {d:.2e})" for where, label, d in cheats if d < tol]
    nearest_caught = min((d for _, _, d in cheats if d >= tol), default=math.inf)
    print(
        f"model {spec.model}, segment {spec.training.segment_steps} steps, "
        f"batch {spec.training.batch_size}, precision {spec.training.precision}, "
        f"threads here {torch.get_num_threads()}"
    )
    print(
        f"{'start':<10} {'comparison':<27} {'bits equal':>10} {'params':>10} "
        f"{'exp_avg':>10} {'exp_avg_sq':>10} {'update':>10}"
    )
    for where, label, same, d in rows:
        print(
            f"{where:<10} {label:<27} {str(same):>10} {d['params']:>10.2e} "
            f"{d['exp_avg']:>10.2e} {d['exp_avg_sq']:>10.2e} {d['update']:>10.2e}"
        )
    print(
        f"worst honest {worst:.2e}, nearest cheat {nearest:.2e}: recommended tolerance "
        f"{tol:g} ({honest_margin:.1f}x above honest, nearest cheat at {cheat_margin:.2g}x it; "
        f"nearest caught cheat {nearest_caught:.2e}, {nearest_caught / tol:.1f}x above)"
    )
    if missed:
        print("cheats inside that tolerance (NOT caught): " + "; ".join(missed))
    groups, cheat_margins = per_group(rows)
    print("per group (the spec's verification.tolerances):")
    for g, v in groups.items():
        print(
            f"  {g:<10} worst honest {v['worst_honest']:.2e} -> tolerance {v['tolerance']:g} "
            f"({v['honest_margin']:.0f}x above honest); nearest cheat in this group "
            f"{v['nearest_cheat']:.2e}"
        )
    for c in cheat_margins:
        print(
            f"  {c['start']:<10} {c['cheat']:<27} caught by {c['caught_by']} at "
            f"{c['margin']:.0f}x its tolerance"
        )
    print(
        json.dumps(
            {
                "bench": "determinism",
                "device": torch.cuda.get_device_name() if cuda else "cpu",
                "cuda_error": cuda_error,
                "torch": torch.__version__,
                "model": spec.model.model_dump(),
                "segment_steps": spec.training.segment_steps,
                "precision": spec.training.precision,
                "rows": [
                    {"start": w, "comparison": label, "bits_equal": same, **d}
                    for w, label, same, d in rows
                ],
                "worst_honest": worst,
                "nearest_cheat": nearest,
                "recommended_tolerance": tol,
                "honest_margin": honest_margin,
                "cheat_margin": cheat_margin,
                "nearest_caught_cheat": nearest_caught,
                "cheats_not_caught": missed,
                "warmup_steps": spec.training.warmup_steps,
                "groups": groups,
                "cheat_margins": cheat_margins,
                "seconds": round(time.perf_counter() - began, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
