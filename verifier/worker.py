"""The verifier's work on one contribution: record the seed if nobody has, and if this verifier
was drawn, fetch the sampled segments' checkpoints, check them against the on-chain trace root,
re-execute each with the shared segment function, publish a report and attest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentrain.aggregation import aggregate
from opentrain.chain import ChainAccount, ChainError, contribution_info, verification_info
from opentrain.checkpoint import decode_params, digest
from opentrain.commitments import build_trace_tree
from opentrain.jobs import LoadedJob, load_global_model, load_job
from opentrain.manifest import ManifestError, TraceManifest
from opentrain.sampling import sample_indices
from opentrain.store import ContentError, ContentStore
from opentrain.training import evaluate_loss
from opentrain.verification import SegmentCheck, check_initial_checkpoint, check_segment

SLOT_ACCEPTED = 3  # SlotStatus.Accepted in contracts/interfaces/Types.sol

ProgressFn = Callable[[int, int], None]


@dataclass
class VerificationReport:
    """What the verifier recomputed; stored in the content store, its CID on-chain."""

    contribution_id: int
    job_id: int
    round: int
    slot: int
    seed: str
    sampled_segments: list[int]
    passed: bool
    reason: str
    checks: list[SegmentCheck] = field(default_factory=list)
    proofs: dict[int, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "version": 1,
            "contribution_id": self.contribution_id,
            "job_id": self.job_id,
            "round": self.round,
            "slot": self.slot,
            "seed": self.seed,
            "sampled_segments": self.sampled_segments,
            "passed": self.passed,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
            "proofs": {str(k): v for k, v in self.proofs.items()},
            "seconds": self.seconds,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class VerifierWorker:
    """A verifier's account and store."""

    def __init__(self, account: ChainAccount, store: ContentStore) -> None:
        self.account = account
        self.store = store

    def ensure_seed(self, contribution_id: int) -> bool:
        """Record the seed if nobody has yet; False while its block is not mined."""
        chain = self.account.chain
        if verification_info(chain, contribution_id).seed != bytes(32):
            return True
        try:
            self.account.record_seed(contribution_id)
        except ChainError as exc:
            if "SettlementSeedNotReady" in str(exc):
                return False
            raise
        return verification_info(chain, contribution_id).seed != bytes(32)

    def is_assigned(self, contribution_id: int) -> bool:
        info = verification_info(self.account.chain, contribution_id)
        return info.verifier.lower() == self.account.address.lower()

    def verify_and_attest(
        self, contribution_id: int, progress: ProgressFn | None = None
    ) -> VerificationReport:
        """Verify the contribution, store the report and attest its verdict on-chain."""
        report = self.verify(contribution_id, progress)
        report_cid = self.store.put_bytes(report.to_json())
        self.account.attest(contribution_id, report.passed, report_cid)
        return report

    def verify(
        self, contribution_id: int, progress: ProgressFn | None = None
    ) -> VerificationReport:
        """Everything short of attesting: fetch, check commitments, re-execute samples."""
        began = time.perf_counter()
        chain = self.account.chain
        info = contribution_info(chain, contribution_id)
        seed = verification_info(chain, contribution_id).seed
        if seed == bytes(32):
            raise ChainError(f"contribution {contribution_id} has no seed yet")
        job = load_job(chain, self.store, info.job_id)
        n = job.spec.training.num_segments
        sampled = sample_indices(seed, n, job.spec.verification.samples)
        report = VerificationReport(
            contribution_id,
            info.job_id,
            info.round,
            info.slot,
            "0x" + seed.hex(),
            sampled,
            passed=False,
            reason="",
        )
        try:
            manifest = self._checked_manifest(job, info.manifest_cid, info)
            self._check_samples(job, manifest, info.round, info.slot, report, progress)
        except (ContentError, ManifestError) as exc:
            report.reason = str(exc).splitlines()[0]
        report.seconds = time.perf_counter() - began
        return report

    def _checked_manifest(self, job: LoadedJob, cid: str, info: Any) -> TraceManifest:
        manifest = TraceManifest.from_json(self.store.get_bytes(cid))
        n = job.spec.training.num_segments
        if len(manifest.checkpoints) != n + 1:
            raise ManifestError(
                f"manifest lists {len(manifest.checkpoints)} checkpoints, not {n + 1}"
            )
        if (manifest.job_id, manifest.round, manifest.slot) != (info.job_id, info.round, info.slot):
            raise ManifestError("manifest is for another job, round or slot")
        if manifest.trace_root != info.trace_root:
            raise ManifestError("manifest digests do not match the on-chain trace root")
        if manifest.digests[-1] != info.output_digest:
            raise ManifestError("manifest output digest does not match the on-chain output digest")
        return manifest

    def _check_samples(
        self,
        job: LoadedJob,
        manifest: TraceManifest,
        round_: int,
        slot: int,
        report: VerificationReport,
        progress: ProgressFn | None,
    ) -> None:
        tree = build_trace_tree(manifest.digests)
        fetched: dict[int, bytes] = {}

        def fetch(index: int) -> bytes:
            if index not in fetched:
                ref = manifest.checkpoints[index]
                fetched[index] = self.store.get_bytes(ref.cid, expected_sha256=ref.sha256)
                report.proofs[index] = ["0x" + p.hex() for p in tree.proof(index)]
            return fetched[index]

        _, global_params = load_global_model(self.account.chain, self.store, job, round_)
        checks = [check_initial_checkpoint(job.spec, global_params, fetch(0), round_, slot)]
        for done, index in enumerate(report.sampled_segments):
            checks.append(
                check_segment(job.spec, fetch(index), fetch(index + 1), index, round_, slot)
            )
            if progress:
                progress(done + 1, len(report.sampled_segments))
        report.checks = checks
        failed = [c for c in checks if not c.passed]
        report.passed = not failed
        report.reason = (
            "all sampled segments re-executed to their committed checkpoints"
            if not failed
            else f"segment {failed[0].index}: {failed[0].reason}"
        )


class RoundAggregator:
    """Computes G_{r+1} once every slot of round r is accepted, stores it and posts it."""

    def __init__(self, account: ChainAccount, store: ContentStore) -> None:
        self.account = account
        self.store = store

    def accepted_outputs(self, job: LoadedJob, round_: int) -> list[bytes]:
        """The accepted output checkpoint of each slot, in slot order, checked by digest."""
        chain = self.account.chain
        outputs = []
        for slot in range(job.spec.slots_per_round):
            _, _, status, contribution_id = chain.market.functions.slotState(
                job.job_id, round_, slot
            ).call()
            if status != SLOT_ACCEPTED:
                raise ChainError(f"job {job.job_id} round {round_} slot {slot} is not accepted")
            info = contribution_info(chain, contribution_id)
            outputs.append(
                self.store.get_bytes(info.output_cid, expected_sha256=info.output_digest)
            )
        return outputs

    def aggregate_and_post(
        self, job_id: int, round_: int, wait_final: bool | None = None
    ) -> tuple[str, float]:
        """Aggregate round ``round_`` of the job and post G_{r+1}; returns its CID and loss."""
        chain = self.account.chain
        job = load_job(chain, self.store, job_id)
        global_model, _ = load_global_model(chain, self.store, job, round_)
        new_model = aggregate(job.spec, global_model, self.accepted_outputs(job, round_))
        cid = self.store.put_bytes(new_model)
        loss = evaluate_loss(job.spec, decode_params(job.spec, new_model))
        self.account.post_aggregate(
            job_id, round_, digest(new_model), cid, loss, wait_final=wait_final
        )
        return cid, loss
