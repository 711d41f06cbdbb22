"""The node's work on one slot: train H steps in segments of c from G_r, write every segment's
checkpoint atomically to local disk, commit to all of them in a Merkle trace, publish the
manifest and submit the contribution on-chain.

What is published at submission depends on the job. With a reveal window (availability on
demand) only the output checkpoint, its update and the manifest (every checkpoint's CID and
digest, computed locally) go to the content store; the sampled checkpoints follow once the seed
is known (``node.reveal``). Without one, every checkpoint is published as it is written.

A restart finds the checkpoints already on disk and continues from the last one, so a killed
node loses at most one segment and ends with the same output digest.

Every checkpoint is bound to this node's work (``protocol.binding``: its address, the job id,
the spec digest): checkpoint 0 is G_r with fresh optimizer state and that binding, and each
later one inherits it from the state it was trained from, in this process or the DDP workers.

With ``nproc > 1`` the segments are trained by that many torchrun workers (``node.ddp``) from
the same folder; this process still publishes, commits and submits.

The trace root is sealed (``protocol.commitments``) with 32 random bytes kept in the slot
folder, so a resumed slot submits the same root; a canary's seal commits to its faults instead
(``node.canary``), and the two look alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from node.ddp import DDPError, export_job_data, train_slot_ddp
from node.retention import checkpoint_path as _ckpt
from node.retention import slot_folder
from opentrain.chain.account import ChainAccount
from opentrain.content.builder import compute_cid
from opentrain.content.store import ContentStore, write_atomically
from opentrain.protocol.binding import Binding, binding_for
from opentrain.protocol.codecs import has_residual, slot_update
from opentrain.protocol.jobs import LoadedJob, load_global_model, load_job
from opentrain.protocol.manifest import CheckpointRef, ContentRef, TraceManifest
from opentrain.protocol.updates import residual_in
from opentrain.spec import JobSpec
from opentrain.training.checkpoint import (
    CheckpointError,
    TrainState,
    decode_checkpoint,
    decode_params,
    digest,
    encode_checkpoint,
    fresh_state,
    state_params,
)
from opentrain.training.train import split_error, train_segment

Tensors = dict[str, torch.Tensor]
SegmentFn = Callable[[JobSpec, TrainState, int, int], TrainState]
SealFn = Callable[[LoadedJob, int, int], bytes]
ProgressFn = Callable[[int, int], None]

SEAL_FILE = "seal"


def random_seal(job: LoadedJob, round_: int, slot: int) -> bytes:
    """An honest node's seal: 32 random bytes, which nobody can tell from a canary's."""
    return os.urandom(32)


@dataclass(frozen=True)
class SlotResult:
    """What a trained slot commits to."""

    output_digest: bytes
    output_cid: str
    trace_root: bytes
    manifest_cid: str
    manifest: TraceManifest


def honest_segment(spec: JobSpec, state: TrainState, round_: int, slot: int) -> TrainState:
    return train_segment(spec, state, round_, slot)


@dataclass
class SlotTimings:
    """Counters a daemon exports as metrics."""

    segments: int = 0


class SlotTrainer:
    """Trains one slot with checkpoints under ``workdir`` and publishes them to ``store``.

    ``nproc`` > 1 trains in that many processes (DDP under torchrun, ``node.ddp``); their
    output agrees with one process up to float rounding, for jobs in tolerance mode."""

    def __init__(self, store: ContentStore, workdir: Path, nproc: int = 1) -> None:
        if nproc < 1:
            raise ValueError(f"nproc must be at least 1, not {nproc}")
        self.store = store
        self.workdir = workdir
        self.nproc = nproc
        self.timings = SlotTimings()

    def refusal(self, spec: JobSpec) -> str:
        """Why this trainer must not take the job ("" if it may): with several processes the
        batches must split evenly, and the job must be verified in tolerance mode (their
        bits differ from one process's, which exact mode would reject)."""
        if self.nproc == 1:
            return ""
        why = split_error(spec.training, self.nproc)
        if not why and spec.verification.mode != "tolerance":
            why = f"job is verified in {spec.verification.mode} mode, not tolerance mode"
        return f"--nproc {self.nproc}: {why}" if why else ""

    def _slot_dir(self, job_id: int, round_: int, slot: int) -> Path:
        path = slot_folder(self.workdir, job_id, round_, slot)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def train(
        self,
        job: LoadedJob,
        global_model: bytes,
        round_: int,
        slot: int,
        segment_fn: SegmentFn = honest_segment,
        progress: ProgressFn | None = None,
        residual: Tensors | None = None,
        *,
        claimant: str,
        seal_fn: SealFn = random_seal,
    ) -> SlotResult:
        """Train (or resume) the slot as ``claimant``'s work, commit to every checkpoint (each
        published as it is written, or only its CID when the job reveals on demand) and publish
        the manifest.

        Under a codec with error feedback, ``residual`` is the one the slot starts from
        (``opentrain.protocol.updates.residual_in``); the update and new residual computed from
        the output are published too and named in the manifest.

        Each checkpoint is on local disk (atomically) before it counts; writing it, hashing it
        and publishing it to the content store run in one background thread, in order, while
        the next segment trains. A crash mid-write leaves only a temp file behind, so a resume
        finds the checkpoints before it and retrains that one segment. Only the checkpoint
        being trained from and those still queued for the background thread are in memory (a
        slot's checkpoints together are (H/c + 1) x 12 bytes per parameter)."""
        spec = job.spec
        if why := self.refusal(spec):
            raise ValueError(why)
        if self.nproc > 1 and segment_fn is not honest_segment:
            raise ValueError("a custom segment function runs in one process only (nproc 1)")
        if has_residual(spec) and residual is None:
            raise ValueError("this job's codec has error feedback: pass the slot's residual")
        folder = self._slot_dir(job.job_id, round_, slot)
        binding = binding_for(job, claimant)
        count = self._resume(spec, folder, global_model, round_, slot, binding)
        seal = self._seal(folder, lambda: seal_fn(job, round_, slot))
        if self.nproc > 1:
            return self._train_ddp(
                job, folder, count, round_, slot, progress, global_model, residual, seal
            )
        last = _ckpt(folder, count - 1).read_bytes()
        state = decode_checkpoint(spec, last, round=round_, slot=slot, binding=binding)
        del last
        total = spec.training.num_segments

        def persist(index: int, data: bytes) -> tuple[str, bytes]:
            write_atomically(_ckpt(folder, index), [data], durable=True)
            return self._commit(spec, index, data)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="persist") as background:
            done = [background.submit(self._commit_saved, spec, folder, i) for i in range(count)]
            while count <= total:
                state = segment_fn(spec, state, round_, slot)
                done.append(
                    background.submit(persist, count, encode_checkpoint(state, round_, slot))
                )
                count += 1
                self.timings.segments += 1
                if progress:
                    progress(count - 1, total)
            published = [d.result() for d in done]
        extra = self._publish_update(job, global_model, _ckpt(folder, total), residual)
        return self._publish(job, published, round_, slot, seal, extra)

    @staticmethod
    def _seal(folder: Path, make: Callable[[], bytes]) -> bytes:
        """The slot's seal: the one kept in its folder (a resume submits the same root), else
        a new one from ``make``, kept before any of it is used."""
        path = folder / SEAL_FILE
        if path.exists() and len(kept := path.read_bytes()) == 32:
            return kept
        seal = make()
        if len(seal) != 32:
            raise ValueError("a trace seal is 32 bytes")
        write_atomically(path, [seal], durable=True)
        return seal

    def _publish_update(
        self, job: LoadedJob, global_model: bytes, output: Path, residual: Tensors | None
    ) -> dict[str, ContentRef]:
        """Under error feedback: publish the update and new residual the output implies; their
        refs go into the manifest (nothing otherwise)."""
        if residual is None or not has_residual(job.spec):
            return {}
        spec = job.spec
        update, new_residual = slot_update(
            spec,
            decode_params(spec, global_model),
            state_params(decode_checkpoint(spec, output.read_bytes())),
            residual,
        )
        return {
            "update": ContentRef(self.store.put_bytes(update), digest(update)),
            "residual": ContentRef(self.store.put_bytes(new_residual), digest(new_residual)),
        }

    def _commit(self, spec: JobSpec, index: int, data: bytes) -> tuple[str, bytes]:
        """(CID, sha256) of checkpoint ``index``: published now when the job reveals nothing
        or it is the output, else only its CID is computed (published if sampled)."""
        if spec.verification.reveal_window == 0 or index == spec.training.num_segments:
            return self.store.put_bytes(data), digest(data)
        return compute_cid(data), digest(data)

    def _commit_saved(self, spec: JobSpec, folder: Path, index: int) -> tuple[str, bytes]:
        """``_commit`` of a checkpoint already on disk, read in the background thread."""
        return self._commit(spec, index, _ckpt(folder, index).read_bytes())

    def _train_ddp(
        self,
        job: LoadedJob,
        folder: Path,
        count: int,
        round_: int,
        slot: int,
        progress: ProgressFn | None,
        global_model: bytes,
        residual: Tensors | None,
        seal: bytes,
    ) -> SlotResult:
        """The remaining segments in ``nproc`` worker processes; each checkpoint they write is
        published here while they train the next."""
        spec = job.spec
        total = spec.training.num_segments
        data_dir = export_job_data(spec, self.store, self.workdir / f"job-{job.job_id}" / "data")
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish") as uploads:
            done = [uploads.submit(self._commit_saved, spec, folder, i) for i in range(count)]

            def publish(data: bytes) -> None:
                done.append(uploads.submit(self._commit, spec, len(done), data))
                self.timings.segments += 1
                if progress:
                    progress(len(done) - 1, total)

            train_slot_ddp(
                spec, folder, round_, slot, self.nproc, data_dir=data_dir, on_checkpoint=publish
            )
            published = [d.result() for d in done]
        if len(published) != total + 1:
            raise DDPError(f"{folder} holds {len(published)} checkpoints, expected {total + 1}")
        extra = self._publish_update(job, global_model, _ckpt(folder, total), residual)
        return self._publish(job, published, round_, slot, seal, extra)

    def _resume(
        self,
        spec: JobSpec,
        folder: Path,
        global_model: bytes,
        round_: int,
        slot: int,
        binding: Binding,
    ) -> int:
        """How many checkpoints are already on disk, in order; checkpoint 0 created from G_r
        (bound to ``binding``) if absent. Checkpoints on disk bound to anyone else (an older
        claim of this slot by another account sharing the folder) are discarded, not resumed,
        and so is that claim's seal."""
        first = _ckpt(folder, 0)
        if first.exists():
            try:
                decode_checkpoint(spec, first.read_bytes(), round_, slot, binding=binding)
            except CheckpointError:
                for stale in folder.glob("ckpt-*.safetensors"):
                    stale.unlink()
                (folder / SEAL_FILE).unlink(missing_ok=True)
        if not first.exists():
            state = fresh_state(spec, decode_params(spec, global_model), binding)
            write_atomically(first, [encode_checkpoint(state, round_, slot)], durable=True)
        count = 0
        while count <= spec.training.num_segments and _ckpt(folder, count).exists():
            count += 1
        return count

    def _publish(
        self,
        job: LoadedJob,
        published: list[tuple[str, bytes]],
        round_: int,
        slot: int,
        seal: bytes,
        extra: dict[str, ContentRef] | None = None,
    ) -> SlotResult:
        """Manifest of (CID, sha256) per checkpoint, in order, and the seal, published; the
        slot's result."""
        refs = tuple(
            CheckpointRef(index=i, cid=cid, sha256=sha) for i, (cid, sha) in enumerate(published)
        )
        manifest = TraceManifest(
            job_id=job.job_id,
            round=round_,
            slot=slot,
            spec_digest=job.info.params.spec_digest,
            checkpoints=refs,
            seal=seal,
            update=(extra or {}).get("update"),
            residual=(extra or {}).get("residual"),
        )
        manifest_cid = self.store.put_bytes(manifest.to_json())
        return SlotResult(
            output_digest=refs[-1].sha256,
            output_cid=refs[-1].cid,
            trace_root=manifest.trace_root,
            manifest_cid=manifest_cid,
            manifest=manifest,
        )


class NodeWorker:
    """A node's account, store and disk: claims a slot, trains it, submits it."""

    def __init__(
        self, account: ChainAccount, store: ContentStore, workdir: Path, nproc: int = 1
    ) -> None:
        self.account = account
        self.store = store
        self.trainer = SlotTrainer(store, workdir, nproc)

    def starting_residual(self, job: LoadedJob, round_: int, slot: int) -> Tensors | None:
        """The residual the slot starts from under error feedback (else None)."""
        if not has_residual(job.spec):
            return None
        return residual_in(self.account.chain, self.store, job, round_, slot)

    def work_slot(
        self,
        job_id: int,
        round_: int,
        slot: int,
        segment_fn: SegmentFn = honest_segment,
        progress: ProgressFn | None = None,
        seal_fn: SealFn = random_seal,
    ) -> int:
        """Claim, train, publish and submit one slot; returns the contribution id."""
        chain = self.account.chain
        job = load_job(chain, self.store, job_id)
        if why := self.trainer.refusal(job.spec):
            raise ValueError(why)
        global_model, _ = load_global_model(chain, self.store, job, round_)
        residual = self.starting_residual(job, round_, slot)
        self.account.claim_slot(job_id, round_, slot)
        result = self.trainer.train(
            job,
            global_model,
            round_,
            slot,
            segment_fn,
            progress,
            residual=residual,
            claimant=self.account.address,
            seal_fn=seal_fn,
        )
        return self.account.submit_contribution(
            job_id,
            round_,
            slot,
            result.output_digest,
            result.trace_root,
            result.output_cid,
            result.manifest_cid,
        )
