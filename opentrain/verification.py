"""Checking one segment of a contribution by re-execution: the rule verifier and auditor share.

Exact mode compares sha256 digests; tolerance mode compares every parameter tensor by relative
L2 distance, for honest re-execution on different hardware (DESIGN section 3).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from opentrain.checkpoint import (
    CheckpointError,
    decode_checkpoint,
    digest,
    encode_checkpoint,
    fresh_state,
    state_params,
)
from opentrain.spec import JobSpec
from opentrain.training import train_segment


@dataclass
class SegmentCheck:
    """The outcome of re-running segment ``index`` (checkpoint index -> index + 1)."""

    index: int
    passed: bool
    reason: str
    claimed_sha256: str
    recomputed_sha256: str = ""
    max_relative_distance: float = 0.0
    distances: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / max(||b||, tiny): scale-free, so one tolerance fits every tensor."""
    diff = torch.linalg.vector_norm((a.double() - b.double()).flatten())
    ref = torch.linalg.vector_norm(b.double().flatten())
    return float(diff / max(float(ref), 1e-12))


def check_initial_checkpoint(
    spec: JobSpec, global_params: dict[str, torch.Tensor], claimed: bytes, round_: int, slot: int
) -> SegmentCheck:
    """Checkpoint 0 must be G_r with fresh optimizer state, byte for byte (no training needed)."""
    expected = encode_checkpoint(fresh_state(spec, global_params), round_, slot)
    same = digest(expected) == digest(claimed)
    return SegmentCheck(
        index=-1,
        passed=same,
        reason="checkpoint 0 is G_r" if same else "checkpoint 0 is not G_r with fresh state",
        claimed_sha256=digest(claimed).hex(),
        recomputed_sha256=digest(expected).hex(),
    )


def check_segment(
    spec: JobSpec, start: bytes, claimed_end: bytes, index: int, round_: int, slot: int
) -> SegmentCheck:
    """Re-run segment ``index`` from ``start`` and compare with ``claimed_end``."""
    began = time.perf_counter()
    result = SegmentCheck(index, False, "", digest(claimed_end).hex())
    seg = spec.training.segment_steps
    try:
        state = decode_checkpoint(spec, start, round=round_, slot=slot)
        if state.step != index * seg:
            result.reason = f"start checkpoint is at step {state.step}, expected {index * seg}"
            return result
        claimed = decode_checkpoint(spec, claimed_end, round=round_, slot=slot)
    except CheckpointError as exc:
        result.reason = str(exc)
        return result
    train_segment(spec, state, round_, slot)
    recomputed = encode_checkpoint(state, round_, slot)
    result.recomputed_sha256 = digest(recomputed).hex()
    result.seconds = time.perf_counter() - began
    _compare(spec, result, state_params(state), state_params(claimed), claimed.step, state.step)
    return result


def _compare(
    spec: JobSpec,
    result: SegmentCheck,
    mine: dict[str, torch.Tensor],
    theirs: dict[str, torch.Tensor],
    their_step: int,
    my_step: int,
) -> None:
    if their_step != my_step:
        result.reason = f"claimed checkpoint is at step {their_step}, re-execution at {my_step}"
        return
    result.distances = {name: relative_l2(theirs[name], mine[name]) for name in mine}
    result.max_relative_distance = max(result.distances.values(), default=0.0)
    if spec.verification.mode == "exact":
        result.passed = result.recomputed_sha256 == result.claimed_sha256
        result.reason = "digests equal" if result.passed else "digest differs from re-execution"
    else:
        tol = spec.verification.tolerance
        result.passed = result.max_relative_distance <= tol
        result.reason = (
            f"max relative L2 {result.max_relative_distance:.3g} "
            f"{'within' if result.passed else 'exceeds'} tolerance {tol:g}"
        )
