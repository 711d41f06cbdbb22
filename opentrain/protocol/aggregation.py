"""DiLoCo aggregation: G_{r+1} from G_r and the round's accepted slot outputs.

Outer step = SGD with Nesterov momentum on the mean pseudo-gradient
``delta = mean_s(G_r - output_s)`` over slots in slot order:
``m' = mu * m + delta``; ``G_{r+1} = G_r - lr * (delta + mu * m')`` (torch.optim.SGD's Nesterov
form), with the outer momentum ``m`` stored in the global checkpoint.

With ``training.pseudo_gradient = "int8"`` each slot's pseudo-gradient is what a node would
upload in 8 bits (per-tensor min-max, as in INTELLECT-1): 256 levels between the tensor's min
and max, so a node sends ~1/4 of the float32 bytes. The aggregate uses the dequantized values.

Everything is elementwise float32 arithmetic, one correctly rounded op at a time (no fused
multiply-add, no reductions except exact min/max), on the CPU in parameter and slot order, so
any machine reproduces G_{r+1}'s bytes and its digest is checked exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import safetensors.torch
import torch

from opentrain.spec import JobSpec
from opentrain.training.checkpoint import (
    decode_checkpoint,
    decode_global,
    encode_params,
    load_checked,
    state_params,
)
from opentrain.training.models import build_model

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
LEVELS = 255  # uint8 codes 0..255


def quantize_int8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-tensor min-max 8-bit codes: ``(codes uint8, lo, scale)`` with float32 scalars.

    ``code = round((t - lo) / scale)``, ``scale = (max - min) / 255``; a constant tensor gets
    scale 1 (all codes 0). Ties round to even; every op is exact IEEE float32."""
    x = t.detach().to("cpu", torch.float32)
    lo = x.min()
    scale = (x.max() - lo) / LEVELS
    if float(scale) == 0.0:
        scale = torch.ones((), dtype=torch.float32)
    codes = torch.round((x - lo) / scale).clamp_(0, LEVELS).to(torch.uint8)
    return codes, lo, scale


def dequantize_int8(codes: torch.Tensor, lo: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``codes * scale + lo`` in float32 (a mul then an add, each rounded)."""
    return codes.to(torch.float32) * scale + lo


def pseudo_gradient(global_params: Tensors, output: Tensors) -> Tensors:
    """``G_r - output_s``: the direction one slot moved the model, negated."""
    return {name: g - output[name] for name, g in global_params.items()}


def _check_finite(delta: Tensors) -> None:
    for name, t in delta.items():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"pseudo-gradient of {name} is not finite")


def _as_sent(spec: JobSpec, delta: Tensors) -> Tensors:
    """The pseudo-gradient as the aggregator receives it: itself, or int8 round-tripped."""
    if spec.training.pseudo_gradient == "float32":
        return delta
    return {name: dequantize_int8(*quantize_int8(t)) for name, t in delta.items()}


def _shapes(spec: JobSpec) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape, in the model's parameter order (the packing order)."""
    model = build_model(spec.model, initialize=False)
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def encode_pseudo_gradient(spec: JobSpec, delta: Tensors) -> bytes:
    """Canonical safetensors bytes of what a node uploads for aggregation.

    All tensors are packed flat in parameter order so the header stays a few hundred bytes:
    float32: ``pg`` (P,); int8: codes ``pg.q`` (P,) uint8 and ``pg.scales`` (n, 2) float32
    holding each tensor's (lo, scale)."""
    _check_finite(delta)
    names = list(_shapes(spec))
    if set(names) != set(delta):
        raise ValueError("pseudo-gradient names do not match the model")
    if spec.training.pseudo_gradient == "float32":
        flat = torch.cat([delta[n].detach().to("cpu", torch.float32).reshape(-1) for n in names])
        return safetensors.torch.save({"pg": flat.contiguous()}, metadata=None)
    packed = [quantize_int8(delta[n]) for n in names]
    codes = torch.cat([q.reshape(-1) for q, _, _ in packed])
    scales = torch.stack([torch.stack((lo, scale)) for _, lo, scale in packed])
    return safetensors.torch.save(
        {"pg.q": codes.contiguous(), "pg.scales": scales.contiguous()}, metadata=None
    )


def decode_pseudo_gradient(spec: JobSpec, data: bytes) -> Tensors:
    """The (dequantized) pseudo-gradient from ``encode_pseudo_gradient`` bytes, validated
    against the model's exact sizes and dtypes."""
    shapes = _shapes(spec)
    sizes = [math.prod(shape) for shape in shapes.values()]
    total = sum(sizes)
    int8 = spec.training.pseudo_gradient == "int8"
    expected: dict[str, tuple[tuple[int, ...], torch.dtype]] = (
        {"pg.q": ((total,), torch.uint8), "pg.scales": ((len(shapes), 2), torch.float32)}
        if int8
        else {"pg": ((total,), torch.float32)}
    )
    tensors = load_checked(data, expected, None, "pseudo-gradient")
    flat = tensors["pg.q"] if int8 else tensors["pg"]
    delta: Tensors = {}
    for i, (piece, (name, shape)) in enumerate(zip(flat.split(sizes), shapes.items(), strict=True)):
        if int8:
            lo, scale = tensors["pg.scales"][i]
            delta[name] = dequantize_int8(piece.reshape(shape), lo, scale)
        else:
            delta[name] = piece.reshape(shape).clone()
    _check_finite(delta)
    return delta


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
