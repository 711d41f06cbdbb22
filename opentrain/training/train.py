"""One training segment: the unit a node commits to and a verifier re-runs.

``train_segment`` is the only inner loop in the project. Nodes call it segment by segment
(encoding a checkpoint after each), verifiers call it once from a decoded checkpoint, and the
plain benchmark loop calls it for a whole slot; all three therefore produce the same bits.
It trains on whatever device the state's parameters are on (``checkpoint.move_state``), and
across processes when torch.distributed is initialized (``node/ddp.py``: torchrun, DDP).
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from opentrain.spec import JobSpec, TrainingSpec
from opentrain.training.checkpoint import TrainState, fresh_state, state_params
from opentrain.training.data import DataSource, load_batch, validation_set
from opentrain.training.determinism import derive_seed, set_determinism
from opentrain.training.models import build_model

__all__ = [
    "autocast",
    "compute_loss",
    "evaluate_loss",
    "split_error",
    "train_segment",
    "train_slot_plain",
    "world",
]

EVAL_BATCH = 64  # validation examples per forward pass: bounds memory, not the result's rule


def compute_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; logits of any rank (classification or per-token) are flattened."""
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def autocast(
    training: TrainingSpec, device: torch.device
) -> contextlib.AbstractContextManager[None]:
    """The precision context of a forward pass: none for ``fp32``; for ``bf16``, torch
    autocast to bfloat16 on the state's device (CPU and CUDA alike). Parameters, gradients
    and AdamW state stay float32 (autocast casts copies for its matmuls; the residual stream
    and the loss stay float32), so only forward and backward arithmetic is bf16 and
    checkpoints keep their dtypes."""
    if training.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless torch.distributed is
    initialized (e.g. a worker started by torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def split_error(training: TrainingSpec, world_size: int) -> str:
    """Why ``world_size`` processes cannot share this job's batches ("" if they can): each
    rank takes an equal share of every batch and cuts it into ``micro_batches`` slices."""
    b, m = training.batch_size, training.micro_batches
    if world_size < 1:
        return f"process count {world_size} must be at least 1"
    if b % world_size != 0:
        return f"batch_size {b} is not divisible by {world_size} processes"
    if (b // world_size) % m != 0:
        return (
            f"batch share {b // world_size} of each of {world_size} processes is not "
            f"divisible by micro_batches {m}"
        )
    return ""


def _ddp(model: nn.Module) -> DistributedDataParallel:
    """A DDP view of ``model`` for one segment. It broadcasts rank 0's parameters (equal on
    every rank anyway); a previous segment's wrapper is inert, as DDP arms its gradient hooks
    only in its own forward pass."""
    device = _device(model)
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def train_segment(
    spec: JobSpec,
    state: TrainState,
    round: int,
    slot: int,
    steps: int | None = None,
    *,
    data: DataSource | None = None,
    losses: list[float] | None = None,
) -> TrainState:
    """Run ``steps`` (default ``segment_steps``) AdamW steps from ``state.step``.

    Mutates and returns ``state``. Step ``t`` uses the batch ``load_batch(spec, round, slot,
    t, binding=state.binding)``, so the result depends only on the starting state (with its
    binding) and these integers. With
    ``training.micro_batches = m`` each batch is split into m equal slices whose gradients
    are accumulated (each slice's mean loss scaled by 1/m): the same update up to float
    rounding, for nodes whose memory holds only a slice. The learning rate of step ``t`` is
    ``training.lr_at(t)``. ``data`` defaults to the job's cached source
    (``data.data_source``). With ``training.precision = "bf16"`` every forward pass runs under
    ``autocast`` (bf16 matmuls, float32 master weights and optimizer state); a verifier
    re-executing the segment gets the same precision from the spec.

    Under torch.distributed with W > 1 processes (``node run --nproc W``) every rank runs
    this with the same state: rank r takes share r of W equal shares of each batch (cut
    into m slices as above), DistributedDataParallel averages the gradients, and every rank
    takes the same optimizer step. The update is the m x W-slice accumulation, so it agrees
    with one process up to float rounding (tolerance mode); ``state.model`` stays unwrapped,
    so checkpoints keep their tensor names.

    ``losses`` (one process only) receives each step's training loss on its whole batch:
    something only running the segment yields and no checkpoint contains, so a verifier's
    report that carries it proves the re-execution happened (the auditor compares it)."""
    n = spec.training.segment_steps if steps is None else steps
    if n < 0 or state.step + n > spec.training.inner_steps:
        raise ValueError(
            f"cannot run {n} steps from step {state.step} "
            f"(slot has {spec.training.inner_steps} inner steps)"
        )
    rank, world_size = world()
    if why := split_error(spec.training, world_size):
        raise ValueError(why)
    set_determinism(derive_seed("opentrain/segment", spec.training.seed, round, slot, state.step))
    device = _device(state.model)
    m = spec.training.micro_batches
    state.model.train()
    net = _ddp(state.model) if world_size > 1 else None
    for _ in range(n):
        x, y = load_batch(spec, round, slot, state.step, data, state.binding)
        if net is not None:
            x, y = x.chunk(world_size)[rank], y.chunk(world_size)[rank]
        x, y = x.to(device), y.to(device)
        for group in state.optimizer.param_groups:
            group["lr"] = spec.training.lr_at(state.step)
        state.optimizer.zero_grad(set_to_none=True)
        if net is not None:
            _ddp_backward(net, x, y, m, spec.training)
        else:
            step_loss = 0.0
            for xs, ys in zip(x.chunk(m), y.chunk(m), strict=True):
                with autocast(spec.training, device):
                    loss = compute_loss(state.model, xs, ys)
                (loss if m == 1 else loss / m).backward()  # type: ignore[no-untyped-call]
                if losses is not None:
                    step_loss += float(loss.detach()) / m
            if losses is not None:
                losses.append(step_loss)
        state.optimizer.step()
        state.step += 1
    return state


def _ddp_backward(
    net: DistributedDataParallel, x: torch.Tensor, y: torch.Tensor, m: int, training: TrainingSpec
) -> None:
    """Accumulate this rank's m slices; the last backward all-reduces (DDP averages over
    ranks), the others run forward and backward under ``no_sync``."""
    device = x.device
    slices = list(zip(x.chunk(m), y.chunk(m), strict=True))
    for xs, ys in slices[:-1]:
        with net.no_sync():
            with autocast(training, device):
                part = compute_loss(net, xs, ys)
            (part / m).backward()  # type: ignore[no-untyped-call]
    xs, ys = slices[-1]
    with autocast(training, device):
        loss = compute_loss(net, xs, ys)
    (loss if m == 1 else loss / m).backward()  # type: ignore[no-untyped-call]


def _as_model(spec: JobSpec, params_or_model: dict[str, torch.Tensor] | nn.Module) -> nn.Module:
    if isinstance(params_or_model, nn.Module):
        return params_or_model
    model = build_model(spec.model, initialize=False)
    model.load_state_dict(params_or_model, strict=True)
    return model


def evaluate_loss(
    spec: JobSpec,
    params_or_model: dict[str, torch.Tensor] | nn.Module,
    data: DataSource | None = None,
) -> float:
    """Mean cross-entropy over every target of the job's validation set (the loss published
    per round), summed in fixed chunks of ``EVAL_BATCH`` examples in float64."""
    set_determinism()
    model = _as_model(spec, params_or_model)
    was_training = model.training
    model.eval()
    x, y = validation_set(spec, data)
    device = _device(model)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, x.shape[0], EVAL_BATCH):
            xs = x[start : start + EVAL_BATCH].to(device)
            ys = y[start : start + EVAL_BATCH].to(device)
            logits = model(xs)
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), ys.reshape(-1), reduction="sum"
            )
            total += float(loss.double().item())
            count += ys.numel()
    model.train(was_training)
    return total / count


def train_slot_plain(
    spec: JobSpec,
    global_params: dict[str, torch.Tensor],
    round: int,
    slot: int,
    *,
    data: DataSource | None = None,
) -> dict[str, torch.Tensor]:
    """A whole slot with no checkpoints: the baseline that proof overhead is measured against."""
    state = fresh_state(spec, global_params)
    train_segment(spec, state, round, slot, steps=spec.training.inner_steps, data=data)
    return state_params(state)
