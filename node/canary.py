"""A canary run (contracts/CANARIES.md): the canary authority's node account trains an ordinary
slot for real but perturbs the end checkpoint of each faulty segment, so only re-execution of
that segment tells it from honest work. Its trace root is sealed with the canary's fault
commitment where an honest node's is sealed with random bytes, so the faults are fixed before
the sampling seed exists and open one way only; once the verifier has attested, the authority
opens the seal (``Canaries.reveal``): a lazy pass of a faulty sample is slashed, a right verdict
is paid from the canary pool.

The node account and the authority account are different keys: the reveal comes from the
authority, the claim and the submission from a node account nobody links to it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from node.daemon import NodeDaemon
from node.worker import SegmentFn, honest_segment
from opentrain.chain.account import ChainAccount
from opentrain.chain.types import Phase, Verdict
from opentrain.chain.views import contribution_info, verification_info
from opentrain.content.store import ContentStore
from opentrain.protocol.canaries import canary_seal, draw_faults, expected_fail, fault_words
from opentrain.protocol.jobs import LoadedJob, load_job
from opentrain.protocol.manifest import TraceManifest
from opentrain.protocol.sampling import sample_indices
from opentrain.spec import JobSpec
from opentrain.training.checkpoint import TrainState

__all__ = ["CanaryRun", "PlannedCanary", "faulty_segment"]

log = logging.getLogger("opentrain.canary")

# relative size of a fault: far past any tolerance (1e-4 .. 5e-2), far below a segment's update
FAULT_SCALE = 0.05


def faulty_segment(faults: set[int]) -> SegmentFn:
    """A segment function that trains honestly and then, for a faulty segment, moves every
    parameter by ``FAULT_SCALE`` of its RMS in a direction seeded by the segment index."""

    def segment(spec: JobSpec, state: TrainState, round_: int, slot: int) -> TrainState:
        index = state.step // spec.training.segment_steps
        state = honest_segment(spec, state, round_, slot)
        if index in faults:
            generator = torch.Generator().manual_seed(1_000_003 * (index + 1))
            with torch.no_grad():
                for p in state.model.parameters():
                    noise = torch.randn(p.shape, generator=generator, dtype=p.dtype)
                    rms = p.detach().pow(2).mean().sqrt().clamp_min(1e-3)
                    p.add_(noise * (FAULT_SCALE * rms))
        return state

    return segment


@dataclass(frozen=True)
class PlannedCanary:
    """What the authority keeps secret until the reveal."""

    job_id: int
    node: str
    secret: bytes
    faults: frozenset[int]
    words: tuple[int, ...]


class CanaryRun:
    """The authority's side (plan, reveal) and its node account's (train, submit)."""

    def __init__(
        self,
        authority: ChainAccount,
        node: ChainAccount,
        store: ContentStore,
        workdir: Path,
    ) -> None:
        self.authority = authority
        self.node = node
        self.store = store
        self.workdir = workdir

    def plan(self, job_id: int, faults: set[int] | None = None) -> PlannedCanary:
        """Draw the secret and the faults (each segment with probability 1/k unless given)."""
        spec = load_job(self.authority.chain, self.store, job_id).spec
        n, k = spec.training.num_segments, spec.verification.samples
        secret = os.urandom(32)
        chosen = draw_faults(secret, n, k) if faults is None else set(faults)
        words = fault_words(chosen, n)
        return PlannedCanary(job_id, self.node.address, secret, frozenset(chosen), tuple(words))

    def seal(self, planned: PlannedCanary, job: LoadedJob, round_: int, slot: int) -> bytes:
        """The seal of the canary's trace root once its slot is known (``Canaries.canarySeal``)."""
        chain = self.authority.chain
        return canary_seal(
            chain.w3.eth.chain_id,
            chain.market.address,
            job.job_id,
            round_,
            slot,
            planned.node,
            planned.secret,
            list(planned.words),
        )

    def train(self, planned: PlannedCanary) -> int | None:
        """Claim an open slot and submit the faulted, sealed trace (its daemon records the seed
        and reveals the sampled checkpoints like any node); returns the contribution id."""
        daemon = NodeDaemon(
            self.node,
            self.store,
            self.workdir,
            segment_fn=faulty_segment(set(planned.faults)),
            only_jobs={planned.job_id},
            seal_fn=lambda job, round_, slot: self.seal(planned, job, round_, slot),
        )
        return daemon.run_once()

    def reveal_if_attested(self, planned: PlannedCanary, contribution_id: int) -> bool | None:
        """Open the canary once its verdict is in; returns whether the verifier was right (None:
        no verdict yet, or it is disputed or settled already)."""
        chain = self.authority.chain
        info = verification_info(chain, contribution_id)
        if info.verdict is Verdict.NONE or info.phase is not Phase.ASSIGNED:
            return None
        spec = load_job(chain, self.store, planned.job_id).spec
        sampled = sample_indices(info.seed, spec.training.num_segments, spec.verification.samples)
        should_fail = expected_fail(sampled, set(planned.faults))
        manifest_cid = contribution_info(chain, contribution_id).manifest_cid
        manifest = TraceManifest.from_json(self.store.get_bytes(manifest_cid))
        checkpoints_root = manifest.trace_tree().checkpoints_root
        self.authority.reveal_canary(
            contribution_id, checkpoints_root, planned.secret, list(planned.words)
        )
        right = (info.verdict is Verdict.FAIL) == should_fail
        log.info(
            "canary %s revealed: sample %s %s a fault, verdict %s: %s",
            contribution_id,
            sampled,
            "hits" if should_fail else "misses",
            info.verdict.name,
            "right" if right else "WRONG (verifier slashed)",
        )
        return right
