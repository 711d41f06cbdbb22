"""One training segment: the unit a node commits to and a verifier re-runs.

``train_segment`` is the only inner loop in the project. Nodes call it segment by segment
(encoding a checkpoint after each), verifiers call it once from a decoded checkpoint, and the
plain benchmark loop calls it for a whole slot; all three therefore produce the same bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from opentrain.checkpoint import TrainState, fresh_state, state_params
from opentrain.data import load_batch, validation_set
from opentrain.determinism import derive_seed, set_determinism
from opentrain.models import build_model
from opentrain.spec import JobSpec

__all__ = ["compute_loss", "evaluate_loss", "train_segment", "train_slot_plain"]


def compute_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; logits of any rank (classification or per-token) are flattened."""
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def train_segment(
    spec: JobSpec,
    state: TrainState,
    round: int,
    slot: int,
    steps: int | None = None,
) -> TrainState:
    """Run ``steps`` (default ``segment_steps``) AdamW steps from ``state.step``.

    Mutates and returns ``state``. Step ``t`` uses batch ``batch_indices(spec, round, slot, t)``
    of the slot's shard, so the result depends only on the starting state and these integers."""
    n = spec.training.segment_steps if steps is None else steps
    if n < 0 or state.step + n > spec.training.inner_steps:
        raise ValueError(
            f"cannot run {n} steps from step {state.step} "
            f"(slot has {spec.training.inner_steps} inner steps)"
        )
    set_determinism(derive_seed("opentrain/segment", spec.training.seed, round, slot, state.step))
    state.model.train()
    for _ in range(n):
        x, y = load_batch(spec, round, slot, state.step)
        state.optimizer.zero_grad(set_to_none=True)
        loss = compute_loss(state.model, x, y)
        loss.backward()  # type: ignore[no-untyped-call]
        state.optimizer.step()
        state.step += 1
    return state


def _as_model(spec: JobSpec, params_or_model: dict[str, torch.Tensor] | nn.Module) -> nn.Module:
    if isinstance(params_or_model, nn.Module):
        return params_or_model
    model = build_model(spec.model, initialize=False)
    model.load_state_dict(params_or_model, strict=True)
    return model


def evaluate_loss(spec: JobSpec, params_or_model: dict[str, torch.Tensor] | nn.Module) -> float:
    """Mean cross-entropy on the job's validation set (the loss published per round)."""
    set_determinism()
    model = _as_model(spec, params_or_model)
    was_training = model.training
    model.eval()
    x, y = validation_set(spec)
    with torch.no_grad():
        loss = compute_loss(model, x, y)
    model.train(was_training)
    return float(loss.item())


def train_slot_plain(
    spec: JobSpec, global_params: dict[str, torch.Tensor], round: int, slot: int
) -> dict[str, torch.Tensor]:
    """A whole slot with no checkpoints: the baseline that proof overhead is measured against."""
    state = fresh_state(spec, global_params)
    train_segment(spec, state, round, slot, steps=spec.training.inner_steps)
    return state_params(state)
