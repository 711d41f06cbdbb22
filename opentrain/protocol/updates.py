"""A slot's committed update and residual (error feedback) in the protocol: where node, verifier,
aggregator and auditor find them, and the one check that ties them to the output checkpoint.

Under a codec with error feedback (``topk``, ``opentrain.protocol.codecs``) the manifest of a
contribution names two more objects by CID and sha256: the encoded pseudo-gradient (what the
aggregator downloads) and the new residual (what the same slot of the next round starts from).
Round ``r`` slot ``s`` starts from the residual committed by the contribution accepted for slot
``s`` of round ``r - 1`` (zeros in round 0), so the chain of residuals is public and each link
is checked when its contribution is verified: ``(update, residual) == slot_update(G_r, output,
residual_in)`` byte for byte. A node that uploads any other sparse update than its checkpoint
implies fails verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from opentrain.chain.client import Chain
from opentrain.chain.types import ChainError, SlotStatus
from opentrain.chain.views import ContributionInfo, contribution_info
from opentrain.content.errors import ContentError, ContentUnavailable
from opentrain.content.store import ContentStore
from opentrain.protocol.aggregation import aggregate, aggregate_pseudo_gradients
from opentrain.protocol.codecs import decode_residual, has_residual, slot_update, zero_residual
from opentrain.protocol.jobs import LoadedJob
from opentrain.protocol.manifest import ContentRef, ManifestError, TraceManifest
from opentrain.spec import JobSpec
from opentrain.training.checkpoint import (
    CheckpointError,
    decode_checkpoint,
    digest,
    state_params,
)

__all__ = [
    "UpdateCheck",
    "accepted_contribution",
    "aggregate_round",
    "check_update",
    "committed_update",
    "residual_in",
    "round_inputs",
]

Tensors = dict[str, torch.Tensor]


def accepted_contribution(chain: Chain, job: LoadedJob, round_: int, slot: int) -> ContributionInfo:
    """The contribution accepted for ``(round_, slot)``; a ``ChainError`` if there is none."""
    _, _, status, contribution_id = chain.market.functions.slotState(
        job.job_id, round_, slot
    ).call()
    if status != SlotStatus.ACCEPTED:
        raise ChainError(f"job {job.job_id} round {round_} slot {slot} is not accepted")
    return contribution_info(chain, int(contribution_id))


def _manifest(store: ContentStore, info: ContributionInfo) -> TraceManifest:
    return TraceManifest.from_json(store.get_bytes(info.manifest_cid))


def _fetch(store: ContentStore, ref: ContentRef | None, what: str) -> bytes:
    if ref is None:
        raise ManifestError(f"manifest names no {what}")
    return store.get_bytes(ref.cid, expected_sha256=ref.sha256)


def committed_update(store: ContentStore, info: ContributionInfo) -> bytes:
    """The encoded pseudo-gradient a contribution's manifest commits to, checked by sha256."""
    return _fetch(store, _manifest(store, info).update, "update")


def residual_in(
    chain: Chain, store: ContentStore, job: LoadedJob, round_: int, slot: int
) -> Tensors:
    """The residual slot ``slot`` of round ``round_`` starts from: zeros in round 0, else the
    one committed by the contribution accepted for the same slot of the round before."""
    if round_ == 0:
        return zero_residual(job.spec)
    info = accepted_contribution(chain, job, round_ - 1, slot)
    return decode_residual(job.spec, _fetch(store, _manifest(store, info).residual, "residual"))


def round_inputs(
    store: ContentStore, spec: JobSpec, infos: Sequence[ContributionInfo]
) -> list[bytes]:
    """What the round aggregates, per accepted contribution in slot order: the committed
    updates under error feedback, the output checkpoints otherwise (both checked by sha256)."""
    if has_residual(spec):
        return [committed_update(store, info) for info in infos]
    return [store.get_bytes(i.output_cid, expected_sha256=i.output_digest) for i in infos]


def aggregate_round(spec: JobSpec, global_model: bytes, inputs: Sequence[bytes]) -> bytes:
    """G_{r+1} from G_r and ``round_inputs``."""
    if has_residual(spec):
        return aggregate_pseudo_gradients(spec, global_model, inputs)
    return aggregate(spec, global_model, inputs)


@dataclass
class UpdateCheck:
    """The outcome of recomputing a contribution's update and residual from its output."""

    passed: bool
    reason: str
    claimed_update_sha256: str = ""
    recomputed_update_sha256: str = ""
    claimed_residual_sha256: str = ""
    recomputed_residual_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_update(
    spec: JobSpec,
    global_params: Tensors,
    output: bytes,
    residual: Tensors,
    manifest: TraceManifest,
    store: ContentStore | None = None,
) -> UpdateCheck:
    """Does the manifest commit to exactly ``slot_update(G_r, output, residual)``? With a
    ``store``, both objects must also be fetchable there under their CIDs (the aggregator
    and the next round need them)."""
    check = UpdateCheck(False, "")
    if manifest.update is None or manifest.residual is None:
        check.reason = "manifest commits to no update and residual"
        return check
    check.claimed_update_sha256 = manifest.update.sha256.hex()
    check.claimed_residual_sha256 = manifest.residual.sha256.hex()
    try:
        params = state_params(decode_checkpoint(spec, output, manifest.round, manifest.slot))
    except CheckpointError as exc:
        check.reason = str(exc)
        return check
    update, new_residual = slot_update(spec, global_params, params, residual)
    check.recomputed_update_sha256 = digest(update).hex()
    check.recomputed_residual_sha256 = digest(new_residual).hex()
    if check.recomputed_update_sha256 != check.claimed_update_sha256:
        check.reason = "committed update is not the encoding of G_r - output + residual"
        return check
    if check.recomputed_residual_sha256 != check.claimed_residual_sha256:
        check.reason = "committed residual is not what the update left unsent"
        return check
    if store is not None:
        try:
            _fetch(store, manifest.update, "update")
            _fetch(store, manifest.residual, "residual")
        except ContentUnavailable:
            raise  # not a verdict by itself: the caller retries, then fails it as withheld
        except ContentError as exc:
            check.reason = f"committed update or residual not available: {exc}".splitlines()[0]
            return check
    check.passed = True
    check.reason = "update and residual recompute from the output byte for byte"
    return check
