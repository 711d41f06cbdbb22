"""DiLoCo aggregation: G_{r+1} from G_r and the round's accepted slot outputs.

Outer step = SGD with Nesterov momentum on the mean pseudo-gradient
``delta = mean_s(G_r - output_s)`` over slots in slot order:
``m' = mu * m + delta``; ``G_{r+1} = G_r - lr * (delta + mu * m')`` (torch.optim.SGD's Nesterov
form), with the outer momentum ``m`` stored in the global checkpoint.

Under the int8 codec (``diloco.compression = "int8"``, or the legacy
``training.pseudo_gradient = "int8"``) each slot's pseudo-gradient is what a node would upload
in 8 bits (per-tensor min-max, as in INTELLECT-1), and the aggregate uses the dequantized
values; ``aggregate`` recomputes them from the outputs. Under ``topk`` (sparse, 2/4-bit, with
error feedback) the update depends on the slot's committed residual too, so the round is
aggregated from the committed updates (``aggregate_pseudo_gradients``); the verifier has
checked each one against its output (``opentrain.protocol.codecs``).

Everything is elementwise float32 arithmetic, one correctly rounded op at a time (no fused
multiply-add, no reductions except exact min/max), on the CPU in parameter and slot order, so
any machine reproduces G_{r+1}'s bytes and its digest is checked exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from opentrain.protocol.codecs import (
    codec_of,
    decode_pseudo_gradient,
    dequantize_int8,
    encode_pseudo_gradient,
    pseudo_gradient,
    quantize_int8,
)
from opentrain.spec import JobSpec
from opentrain.training.checkpoint import (
    decode_checkpoint,
    decode_global,
    encode_params,
    state_params,
)

__all__ = [
    "aggregate",
    "aggregate_pseudo_gradients",
    "decode_pseudo_gradient",
    "dequantize_int8",
    "encode_pseudo_gradient",
    "mean_pseudo_gradient",
    "outer_step",
    "pseudo_gradient",
    "quantize_int8",
]

Tensors = dict[str, torch.Tensor]


def _check_finite(delta: Tensors) -> None:
    for name, t in delta.items():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"pseudo-gradient of {name} is not finite")


def _as_sent(spec: JobSpec, delta: Tensors) -> Tensors:
    """The pseudo-gradient as the aggregator receives it: itself, or int8 round-tripped."""
    codec = codec_of(spec)
    if codec == "none":
        return delta
    if codec == "topk":
        raise ValueError(
            "a topk job aggregates the slots' committed updates (aggregate_pseudo_gradients), "
            "not their outputs: the update depends on the slot's residual"
        )
    return {name: dequantize_int8(*quantize_int8(t)) for name, t in delta.items()}


def _mean(global_params: Tensors, deltas: Sequence[Tensors]) -> Tensors:
    """Sum in slot order starting from zeros, then divide once."""
    if not deltas:
        raise ValueError("a round needs at least one accepted output to aggregate")
    mean: Tensors = {}
    for name, g in global_params.items():
        acc = torch.zeros_like(g)
        for delta in deltas:
            acc = acc + delta[name]
        mean[name] = acc / len(deltas)
    return mean


def mean_pseudo_gradient(
    global_params: Tensors, outputs: Sequence[Tensors], spec: JobSpec | None = None
) -> Tensors:
    """``mean_s(G_r - output_s)`` in slot order; with an int8 ``spec``, of the dequantized
    per-slot pseudo-gradients."""
    deltas = [pseudo_gradient(global_params, out) for out in outputs]
    for delta in deltas:
        _check_finite(delta)
    if spec is not None:
        deltas = [_as_sent(spec, d) for d in deltas]
    return _mean(global_params, deltas)


def outer_step(
    spec: JobSpec,
    global_params: Tensors,
    momentum: Tensors,
    delta: Tensors,
) -> tuple[Tensors, Tensors]:
    """One Nesterov-SGD outer step; returns the new parameters and momentum."""
    lr = spec.training.outer_lr
    mu = spec.training.outer_momentum
    new_params: Tensors = {}
    new_momentum: Tensors = {}
    for name, g in global_params.items():
        m = momentum[name] * mu + delta[name]
        new_momentum[name] = m
        new_params[name] = g - (delta[name] + m * mu) * lr
    return new_params, new_momentum


def aggregate(spec: JobSpec, global_model: bytes, slot_outputs: Sequence[bytes]) -> bytes:
    """G_{r+1}'s canonical bytes from G_r's bytes and the slot output checkpoints in slot order."""
    params, momentum = decode_global(spec, global_model)
    outputs = [state_params(decode_checkpoint(spec, out)) for out in slot_outputs]
    delta = mean_pseudo_gradient(params, outputs, spec)
    new_params, new_momentum = outer_step(spec, params, momentum, delta)
    return encode_params(new_params, new_momentum)


def aggregate_pseudo_gradients(
    spec: JobSpec, global_model: bytes, pseudo_gradients: Sequence[bytes]
) -> bytes:
    """G_{r+1} from the nodes' uploaded pseudo-gradients (``encode_pseudo_gradient`` bytes,
    slot order): the bandwidth-saving path. Same bytes as ``aggregate`` on the outputs they
    were computed from, so either path can check the other."""
    params, momentum = decode_global(spec, global_model)
    delta = _mean(params, [decode_pseudo_gradient(spec, pg) for pg in pseudo_gradients])
    new_params, new_momentum = outer_step(spec, params, momentum, delta)
    return encode_params(new_params, new_momentum)
