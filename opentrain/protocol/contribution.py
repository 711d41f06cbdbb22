"""Re-check one submitted contribution the way its verifier must: the manifest against the
on-chain commitments, checkpoint 0 against G_r, and each sampled segment by re-execution.

It lives in the shared core because three parties run exactly this and must agree: the drawn
verifier (its verdict), committee members (their vote in a dispute) and the node itself (before
contesting a fail it checks that re-execution really passes). The result is a
:class:`VerificationReport`, published as JSON in the content store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from opentrain.chain.client import Chain
from opentrain.chain.types import ChainError
from opentrain.chain.views import ContributionInfo, contribution_info, verification_info
from opentrain.content.errors import ContentError, ContentUnavailable
from opentrain.content.store import ContentStore
from opentrain.protocol.binding import contribution_binding
from opentrain.protocol.codecs import has_residual
from opentrain.protocol.jobs import LoadedJob, load_global_model, load_job
from opentrain.protocol.manifest import ManifestError, TraceManifest
from opentrain.protocol.sampling import recomputed_digests_hash, sample_indices
from opentrain.protocol.segment import SegmentCheck, check_initial_checkpoint, check_segment
from opentrain.protocol.updates import UpdateCheck, check_update, residual_in
from opentrain.training.checkpoint import CheckpointError

__all__ = [
    "UNAVAILABLE",
    "ProgressFn",
    "VerificationReport",
    "check_contribution",
    "recomputed_digests",
]

# the reason a report gives for a contribution failed as withheld (auditors read it back)
UNAVAILABLE = "content unavailable"

ProgressFn = Callable[[int, int], None]


@dataclass
class VerificationReport:
    """What was recomputed for one contribution; stored in the content store, its CID on-chain."""

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
    update: UpdateCheck | None = None  # only under a codec with error feedback

    @property
    def recomputed_digests(self) -> list[bytes]:
        return recomputed_digests(self.checks)

    @property
    def digests_hash(self) -> bytes:
        """What the verifier's ``attest`` commits to on-chain (see ``recomputed_digests_hash``)."""
        return recomputed_digests_hash(self.recomputed_digests)

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "version": 1,
            "recomputed_digests_hash": "0x" + self.digests_hash.hex(),
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
        if self.update is not None:
            doc["update"] = self.update.to_dict()
        return doc

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def recomputed_digests(checks: list[SegmentCheck] | list[dict[str, Any]]) -> list[bytes]:
    """The sha256 of each checkpoint recomputed, in sample order: for each sampled segment the
    checkpoint at its end (32 zero bytes where the segment was refused before re-running, e.g.
    a checkpoint at the wrong step). Checkpoint 0's check (index -1) recomputes no training and
    is not part of it. Accepts the checks or their JSON form (a stored report's ``checks``)."""
    out = []
    for check in checks:
        c = check if isinstance(check, dict) else check.to_dict()
        if int(c["index"]) < 0:
            continue
        text = str(c.get("recomputed_sha256") or "")
        out.append(bytes.fromhex(text.removeprefix("0x")) if text else bytes(32))
    return out


def check_contribution(
    chain: Chain,
    store: ContentStore,
    contribution_id: int,
    progress: ProgressFn | None = None,
    fail_unavailable: bool = False,
) -> VerificationReport:
    """Fetch, check the commitments and re-execute the sampled segments (needs the seed).

    Content that cannot be obtained (``ContentUnavailable``: not on any gateway that answered,
    or none answered) is not a verdict by itself: it raises, so the caller retries while its
    window lasts, unless ``fail_unavailable`` (the window is running out) makes it a fail.
    Content that arrives and is wrong fails at once."""
    began = time.perf_counter()
    info = contribution_info(chain, contribution_id)
    seed = verification_info(chain, contribution_id).seed
    if seed == bytes(32):
        raise ChainError(f"contribution {contribution_id} has no seed yet")
    job = load_job(chain, store, info.job_id)
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
        manifest = _checked_manifest(store, job, info)
        _check_samples(chain, store, job, info, manifest, report, progress)
    except ContentUnavailable as exc:
        if not fail_unavailable:
            raise
        report.passed = False
        report.reason = f"{UNAVAILABLE}: {str(exc).splitlines()[0]}"
    except (ContentError, ManifestError) as exc:
        report.reason = str(exc).splitlines()[0]
    report.seconds = time.perf_counter() - began
    return report


def _checked_manifest(store: ContentStore, job: LoadedJob, info: ContributionInfo) -> TraceManifest:
    manifest = TraceManifest.from_json(store.get_bytes(info.manifest_cid))
    n = job.spec.training.num_segments
    if len(manifest.checkpoints) != n + 1:
        raise ManifestError(f"manifest lists {len(manifest.checkpoints)} checkpoints, not {n + 1}")
    if (manifest.job_id, manifest.round, manifest.slot) != (info.job_id, info.round, info.slot):
        raise ManifestError("manifest is for another job, round or slot")
    if manifest.spec_digest != job.info.params.spec_digest:
        raise ManifestError("manifest is for another spec")
    if manifest.trace_root != info.trace_root:
        raise ManifestError("manifest digests and seal do not match the on-chain trace root")
    if manifest.digests[-1] != info.output_digest:
        raise ManifestError("manifest output digest does not match the on-chain output digest")
    return manifest


def _check_samples(
    chain: Chain,
    store: ContentStore,
    job: LoadedJob,
    info: ContributionInfo,
    manifest: TraceManifest,
    report: VerificationReport,
    progress: ProgressFn | None,
) -> None:
    tree = manifest.trace_tree()
    binding = contribution_binding(job, info)  # the submitter's: a lifted trace fails
    fetched: dict[int, bytes] = {}
    round_, slot = report.round, report.slot

    def fetch(index: int) -> bytes:
        if index not in fetched:
            ref = manifest.checkpoints[index]
            fetched[index] = store.get_bytes(ref.cid, expected_sha256=ref.sha256)
            report.proofs[index] = ["0x" + p.hex() for p in tree.proof(index)]
        return fetched[index]

    _, global_params = load_global_model(chain, store, job, round_)
    checks = [check_initial_checkpoint(job.spec, global_params, fetch(0), round_, slot, binding)]
    for done, index in enumerate(report.sampled_segments):
        start, end = fetch(index), fetch(index + 1)
        checks.append(check_segment(job.spec, start, end, index, round_, slot, binding=binding))
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
    if has_residual(job.spec):
        report.update = _check_update(chain, store, job, manifest, global_params, fetch)
        if report.passed and not report.update.passed:
            report.passed = False
            report.reason = f"update: {report.update.reason}"


def _check_update(
    chain: Chain,
    store: ContentStore,
    job: LoadedJob,
    manifest: TraceManifest,
    global_params: dict[str, torch.Tensor],
    fetch: Callable[[int], bytes],
) -> UpdateCheck:
    """The committed sparse update and residual against the output and the residual the slot
    started from (committed by the same slot of the round before)."""
    try:
        residual = residual_in(chain, store, job, manifest.round, manifest.slot)
        output = fetch(job.spec.training.num_segments)
    except ContentUnavailable:
        raise  # not a verdict: check_contribution retries or fails it as withheld
    except (ChainError, ContentError, ManifestError, CheckpointError) as exc:
        return UpdateCheck(False, str(exc).splitlines()[0])
    return check_update(job.spec, global_params, output, residual, manifest, store)
