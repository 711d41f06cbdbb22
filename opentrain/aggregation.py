"""DiLoCo aggregation: G_{r+1} from G_r and the round's accepted slot outputs.

Outer step = SGD with Nesterov momentum on the mean pseudo-gradient
``delta = mean_s(G_r - output_s)`` over slots in slot order:
``m' = mu * m + delta``; ``G_{r+1} = G_r - lr * (delta + mu * m')`` (torch.optim.SGD's Nesterov
form). Pure elementwise float32 arithmetic in a fixed order, so any CPU reproduces the bytes and
the digest of G_{r+1} is checked exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from opentrain.checkpoint import decode_checkpoint, decode_global, encode_params, state_params
from opentrain.spec import JobSpec


def mean_pseudo_gradient(
    global_params: dict[str, torch.Tensor], outputs: Sequence[dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """``mean_s(G_r - output_s)``, summed in slot order then divided once."""
    if not outputs:
        raise ValueError("a round needs at least one accepted output to aggregate")
    delta: dict[str, torch.Tensor] = {}
    for name, g in global_params.items():
        acc = torch.zeros_like(g)
        for out in outputs:
            acc = acc + (g - out[name])
        delta[name] = acc / len(outputs)
    return delta


def outer_step(
    spec: JobSpec,
    global_params: dict[str, torch.Tensor],
    momentum: dict[str, torch.Tensor],
    delta: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One Nesterov-SGD outer step; returns the new parameters and momentum."""
    lr = spec.training.outer_lr
    mu = spec.training.outer_momentum
    new_params: dict[str, torch.Tensor] = {}
    new_momentum: dict[str, torch.Tensor] = {}
    for name, g in global_params.items():
        m = momentum[name] * mu + delta[name]
        new_momentum[name] = m
        new_params[name] = g - (delta[name] + m * mu) * lr
    return new_params, new_momentum


def aggregate(spec: JobSpec, global_model: bytes, slot_outputs: Sequence[bytes]) -> bytes:
    """G_{r+1}'s canonical bytes from G_r's bytes and the slot output checkpoints in slot order."""
    params, momentum = decode_global(spec, global_model)
    outputs = [state_params(decode_checkpoint(spec, out)) for out in slot_outputs]
    delta = mean_pseudo_gradient(params, outputs)
    new_params, new_momentum = outer_step(spec, params, momentum, delta)
    return encode_params(new_params, new_momentum)
