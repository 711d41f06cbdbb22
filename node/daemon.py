"""The GPU owner's daemon: find work this machine can do, claim it, train, prove, submit.

Restart-safe by construction: the chain says which slots this node holds (claimed or already
submitted), the local disk holds every finished segment, so ``run`` after a crash continues the
same slot from its last checkpoint and never submits twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from node import metrics
from node.ddp import DDPError
from node.disputes import Aftercare, VerdictWatcher
from node.worker import NodeWorker, ProgressFn, SealFn, SegmentFn, honest_segment, random_seal
from opentrain.chain.account import ChainAccount
from opentrain.chain.tx import TRANSIENT, RpcUnavailable
from opentrain.chain.types import ChainError
from opentrain.chain.views import JobInfo, job_info
from opentrain.content.errors import ContentError
from opentrain.content.store import ContentStore
from opentrain.protocol.jobs import JobError, LoadedJob, load_global_model, load_job
from opentrain.spec import JobSpec, SpecError
from opentrain.training.checkpoint import fresh_state
from opentrain.training.models import build_model
from opentrain.training.train import train_segment

log = logging.getLogger("opentrain.node")

JOB_OPEN = 1
SLOT_OPEN, SLOT_CLAIMED, SLOT_SUBMITTED, SLOT_ACCEPTED = 0, 1, 2, 3


@dataclass(frozen=True)
class Offer:
    """An open job as this node sees it: can it run it, and what would it earn per hour."""

    job_id: int
    round: int
    reward_per_slot: int
    runnable: bool
    reason: str
    seconds_per_slot: float = 0.0

    @property
    def reward_per_hour(self) -> float:
        if not self.runnable or self.seconds_per_slot <= 0:
            return 0.0
        return self.reward_per_slot * 3600 / self.seconds_per_slot


@dataclass(frozen=True)
class Assignment:
    job_id: int
    round: int
    slot: int
    resume: bool


def memory_needed(spec: JobSpec) -> int:
    """Bytes to train the model: parameters, gradients and two AdamW moments, plus headroom."""
    with torch.device("meta"):  # count parameters without allocating them
        model = build_model(spec.model, initialize=False)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return params * 4 * 2


def available_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def measure_seconds_per_step(spec: JobSpec, global_params: dict[str, torch.Tensor]) -> float:
    """Time two real inner steps of the job on this machine (the basis of reward per hour)."""
    state = fresh_state(spec, global_params)
    began = time.perf_counter()
    train_segment(spec, state, 0, 0, steps=min(2, spec.training.inner_steps))
    return (time.perf_counter() - began) / min(2, spec.training.inner_steps)


class NodeDaemon:
    """Decides what to work on and drives a :class:`NodeWorker` through it."""

    def __init__(
        self,
        account: ChainAccount,
        store: ContentStore,
        workdir: Path,
        memory_limit: int | None = None,
        segment_fn: SegmentFn = honest_segment,
        nproc: int = 1,
        keep_checkpoints: bool = False,
        only_jobs: set[int] | None = None,
        seal_fn: SealFn = random_seal,
    ) -> None:
        """``keep_checkpoints``: never prune a slot's local checkpoints (by default they go
        once the contribution is final and its dispute window has closed). ``segment_fn`` and
        ``seal_fn`` are an honest node's unless a canary run replaces them (``node.canary``)."""
        self.account = account
        self.store = store
        self.worker = NodeWorker(account, store, workdir, nproc)
        self.aftercare = Aftercare(
            account,
            store,
            workdir / "aftercare.json",
            checkpoints=None if keep_checkpoints else workdir,
            workdir=workdir,
        )
        self.memory_limit = memory_limit or available_memory()
        self.only_jobs = only_jobs  # None: every open job
        self.segment_fn = segment_fn
        self.seal_fn = seal_fn
        # torch imports its optimizer machinery lazily (seconds): pay it before any claim
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)])

    # -- looking for work -------------------------------------------------------------------

    def open_jobs(self) -> list[JobInfo]:
        chain = self.account.chain
        count = int(chain.market.functions.jobCount().call())
        ids = range(1, count + 1)
        jobs = [job_info(chain, i) for i in ids if self.only_jobs is None or i in self.only_jobs]
        return [j for j in jobs if j.status == JOB_OPEN]

    def check(self, job_id: int) -> tuple[LoadedJob | None, str]:
        """Load and vet a job; returns (job, "") or (None, why it is skipped)."""
        try:
            job = load_job(self.account.chain, self.store, job_id)
        except (SpecError, ContentError, JobError, ChainError) as exc:
            return None, str(exc).splitlines()[0]
        try:
            needed = memory_needed(job.spec)
        except ValueError as exc:
            return None, str(exc)
        if needed > self.memory_limit:
            return None, f"needs {needed / 2**30:.1f} GiB, {self.memory_limit / 2**30:.1f} free"
        if why := self.worker.trainer.refusal(job.spec):
            return None, why
        return job, ""

    def offers(self) -> list[Offer]:
        offers = []
        for info in self.open_jobs():
            job, reason = self.check(info.job_id)
            seconds = 0.0
            if job is not None:
                _, params = load_global_model(
                    self.account.chain, self.store, job, info.current_round
                )
                seconds = measure_seconds_per_step(job.spec, params) * job.spec.training.inner_steps
            offers.append(
                Offer(
                    info.job_id,
                    info.current_round,
                    info.params.reward_per_slot,
                    job is not None,
                    reason or "ok",
                    seconds,
                )
            )
        return offers

    def next_assignment(self) -> tuple[LoadedJob, Assignment] | None:
        """A slot this node already holds (resume) first, else the first open slot it can run."""
        chain = self.account.chain
        me = self.account.address.lower()
        now = chain.now()  # claim deadlines are unix times
        fallback: tuple[LoadedJob, Assignment] | None = None
        for info in self.open_jobs():
            job, reason = self.check(info.job_id)
            if job is None:
                log.info("skipping job %s: %s", info.job_id, reason)
                continue
            for slot in range(info.params.slots_per_round):
                node, deadline, status, _ = chain.market.functions.slotState(
                    info.job_id, info.current_round, slot
                ).call()
                mine = node.lower() == me
                if status == SLOT_CLAIMED and mine and now <= deadline:
                    return job, Assignment(info.job_id, info.current_round, slot, resume=True)
                free = status == SLOT_OPEN or (status == SLOT_CLAIMED and now > deadline)
                if free and fallback is None:
                    fallback = (job, Assignment(info.job_id, info.current_round, slot, False))
        return fallback

    # -- doing it ---------------------------------------------------------------------------

    def run_once(self, progress: ProgressFn | None = None) -> int | None:
        """Work one slot to submission; returns the contribution id, None if no work."""
        found = self.next_assignment()
        if found is None:
            return None
        job, a = found
        chain = self.account.chain
        global_model, _ = load_global_model(chain, self.store, job, a.round)
        if not a.resume:
            self.account.claim_slot(a.job_id, a.round, a.slot)
        began = time.perf_counter()
        log.info(
            "training job %s round %s slot %s (resume=%s)", a.job_id, a.round, a.slot, a.resume
        )
        segments_before = self.worker.trainer.timings.segments
        result = self.worker.trainer.train(
            job,
            global_model,
            a.round,
            a.slot,
            segment_fn=self.segment_fn,
            progress=progress,
            residual=self.worker.starting_residual(job, a.round, a.slot),
            claimant=self.account.address,
            seal_fn=self.seal_fn,
        )
        trained = self.worker.trainer.timings.segments - segments_before
        metrics.SEGMENTS.inc(trained)
        elapsed = time.perf_counter() - began
        if trained:
            metrics.STEPS_PER_SECOND.set(trained * job.spec.training.segment_steps / elapsed)
        contribution_id = self.account.submit_contribution(
            a.job_id,
            a.round,
            a.slot,
            result.output_digest,
            result.trace_root,
            result.output_cid,
            result.manifest_cid,
        )
        metrics.SLOTS.inc()
        metrics.EARNED.set(self.account.credits() / 10**18)
        self.aftercare.record_own_seed(contribution_id)
        return contribution_id

    def run(
        self,
        poll_seconds: float = 5.0,
        progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        watch_seconds: float | None = None,
    ) -> None:
        """Keep the machine earning until ``should_stop``. A background thread
        (:class:`node.disputes.VerdictWatcher`) watches this node's verdicts every
        ``watch_seconds`` (default ``poll_seconds``) while it trains, so a false fail is
        contested within its challenge window however long a slot takes."""
        interval = poll_seconds if watch_seconds is None else watch_seconds
        with VerdictWatcher(self.aftercare, interval):
            while not should_stop():
                try:
                    worked = self.run_once(progress) is not None
                except (
                    ChainError,
                    ContentError,
                    JobError,
                    DDPError,
                    RpcUnavailable,
                    *TRANSIENT,
                ) as exc:
                    # an RPC endpoint gone for longer than one call's retries (a partition, a
                    # restart) is a failed pass, not the end of the daemon
                    metrics.ERRORS.inc()
                    log.warning("slot failed, will retry: %s", str(exc).splitlines()[0])
                    worked = False
                if not worked:
                    time.sleep(poll_seconds)
