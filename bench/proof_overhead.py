"""Proof overhead on the node: one slot of the demo job trained with everything the protocol
adds (a canonical checkpoint after every segment, its sha256, an atomic fsync'd write to local
disk, the upload to the content store, the Merkle trace tree and the manifest) vs the plain
training loop (``train_slot_plain``), same model, data and bits, in one process.

Reported: the proof work measured inside the proof run as a share of its training time (the
figure the target is about: <= 2 % at the demo's segment length), the same without the store
upload (the node overlaps uploads with training in a background thread), and the plain
wall-clock difference between the two runs (noisy on a shared machine). Each run is done
three times, alternating, and the fastest of each is kept.

Run: python bench/proof_overhead.py [--segment-steps C]
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.manifest import CheckpointRef, TraceManifest
from opentrain.protocol.presets import default_demo_spec
from opentrain.spec import JobSpec, spec_digest
from opentrain.training.checkpoint import digest, encode_checkpoint, fresh_state, state_params
from opentrain.training.corpus import publish_corpus
from opentrain.training.data import DataSource, data_source
from opentrain.training.models import build_model, model_params
from opentrain.training.train import train_segment, train_slot_plain

ROUND, SLOT = 0, 1
PARTS = ("encode", "sha256", "disk", "upload", "merkle+manifest")


def write_atomic(path: Path, data: bytes) -> None:
    """As the node writes a checkpoint: temp file, fsync, rename."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def plain_run(spec: JobSpec, data: DataSource) -> float:
    g0 = model_params(build_model(spec.model))
    began = time.perf_counter()
    train_slot_plain(spec, g0, ROUND, SLOT, data=data)
    return time.perf_counter() - began


def proof_run(
    spec: JobSpec, data: DataSource, store: EmbeddedStore, folder: Path
) -> tuple[float, float, dict[str, float], bytes]:
    """Returns (wall seconds, training seconds, seconds per proof part, trace root)."""
    parts = dict.fromkeys(PARTS, 0.0)
    train = 0.0
    began = time.perf_counter()
    state = fresh_state(spec, model_params(build_model(spec.model)))
    refs: list[CheckpointRef] = []
    for index in range(spec.training.num_segments + 1):
        if index:
            t0 = time.perf_counter()
            train_segment(spec, state, ROUND, SLOT, data=data)
            train += time.perf_counter() - t0
        t0 = time.perf_counter()
        blob = encode_checkpoint(state, ROUND, SLOT)
        t1 = time.perf_counter()
        sha = digest(blob)
        t2 = time.perf_counter()
        write_atomic(folder / f"ckpt-{index}.safetensors", blob)
        t3 = time.perf_counter()
        cid = store.put_bytes(blob)
        t4 = time.perf_counter()
        refs.append(CheckpointRef(index, cid, sha))
        for name, dt in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=False):
            parts[name] += dt
    t0 = time.perf_counter()
    manifest = TraceManifest(0, ROUND, SLOT, spec_digest(spec), tuple(refs), os.urandom(32))
    root = manifest.trace_root
    store.put_bytes(manifest.to_json())
    parts["merkle+manifest"] += time.perf_counter() - t0
    _ = state_params(state)
    return time.perf_counter() - began, train, parts, root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--segment-steps", type=int, default=None, help="segment length c (default: the demo job's)"
    )
    args = parser.parse_args()
    spec = default_demo_spec()
    if args.segment_steps:
        spec = spec.model_copy(
            update={
                "training": spec.training.model_copy(update={"segment_steps": args.segment_steps})
            }
        )
    tmp = Path(tempfile.mkdtemp(prefix="opentrain-overhead-"))
    store = EmbeddedStore(tmp / "store")
    publish_corpus(store)
    data = data_source(spec, store)
    train_segment(
        spec,
        fresh_state(spec, model_params(build_model(spec.model))),
        ROUND,
        SLOT,
        steps=2,
        data=data,
    )  # warm-up: allocator, thread pool

    plains, proofs = [], []
    for rep in range(3):
        plains.append(plain_run(spec, data))
        folder = tmp / f"node-{rep}"
        folder.mkdir()
        proofs.append(proof_run(spec, data, store, folder))
    plain = min(plains)
    wall, train, parts, _ = min(proofs, key=lambda p: p[0])
    proof_total = sum(parts.values())
    accounted = proof_total / train
    critical = (proof_total - parts["upload"]) / train
    wall_diff = wall / plain - 1.0
    ckpt_bytes = len(
        encode_checkpoint(fresh_state(spec, model_params(build_model(spec.model))), ROUND, SLOT)
    )

    tr = spec.training
    print(
        f"demo model {spec.model}, batch {tr.batch_size}, H={tr.inner_steps}, "
        f"segment c={tr.segment_steps} ({tr.num_segments + 1} checkpoints of "
        f"{ckpt_bytes / 1e6:.2f} MB)"
    )
    print(f"{'part':<18} {'seconds':>8} {'% of training':>14}")
    print(f"{'training':<18} {train:>8.3f} {100.0:>13.2f}%")
    for name, dt in parts.items():
        print(f"{name:<18} {dt:>8.3f} {100 * dt / train:>13.2f}%")
    print(
        f"proof overhead: {100 * accounted:.2f} % of training time "
        f"({100 * critical:.2f} % without the upload the node overlaps); wall clock: "
        f"plain {plain:.2f} s, with proofs {wall:.2f} s ({100 * wall_diff:+.2f} %); "
        f"target <= 2 %: {'met' if accounted <= 0.02 else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "bench": "proof_overhead",
                "model": spec.model.model_dump(),
                "segment_steps": tr.segment_steps,
                "inner_steps": tr.inner_steps,
                "checkpoint_bytes": ckpt_bytes,
                "training_seconds": train,
                "parts_seconds": parts,
                "overhead": accounted,
                "overhead_without_upload": critical,
                "plain_seconds": plain,
                "proof_seconds": wall,
                "wall_clock_overhead": wall_diff,
                "target_met": accounted <= 0.02,
            }
        )
    )


if __name__ == "__main__":
    main()
