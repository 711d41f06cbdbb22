"""Checking one segment of a contribution by re-execution: the rule verifier and auditor share.

Exact mode compares sha256 digests; tolerance mode compares every float tensor of the training
state (parameters and both AdamW moments) and the AdamW step direction the moments imply by
relative L2 distance, for honest re-execution on different hardware (DESIGN section 3). Moments
are compared too because the next segment starts from them: unchecked, they could be forged
freely; the step direction because the moments' own distance does not bound what they do to
the parameters (``compared_tensors``). A segment passes tolerance mode only if every distance
is strictly below its group's tolerance (``VerificationSpec.tolerance_for``: parameters, first
moments, second moments and step direction each have their own), so a forgery that lands
exactly on the tolerance (or is NaN) fails. The tolerances are calibrated by
``bench/determinism.py`` (docs/determinism.md).

Both checks take the binding the checkpoints must carry (``protocol.binding``): checkpoint 0
must be G_r with fresh state *and that binding*, and a segment's start and end must carry it, so
a trace bound to another claimant, job or spec fails before any training; re-execution then
draws the binding's own batch order.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from opentrain.spec import TENSOR_GROUPS, JobSpec, TensorGroup
from opentrain.training.binding import Binding
from opentrain.training.checkpoint import (
    ADAMW_EPS,
    CheckpointError,
    TrainState,
    decode_checkpoint,
    digest,
    encode_checkpoint,
    fresh_state,
    state_tensors,
)
from opentrain.training.data import DataSource
from opentrain.training.train import train_segment


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
    step_losses: list[float] = field(default_factory=list)  # proof that it was re-run
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tensor_group(name: str) -> TensorGroup:
    """The tolerance group of a compared tensor (``compared_tensors`` names)."""
    if name.startswith("update."):
        return "update"
    if name.startswith("model."):
        return "params"
    if name.endswith(".exp_avg_sq"):
        return "exp_avg_sq"
    if name.endswith(".exp_avg"):
        return "exp_avg"
    raise ValueError(f"{name} is in no tolerance group")


def group_maxima(distances: dict[str, float]) -> dict[TensorGroup, float]:
    """The largest distance per tolerance group."""
    out: dict[TensorGroup, float] = dict.fromkeys(TENSOR_GROUPS, 0.0)
    for name, d in distances.items():
        group = tensor_group(name)
        out[group] = d if math.isnan(d) else max(out[group], d)
    return out


def compared_tensors(spec: JobSpec, state: TrainState) -> dict[str, torch.Tensor]:
    """Everything tolerance mode compares: the state's tensors (``checkpoint.state_tensors``)
    and, per parameter, the AdamW step direction its moments imply (``update.<name>``):
    ``(m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)`` in float64, the step AdamW takes
    next, before the learning rate. Bounding it bounds what forged moments can do to the
    parameters, which a bound on the moments' own relative L2 does not (a tiny first moment
    where the second is ~0 is a full-size step)."""
    tensors = state_tensors(state)
    t = state.step
    b1, b2 = spec.training.beta1, spec.training.beta2
    bc1 = 1.0 - b1**t if t > 0 else 1.0
    bc2 = 1.0 - b2**t if t > 0 else 1.0
    for name, _ in state.model.named_parameters():
        m = tensors[f"optim.{name}.exp_avg"].double()
        v = tensors[f"optim.{name}.exp_avg_sq"].double()
        # a forged negative second moment has no square root: it is as far off as can be
        root = torch.where(v >= 0, v, torch.full_like(v, math.nan)).sqrt()
        tensors[f"update.{name}"] = (m / bc1) / (root / math.sqrt(bc2) + ADAMW_EPS)
    return tensors


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / max(||b||, tiny): scale-free, so one tolerance fits every tensor of a group."""
    diff = torch.linalg.vector_norm((a.double() - b.double()).flatten())
    ref = torch.linalg.vector_norm(b.double().flatten())
    return float(diff / max(float(ref), 1e-12))


def check_initial_checkpoint(
    spec: JobSpec,
    global_params: dict[str, torch.Tensor],
    claimed: bytes,
    round_: int,
    slot: int,
    binding: Binding | None = None,
) -> SegmentCheck:
    """Checkpoint 0 must be G_r with fresh optimizer state and ``binding``, byte for byte (no
    training needed)."""
    expected = encode_checkpoint(fresh_state(spec, global_params, binding), round_, slot)
    same = digest(expected) == digest(claimed)
    reason = "checkpoint 0 is G_r" if same else "checkpoint 0 is not G_r with fresh state"
    if not same:
        try:
            decode_checkpoint(spec, claimed, round=round_, slot=slot, binding=binding)
        except CheckpointError as exc:
            reason = f"checkpoint 0: {str(exc).removeprefix('checkpoint: ')}"
    return SegmentCheck(
        index=-1,
        passed=same,
        reason=reason,
        claimed_sha256=digest(claimed).hex(),
        recomputed_sha256=digest(expected).hex(),
    )


def check_segment(
    spec: JobSpec,
    start: bytes,
    claimed_end: bytes,
    index: int,
    round_: int,
    slot: int,
    *,
    binding: Binding | None = None,
    data: DataSource | None = None,
) -> SegmentCheck:
    """Re-run segment ``index`` from ``start`` and compare with ``claimed_end``.

    Both checkpoints must be tagged with this (round, slot), carry ``binding`` (None: must be
    unbound) and sit at the segment's step numbers, so a checkpoint replayed from another
    slot, position or claimant fails before any training. ``data`` is the job's data source
    (``data.data_source(spec, store)``)."""
    began = time.perf_counter()
    result = SegmentCheck(index, False, "", digest(claimed_end).hex())
    seg = spec.training.segment_steps
    try:
        state = decode_checkpoint(spec, start, round=round_, slot=slot, binding=binding)
        if state.step != index * seg:
            result.reason = f"start checkpoint is at step {state.step}, expected {index * seg}"
            return result
        claimed = decode_checkpoint(spec, claimed_end, round=round_, slot=slot, binding=binding)
        if claimed.step != (index + 1) * seg:
            result.reason = (
                f"claimed checkpoint is at step {claimed.step}, expected {(index + 1) * seg}"
            )
            return result
    except CheckpointError as exc:
        result.reason = str(exc)
        return result
    train_segment(spec, state, round_, slot, data=data, losses=result.step_losses)
    recomputed = encode_checkpoint(state, round_, slot)
    result.recomputed_sha256 = digest(recomputed).hex()
    result.seconds = time.perf_counter() - began
    mine, theirs = compared_tensors(spec, state), compared_tensors(spec, claimed)
    _compare(spec, result, mine, theirs, claimed.step, state.step)
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
    same = result.recomputed_sha256 == result.claimed_sha256
    digests = "digests equal" if same else "digest differs from re-execution"
    if spec.verification.mode == "exact":
        result.passed = same
        result.reason = digests
    else:
        v = spec.verification
        maxima = group_maxima(result.distances)
        over = [g for g in TENSOR_GROUPS if not maxima[g] < v.tolerance_for(g)]  # NaN: over
        result.passed = same or not over
        shown = over[:1] or [max(TENSOR_GROUPS, key=lambda g: maxima[g] / v.tolerance_for(g))]
        g = shown[0]
        verdict = "below" if result.passed else "not below"
        result.reason = (
            f"{digests}; max relative L2 of {g} {maxima[g]:.3g} {verdict} tolerance "
            f"{v.tolerance_for(g):g}"
        )
