"""How each proof cost grows with the model: the gpt at about 0.1M, 1M, 10M and 50M parameters.

Same job shape at every size (the demo's H = 400 inner steps in segments of c = 8 and k = 2
samples; batch 8 x 64 tokens, an eighth of the demo's 32 x 128 so that 50M-parameter steps
run on a CPU; AdamW, fp32); only depth and width change. Training work per segment grows as
parameters x tokens per step x c while the proof work grows as parameters alone, so the
proof overhead shown is about 8x what the demo's batch would give at the same size.

Per size, measured in a fresh subprocess (so peak resident memory is that size's alone) on ONE
thread. Every part is timed on both clocks: "CPU s/step" is process CPU time (a busy, shared
machine gives the same figure as an idle core); the shares (proof overhead, verifier) are wall
over wall, the same clock on both sides, since writes and uploads wait on I/O that CPU time
does not see (the JSON also has the CPU-over-CPU shares, a lower bound):

- CPU seconds per step: a few real inner steps after one warm-up step (at 50M on a small CPU only
  two: per-step figures are extrapolated to the slot, never a slot actually trained);
- checkpoint bytes: the canonical encoding of parameters + both AdamW moments + step;
- bytes a node publishes per slot, *before* on-demand availability (the manifest and all
  H/c + 1 checkpoints, what the node uploads today) and *after* it (manifest, output,
  pseudo-gradient, then what ``node.reveal`` publishes once the seed is known: checkpoint 0
  and the start and end of each sampled segment, at most 2k + 1 checkpoints, fewer when
  sampled segments share one or end at the output), and their ratio. Real encoded sizes: the
  manifest is a real 51-entry manifest, the pseudo-gradient the job's real encoding (float32);
- proof overhead, % of training: the node's serial work per segment (encode, sha256, atomic
  fsync'd write, and today also the upload to the embedded content store) over one segment's
  training time. The node overlaps it with the next segment in a background thread, so this is
  an upper bound on the wall-clock cost. "after": no per-segment upload; the 2k + 1 reveals
  and the pseudo-gradient upload are spread over the slot;
- verifier share, % of training: k x (fetch and sha256 of two checkpoints + the real
  ``check_segment`` overhead: decode both, re-encode, compare in tolerance mode + c steps)
  over the node's H steps. The verifier's subprocess runs ``check_segment`` on a one-step
  segment (the node's checkpoints at steps t and t + 1) and adds c - 1 steps at the node's
  per-step time;
- peak resident memory (ru_maxrss) of the node subprocess (model, gradients, AdamW state,
  the checkpoint's bytes, its upload) and of the verifier subprocess (both checkpoints' bytes,
  the decoded start state and claimed state, the re-encoded result).

Run: python bench/scaling.py [--quick] [--sizes 0.1M,1M]
Prints a table and one JSON line; writes bench/out/scaling.png (log-log) and scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.aggregation import encode_pseudo_gradient, pseudo_gradient
from opentrain.protocol.manifest import CheckpointRef, TraceManifest
from opentrain.protocol.presets import DEMO_TOLERANCE, default_demo_spec
from opentrain.protocol.segment import check_segment
from opentrain.spec import GPTSpec, JobSpec, TrainingSpec, VerificationSpec, spec_digest
from opentrain.training.checkpoint import (
    digest,
    encode_checkpoint,
    fresh_state,
    state_params,
)
from opentrain.training.corpus import publish_corpus
from opentrain.training.data import data_source
from opentrain.training.models import build_model, model_params
from opentrain.training.train import train_segment

ROUND, SLOT = 0, 1
OUT = Path(__file__).resolve().parent / "out"
H, C, K = 400, 8, 2
BATCH, BLOCK = 8, 64

# name -> (n_layer, n_head, n_embd, timed steps)
SIZES: dict[str, tuple[int, int, int, int]] = {
    "0.1M": (2, 4, 56, 8),
    "1M": (4, 4, 136, 6),
    "10M": (8, 8, 320, 3),
    "50M": (12, 8, 576, 2),
}
QUICK_STEPS = 2


def job(name: str) -> JobSpec:
    n_layer, n_head, n_embd, _ = SIZES[name]
    return default_demo_spec(
        name=f"scaling-{name}",
        rounds=1,
        slots_per_round=2,
        model=GPTSpec(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=BLOCK),
        training=TrainingSpec(
            inner_steps=H,
            segment_steps=C,
            batch_size=BATCH,
            lr=3e-3,
            warmup_steps=10,
            outer_lr=0.7,
            outer_momentum=0.5,
        ),
        verification=VerificationSpec(mode="tolerance", tolerance=DEMO_TOLERANCE, samples=K),
    )


class Clock:
    """Accumulates both clocks: process CPU seconds and wall seconds."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0

    def __enter__(self) -> Clock:
        self._c, self._w = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu += time.process_time() - self._c
        self.wall += time.perf_counter() - self._w

    def both(self, name: str) -> dict[str, float]:
        return {f"{name}_cpu_s": self.cpu, f"{name}_wall_s": self.wall}


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def write_atomic(path: Path, data: bytes) -> None:
    """As the node writes a checkpoint: temp file, fsync, rename."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def node_child(name: str, tmp: Path, steps: int) -> dict[str, Any]:
    """Train a few steps, then do one segment's proof work; leave checkpoints t and t + 1."""
    spec = job(name)
    store = EmbeddedStore(tmp / "store")
    data = data_source(spec, store)
    g0 = model_params(build_model(spec.model))
    params = sum(t.numel() for t in g0.values())
    state = fresh_state(spec, g0)
    train_segment(spec, state, ROUND, SLOT, steps=1, data=data)  # warm-up: allocator, threads
    train, encode, sha, disk, upload = Clock(), Clock(), Clock(), Clock(), Clock()
    for i in range(steps):
        if i == steps - 1:
            write_atomic(tmp / "start.safetensors", encode_checkpoint(state, ROUND, SLOT))
            start_step = state.step
        with train:
            train_segment(spec, state, ROUND, SLOT, steps=1, data=data)
    with encode:
        blob = encode_checkpoint(state, ROUND, SLOT)
    with sha:
        sha256 = digest(blob)
    with disk:
        write_atomic(tmp / "end.safetensors", blob)
    with upload:
        cid = store.put_bytes(blob)
    n = spec.training.num_segments
    manifest = TraceManifest(
        0,
        ROUND,
        SLOT,
        spec_digest(spec),
        tuple(CheckpointRef(i, cid, sha256) for i in range(n + 1)),
        os.urandom(32),
    )
    delta = encode_pseudo_gradient(spec, pseudo_gradient(g0, state_params(state)))
    return {
        "params": params,
        "seconds_per_step": train.cpu / steps,
        "wall_seconds_per_step": train.wall / steps,
        "timed_steps": steps,
        "checkpoint_bytes": len(blob),
        "manifest_bytes": len(manifest.to_json()),
        "pseudo_gradient_bytes": len(delta),
        **encode.both("encode"),
        **sha.both("sha256"),
        **disk.both("disk"),
        **upload.both("upload"),
        "start_step": start_step,
        "node_peak_rss": peak_rss_bytes(),
        "threads": torch.get_num_threads(),
    }


def verifier_child(name: str, tmp: Path, start_step: int) -> dict[str, Any]:
    """Fetch (read + sha256) two checkpoints and run the real check on a one-step segment."""
    base = job(name)
    spec = base.model_copy(
        update={"training": base.training.model_copy(update={"segment_steps": 1})}
    )
    store = EmbeddedStore(tmp / "store")
    data = data_source(spec, store)
    # warm-up, as a running verifier is: the job's data loaded, torch's autograd and AdamW
    # machinery initialized (on a throwaway tiny model, not this size's)
    tiny = spec.model_copy(
        update={"model": GPTSpec(n_layer=1, n_head=1, n_embd=8, block_size=BLOCK)}
    )
    state = fresh_state(tiny, model_params(build_model(tiny.model)))
    train_segment(tiny, state, ROUND, SLOT, steps=1, data=data)
    del state
    fetch, check = Clock(), Clock()
    with fetch:
        start = (tmp / "start.safetensors").read_bytes()
        end = (tmp / "end.safetensors").read_bytes()
        digest(start), digest(end)
    with check:
        result = check_segment(spec, start, end, start_step, ROUND, SLOT, data=data)
    return {
        **fetch.both("fetch"),
        **check.both("check_one_step"),
        "check_passed": result.passed,
        "check_reason": result.reason,
        "verifier_peak_rss": peak_rss_bytes(),
    }


def child(argv: list[str]) -> dict[str, Any]:
    run_as, name, tmp, arg = argv[0], argv[1], Path(argv[2]), int(argv[3])
    return node_child(name, tmp, arg) if run_as == "node" else verifier_child(name, tmp, arg)


def spawn(*args: str) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:2]} failed: {proc.stderr.strip().splitlines()[-3:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(name: str, root: Path, quick: bool) -> dict[str, Any]:
    tmp = root / name
    tmp.mkdir()
    (tmp / "store").symlink_to(root / "store", target_is_directory=True)
    steps = QUICK_STEPS if quick else SIZES[name][3]
    began = time.perf_counter()
    node = spawn("node", name, str(tmp), str(steps))
    ver = spawn("verifier", name, str(tmp), str(node["start_step"]))
    for f in ("start.safetensors", "end.safetensors"):
        (tmp / f).unlink()
    return {
        "size": name,
        **node,
        **ver,
        **derived(node),
        "bench_seconds": time.perf_counter() - began,
    }


# Checkpoints revealed on demand, at most: checkpoint 0 and the start and end of each sampled
# segment (node.reveal.revealed_indices)
REVEALED = 2 * K + 1


def derived(m: dict[str, Any]) -> dict[str, Any]:
    """The published bytes and the shares, from the measured figures of one size (also
    recomputed from a saved JSON by ``--rederive``)."""
    ckpt, n = m["checkpoint_bytes"], H // C
    before = m["manifest_bytes"] + (n + 1) * ckpt
    # on demand: the manifest, the output and its pseudo-gradient at submission, then the
    # revealed checkpoints once the seed is known
    after = m["manifest_bytes"] + ckpt + m["pseudo_gradient_bytes"] + REVEALED * ckpt
    shares = {}
    for clock in ("wall", "cpu"):
        sps = m["wall_seconds_per_step" if clock == "wall" else "seconds_per_step"]
        part = {p: m[f"{p}_{clock}_s"] for p in ("encode", "sha256", "disk", "upload")}
        local = part["encode"] + part["sha256"] + part["disk"]
        uploads = ((REVEALED + 1) * ckpt + m["pseudo_gradient_bytes"]) * part["upload"] / ckpt
        # check_segment on one step = its overhead + one step; a real sample runs c steps
        sample = m[f"fetch_{clock}_s"] + m[f"check_one_step_{clock}_s"] + (C - 1) * sps
        shares[clock] = {
            "proof_overhead_before": (local + part["upload"]) / (C * sps),
            "proof_overhead_after": local / (C * sps) + uploads / (H * sps),
            "verifier_share": K * sample / (H * sps),
        }
    return {
        "published_before_bytes": before,
        "published_after_bytes": after,
        "published_ratio": before / after,
        **shares["wall"],  # same clock on both sides of each ratio
        "cpu_clock": shares["cpu"],  # a lower bound: misses fsync and I/O waits
        # what SlotTrainer held in memory on top of this working set before issue 16 (every
        # checkpoint's bytes until the manifest); now only those queued for the upload thread
        "worker_held_checkpoint_bytes": (n + 1) * ckpt,
        "reexecution_share": K * C / H,
    }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["params"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for key, label in (
        ("checkpoint_bytes", "checkpoint"),
        ("published_before_bytes", "published per slot, all checkpoints"),
        ("published_after_bytes", "published per slot, on demand"),
        ("node_peak_rss", "node peak RSS"),
        ("verifier_peak_rss", "verifier peak RSS"),
    ):
        left.plot(x, [r[key] for r in rows], marker="o", label=label)
    left.set(xscale="log", yscale="log", xlabel="parameters", ylabel="bytes")
    left.set_title(f"bytes (H={H}, c={C}, k={K})")
    left.legend(fontsize=8)
    right.plot(x, [r["seconds_per_step"] for r in rows], marker="o", label="CPU seconds per step")
    for key, label in (
        ("proof_overhead_before", "proof overhead, now (fraction of training)"),
        ("proof_overhead_after", "proof overhead, on demand"),
        ("verifier_share", "verifier share (fraction of training)"),
    ):
        right.plot(x, [r[key] for r in rows], marker="o", label=label)
    right.set(xscale="log", yscale="log", xlabel="parameters")
    right.set_title("time")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| params | CPU s/step | checkpoint | published/slot now | on demand | ratio "
        "| proof now | proof on demand | verifier | node RSS | verifier RSS |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['params'] / 1e6:.2f}M | {r['seconds_per_step']:.3g} "
            f"| {_bytes(r['checkpoint_bytes'])} | {_bytes(r['published_before_bytes'])} "
            f"| {_bytes(r['published_after_bytes'])} | {r['published_ratio']:.1f}x "
            f"| {100 * r['proof_overhead_before']:.1f} % | {100 * r['proof_overhead_after']:.1f} % "
            f"| {100 * r['verifier_share']:.1f} % | {r['node_peak_rss'] / 2**20:.0f} MiB "
            f"| {r['verifier_peak_rss'] / 2**20:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} timed steps each")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, e.g. 0.1M,1M")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument(
        "--rederive",
        action="store_true",
        help="recompute published bytes and shares from bench/out/scaling.json (no training)",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    if args.rederive:
        doc = json.loads((OUT / "scaling.json").read_text())
        doc["rows"] = [{**r, **derived(r)} for r in doc["rows"]]
        print(table(doc["rows"]))
        plot(doc["rows"], OUT / "scaling.png")
        (OUT / "scaling.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(json.dumps(doc))
        return
    began = time.perf_counter()
    names = [s for s in args.sizes.split(",") if s]
    if unknown := [s for s in names if s not in SIZES]:
        parser.error(f"unknown sizes {unknown}; choose from {list(SIZES)}")
    root = Path(tempfile.mkdtemp(prefix="opentrain-scaling-"))
    publish_corpus(EmbeddedStore(root / "store"))
    rows = []
    for name in names:
        rows.append(measure(name, root, args.quick))
        r = rows[-1]
        print(
            f"{name}: {r['params']:,} params, {r['seconds_per_step']:.3g} s/step over "
            f"{r['timed_steps']} steps, check {'passed' if r['check_passed'] else 'FAILED'} "
            f"({r['bench_seconds']:.0f} s)",
            flush=True,
        )
    print(
        f"job shape: H={H}, c={C}, k={K}, batch {BATCH} x {BLOCK} tokens, fp32, "
        f"{rows[0]['threads']} thread (CPU seconds); {H // C + 1} checkpoints per slot"
    )
    print(table(rows))
    OUT.mkdir(exist_ok=True)
    plot(rows, OUT / "scaling.png")
    doc = {
        "bench": "scaling",
        "torch": torch.__version__,
        "job": {"inner_steps": H, "segment_steps": C, "samples": K, "batch": BATCH, "block": BLOCK},
        "rows": rows,
        "seconds": round(time.perf_counter() - began, 1),
    }
    (OUT / "scaling.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
