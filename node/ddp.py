"""Training one slot with several processes or GPUs (``opentrain node run --nproc N``).

The daemon alone talks to the chain and the content store; the training runs in N worker
processes started by torchrun (``torch.distributed.run --standalone``, loopback only):
DistributedDataParallel over gloo on the CPU or nccl with one GPU per process. Workers get
everything through files in the slot folder ``job-J/round-R/slot-S/``:

- ``spec.json``: the job spec (canonical JSON);
- ``ckpt-i.safetensors``: the checkpoints; the daemon writes checkpoint 0 (G_r, fresh
  optimizer) before starting them, and rank 0 writes every later one atomically;
- corpus data (gpt jobs): its blobs, exported from the content store into ``job-J/data/``.

Every rank starts from the last checkpoint on disk, so a killed run resumes like the
single-process trainer. Each segment is ``opentrain.training.train_segment`` (the one segment
function): each rank trains on its share of every batch, so the result agrees with one
process up to float rounding, which tolerance-mode verification accepts. The daemon publishes
each checkpoint while the next segment trains, then builds the manifest and submits.

Worker processes die with their parent (Linux ``PR_SET_PDEATHSIG``), so ``kill -9`` of the
daemon cannot leave a second writer behind to race the restarted one.

Entry points (used by :func:`train_slot_ddp`, not meant to be typed by hand)::

    python -m node.ddp agent --parent PID --nproc N --folder F --round R --slot S [--data D]
    python -m node.ddp worker --folder F --round R --slot S [--data D]   # one rank, torchrun
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentrain.content.errors import ContentError
from opentrain.content.store import ContentReader, write_atomically
from opentrain.spec import CorpusDataSpec, JobSpec, canonical_json
from opentrain.training.corpus import MAX_MANIFEST_BYTES, CorpusManifest

__all__ = ["DDPError", "FileBlobs", "export_job_data", "train_slot_ddp"]

SPEC_FILE = "spec.json"
LOG_FILE = "ddp.log"
RANKS_DIR = "ddp"
_POLL_SECONDS = 0.05
_PR_SET_PDEATHSIG = 1


class DDPError(RuntimeError):
    """The worker processes failed; the message is one line."""


def checkpoint_path(folder: Path, index: int) -> Path:
    return folder / f"ckpt-{index}.safetensors"


# -- the job's data, handed over as files ---------------------------------------------------


class FileBlobs:
    """Blobs exported by :func:`export_job_data`, read by CID and checked by sha256: the
    workers' stand-in for the content store (they never open the store themselves)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put_bytes(self, data: bytes) -> str:
        raise ContentError("exported job data is read-only")

    def get_bytes(self, cid: str, expected_sha256: bytes | None = None) -> bytes:
        if not cid.isalnum():
            raise ContentError(f"not a CID: {cid!r}")
        try:
            data = (self.root / cid).read_bytes()
        except OSError as exc:
            raise ContentError(f"{cid} was not exported to {self.root}: {exc.strerror}") from None
        if expected_sha256 is not None and hashlib.sha256(data).digest() != expected_sha256:
            raise ContentError(f"{cid}: exported bytes do not match the expected sha256")
        return data


def export_job_data(spec: JobSpec, store: ContentReader, into: Path) -> Path | None:
    """Copy the job's corpus (manifest and every blob, each checked) from ``store`` into
    ``into``; None for synthetic data, which workers generate from the spec."""
    data = spec.data
    if not isinstance(data, CorpusDataSpec):
        return None
    into.mkdir(parents=True, exist_ok=True)

    def copy(cid: str, sha256: bytes) -> bytes:
        path = into / cid
        if path.exists():
            return path.read_bytes()
        blob = store.get_bytes(cid, expected_sha256=sha256)
        write_atomically(path, [blob], durable=True)
        return blob

    raw = copy(data.manifest_cid, bytes.fromhex(data.manifest_sha256))
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ContentError(f"corpus manifest is {len(raw)} bytes, over {MAX_MANIFEST_BYTES}")
    manifest = CorpusManifest.from_json(raw)
    for ref in (*manifest.shards, manifest.validation):
        copy(ref.cid, bytes.fromhex(ref.sha256))
    return into


# -- the daemon's side ----------------------------------------------------------------------


def _slot_args(folder: Path, round_: int, slot: int, data: Path | None) -> list[str]:
    args = ["--folder", str(folder), "--round", str(round_), "--slot", str(slot)]
    return [*args, "--data", str(data)] if data is not None else args


def _worker_errors(folder: Path) -> str:
    """The distinct errors the ranks wrote, as ``rank R: Type: message`` ("" if none)."""
    errors: dict[str, str] = {}
    for path in sorted((folder / RANKS_DIR).glob("error-rank-*.txt")):
        rank, _, message = path.read_text().strip().partition(": ")
        errors.setdefault(message, rank)
    return "; ".join(f"{rank}: {message}" for message, rank in errors.items())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # torchrun's agent forwards the signal to its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def train_slot_ddp(
    spec: JobSpec,
    folder: Path,
    round_: int,
    slot: int,
    nproc: int,
    *,
    data_dir: Path | None,
    on_checkpoint: Callable[[bytes], None],
) -> None:
    """Train the slot in ``folder`` with ``nproc`` torchrun workers from its last checkpoint.

    ``ckpt-0`` must exist. ``on_checkpoint`` gets the bytes of every new checkpoint, in
    order, as soon as rank 0 has written it (while the next segment trains). Raises
    :class:`DDPError` if the workers fail or stop short."""
    total = spec.training.num_segments
    nxt = 0
    while checkpoint_path(folder, nxt).exists():
        nxt += 1
    if nxt == 0:
        raise DDPError(f"{folder} has no checkpoint 0")
    if nxt > total:
        return
    write_atomically(folder / SPEC_FILE, [canonical_json(spec)], durable=True)
    ranks = folder / RANKS_DIR
    ranks.mkdir(exist_ok=True)
    for stale in ranks.iterdir():
        stale.unlink()
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cmd = [
        sys.executable, "-m", "node.ddp", "agent", "--parent", str(os.getpid()),
        "--nproc", str(nproc), *_slot_args(folder, round_, slot, data_dir),
    ]  # fmt: skip
    with open(folder / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while nxt <= total:
                path = checkpoint_path(folder, nxt)
                if path.exists():  # written atomically by rank 0: complete when visible
                    on_checkpoint(path.read_bytes())
                    nxt += 1
                elif proc.poll() is not None and not path.exists():
                    break
                else:
                    time.sleep(_POLL_SECONDS)
            rc = proc.wait()
        finally:
            _stop(proc)
    if nxt <= total or rc != 0:
        why = _worker_errors(folder) or f"torchrun exited with code {rc}"
        raise DDPError(
            f"{nproc} training processes stopped at checkpoint {nxt - 1} of {total}: {why} "
            f"(log: {folder / LOG_FILE})"
        )


# -- the worker processes -------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Get SIGKILL when the parent process dies (Linux); exit now if it already has."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _agent(args: argparse.Namespace) -> None:
    """torchrun's elastic agent, in this process so that it dies with the daemon."""
    _die_with_parent(args.parent)
    from torch.distributed.run import main as torchrun

    data = Path(args.data) if args.data else None
    torchrun([
        "--standalone", "--nproc-per-node", str(args.nproc), "--max-restarts", "0",
        "-m", "node.ddp", "worker", *_slot_args(Path(args.folder), args.round, args.slot, data),
    ])  # fmt: skip


def _worker(args: argparse.Namespace) -> None:
    """One rank: join the group, resume from the last checkpoint, train the remaining
    segments; rank 0 writes each checkpoint. Leaves ``ddp/rank-R.json`` behind."""
    _die_with_parent(os.getppid())
    import torch
    import torch.distributed as dist

    from opentrain.spec import load_spec_file
    from opentrain.training.checkpoint import decode_checkpoint, encode_checkpoint, move_state
    from opentrain.training.data import data_source
    from opentrain.training.train import train_segment, world

    folder = Path(args.folder)
    rank = int(os.environ.get("RANK", "0"))
    try:
        cuda = torch.cuda.is_available()
        device = torch.device("cpu")
        if cuda:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend, device_id=device if cuda else None)
        rank, world_size = world()
        spec = load_spec_file(folder / SPEC_FILE)
        data = data_source(spec, FileBlobs(Path(args.data)) if args.data else None)
        start = 0
        while checkpoint_path(folder, start + 1).exists():
            start += 1
        blob = checkpoint_path(folder, start).read_bytes()
        state = move_state(decode_checkpoint(spec, blob, args.round, args.slot), device)
        dist.barrier()  # every rank holds the start before rank 0 writes the next one
        total = spec.training.num_segments
        for index in range(start + 1, total + 1):
            train_segment(spec, state, args.round, args.slot, data=data)
            if rank == 0:
                write_atomically(
                    checkpoint_path(folder, index),
                    [encode_checkpoint(state, args.round, args.slot)],
                    durable=True,
                )
        marker = {
            "rank": rank,
            "world_size": world_size,
            "backend": backend,
            "device": str(device),
            "pid": os.getpid(),
            "threads": torch.get_num_threads(),
            "first_checkpoint": start,
            "segments": total - start,
        }
        write_atomically(
            folder / RANKS_DIR / f"rank-{rank}.json", [json.dumps(marker).encode()], durable=True
        )
        dist.barrier()
        dist.destroy_process_group()
    except BaseException as exc:
        line = " ".join(f"rank {rank}: {type(exc).__name__}: {exc}".split())
        write_atomically(
            folder / RANKS_DIR / f"error-rank-{rank}.txt", [line.encode()], durable=True
        )
        raise


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m node.ddp", description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    for role in ("agent", "worker"):
        p = sub.add_parser(role)
        p.add_argument("--folder", required=True)
        p.add_argument("--round", type=int, required=True)
        p.add_argument("--slot", type=int, required=True)
        p.add_argument("--data", default=None)
        if role == "agent":
            p.add_argument("--parent", type=int, required=True)
            p.add_argument("--nproc", type=int, required=True)
    args = parser.parse_args(argv)
    (_agent if args.role == "agent" else _worker)(args)


if __name__ == "__main__":
    main()
