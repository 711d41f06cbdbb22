"""The node's work on one slot: train H steps in segments of c from G_r, write every segment's
checkpoint atomically to local disk, publish it to the content store, commit to all of them in a
Merkle trace, publish the manifest and submit the contribution on-chain.

A restart finds the checkpoints already on disk and continues from the last one, so a killed
node loses at most one segment and ends with the same output digest.

Every checkpoint is bound to this node's work (``protocol.binding``: its address, the job id,
the spec digest): checkpoint 0 is G_r with fresh optimizer state and that binding, and each
later one inherits it from the state it was trained from, in this process or the DDP workers.

With ``nproc > 1`` the segments are trained by that many torchrun workers (``node.ddp``) from
the same folder; this process still publishes, commits and submits.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from node.ddp import DDPError, export_job_data, train_slot_ddp
from opentrain.chain.account import ChainAccount
from opentrain.content.store import ContentStore, write_atomically
from opentrain.protocol.binding import Binding, binding_for
from opentrain.protocol.jobs import LoadedJob, load_global_model, load_job
from opentrain.protocol.manifest import CheckpointRef, TraceManifest
from opentrain.spec import JobSpec
from opentrain.training.checkpoint import (
    CheckpointError,
    TrainState,
    decode_checkpoint,
    decode_params,
    digest,
    encode_checkpoint,
    fresh_state,
)
from opentrain.training.train import split_error, train_segment

SegmentFn = Callable[[JobSpec, TrainState, int, int], TrainState]
ProgressFn = Callable[[int, int], None]


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
        path = self.workdir / f"job-{job_id}" / f"round-{round_}" / f"slot-{slot}"
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
        *,
        claimant: str,
    ) -> SlotResult:
        """Train (or resume) the slot as ``claimant``'s work and publish every checkpoint and
        the manifest.

        Each checkpoint is on local disk (atomically) before it counts; writing it, hashing it
        and publishing it to the content store run in one background thread, in order, while
        the next segment trains. A crash mid-write leaves only a temp file behind, so a resume
        finds the checkpoints before it and retrains that one segment."""
        spec = job.spec
        if why := self.refusal(spec):
            raise ValueError(why)
        if self.nproc > 1 and segment_fn is not honest_segment:
            raise ValueError("a custom segment function runs in one process only (nproc 1)")
        folder = self._slot_dir(job.job_id, round_, slot)
        binding = binding_for(job, claimant)
        blobs = self._resume(spec, folder, global_model, round_, slot, binding)
        if self.nproc > 1:
            return self._train_ddp(job, folder, blobs, round_, slot, progress)
        state = decode_checkpoint(spec, blobs[-1], round=round_, slot=slot, binding=binding)
        total = spec.training.num_segments

        def persist(index: int, data: bytes) -> str:
            write_atomically(folder / f"ckpt-{index}.safetensors", [data], durable=True)
            return self.store.put_bytes(data)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="persist") as background:
            cids = [background.submit(self.store.put_bytes, b) for b in blobs]
            digests = [background.submit(digest, b) for b in blobs]
            while len(blobs) <= total:
                state = segment_fn(spec, state, round_, slot)
                data = encode_checkpoint(state, round_, slot)
                cids.append(background.submit(persist, len(blobs), data))
                digests.append(background.submit(digest, data))
                blobs.append(data)
                self.timings.segments += 1
                if progress:
                    progress(len(blobs) - 1, total)
            published = [c.result() for c in cids]
            hashed = [d.result() for d in digests]
        return self._publish(job, blobs, published, round_, slot, hashed)

    def _train_ddp(
        self,
        job: LoadedJob,
        folder: Path,
        blobs: list[bytes],
        round_: int,
        slot: int,
        progress: ProgressFn | None,
    ) -> SlotResult:
        """The remaining segments in ``nproc`` worker processes; each checkpoint they write is
        published here while they train the next."""
        spec = job.spec
        total = spec.training.num_segments
        data_dir = export_job_data(spec, self.store, self.workdir / f"job-{job.job_id}" / "data")
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish") as uploads:
            cids = [uploads.submit(self.store.put_bytes, b) for b in blobs]

            def publish(data: bytes) -> None:
                blobs.append(data)
                cids.append(uploads.submit(self.store.put_bytes, data))
                self.timings.segments += 1
                if progress:
                    progress(len(blobs) - 1, total)

            train_slot_ddp(
                spec, folder, round_, slot, self.nproc, data_dir=data_dir, on_checkpoint=publish
            )
            published = [c.result() for c in cids]
        if len(blobs) != total + 1:
            raise DDPError(f"{folder} holds {len(blobs)} checkpoints, expected {total + 1}")
        return self._publish(job, blobs, published, round_, slot)

    def _resume(
        self,
        spec: JobSpec,
        folder: Path,
        global_model: bytes,
        round_: int,
        slot: int,
        binding: Binding,
    ) -> list[bytes]:
        """Checkpoints already on disk, in order; checkpoint 0 created from G_r (bound to
        ``binding``) if absent. Checkpoints on disk bound to anyone else (an older claim of
        this slot by another account sharing the folder) are discarded, not resumed."""
        first = folder / "ckpt-0.safetensors"
        if first.exists():
            try:
                decode_checkpoint(spec, first.read_bytes(), round_, slot, binding=binding)
            except CheckpointError:
                for stale in folder.glob("ckpt-*.safetensors"):
                    stale.unlink()
        if not first.exists():
            state = fresh_state(spec, decode_params(spec, global_model), binding)
            write_atomically(first, [encode_checkpoint(state, round_, slot)], durable=True)
        blobs: list[bytes] = []
        while (path := folder / f"ckpt-{len(blobs)}.safetensors").exists():
            blobs.append(path.read_bytes())
        return blobs[: spec.training.num_segments + 1]

    def _publish(
        self,
        job: LoadedJob,
        blobs: list[bytes],
        cids: list[str],
        round_: int,
        slot: int,
        digests: list[bytes] | None = None,
    ) -> SlotResult:
        hashes = digests if digests is not None else [digest(b) for b in blobs]
        refs = tuple(
            CheckpointRef(index=i, cid=cid, sha256=sha)
            for i, (cid, sha) in enumerate(zip(cids, hashes, strict=True))
        )
        manifest = TraceManifest(
            job_id=job.job_id,
            round=round_,
            slot=slot,
            spec_digest=job.info.params.spec_digest,
            checkpoints=refs,
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

    def work_slot(
        self,
        job_id: int,
        round_: int,
        slot: int,
        segment_fn: SegmentFn = honest_segment,
        progress: ProgressFn | None = None,
    ) -> int:
        """Claim, train, publish and submit one slot; returns the contribution id."""
        chain = self.account.chain
        job = load_job(chain, self.store, job_id)
        if why := self.trainer.refusal(job.spec):
            raise ValueError(why)
        global_model, _ = load_global_model(chain, self.store, job, round_)
        self.account.claim_slot(job_id, round_, slot)
        result = self.trainer.train(
            job, global_model, round_, slot, segment_fn, progress, claimant=self.account.address
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
