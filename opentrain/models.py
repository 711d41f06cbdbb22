"""Model registry: one place that turns a ``ModelSpec`` into a ``torch.nn.Module``.

Node, verifier and aggregator all build models here, so parameter names, shapes, order and
initial values agree everywhere. Initialization draws only from a local generator seeded by
``init_seed``: building a model never touches (or depends on) global RNG state.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from opentrain.determinism import derive_seed
from opentrain.spec import ModelSpec

__all__ = [
    "MLP",
    "build_model",
    "model_params",
    "parameter_names",
    "register_model",
]

PARAM_DTYPE = torch.float32

Builder = Callable[[ModelSpec], nn.Module]
Initializer = Callable[[nn.Module, torch.Generator], None]

_BUILDERS: dict[str, tuple[Builder, Initializer]] = {}


def register_model(name: str, init: Initializer) -> Callable[[Builder], Builder]:
    """Register a builder (constructs the module, values arbitrary) and its seeded initializer."""

    def decorate(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} registered twice")
        _BUILDERS[name] = (builder, init)
        return builder

    return decorate


def build_model(spec: ModelSpec, *, initialize: bool = True) -> nn.Module:
    """Build the spec's model on CPU in float32.

    With ``initialize=False`` the parameters are uninitialized memory: use it when every value
    is about to be overwritten (loading a checkpoint) to skip the init cost."""
    try:
        builder, init = _BUILDERS[spec.name]
    except KeyError:
        raise ValueError(f"unknown model {spec.name!r}") from None
    with torch.device("meta"):
        model = builder(spec)
    model = model.to_empty(device="cpu").to(PARAM_DTYPE)
    if initialize:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(derive_seed("opentrain/model-init", spec.init_seed))
        with torch.no_grad():
            init(model, gen)
    return model


def parameter_names(model: nn.Module) -> list[str]:
    """Parameter names in registration order, the order every encoding and loop uses."""
    return [name for name, _ in model.named_parameters()]


def model_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU copies of the parameters, in ``parameter_names`` order."""
    return {
        name: p.detach().to("cpu", copy=True).contiguous()
        for name, p in model.named_parameters()
    }


def _uniform_(t: torch.Tensor, bound: float, gen: torch.Generator) -> None:
    """Fill with U(-bound, bound) using only portable ops: rand in [0, 1) (a serial kernel)
    then separate mul and sub, each correctly rounded (no fused multiply-add anywhere)."""
    u = torch.rand(t.shape, generator=gen, dtype=t.dtype)
    t.copy_(u.mul_(2.0 * bound).sub_(bound))


class MLP(nn.Module):
    """Linear/GELU stack: input -> depth x (Linear, GELU) at hidden width -> Linear to logits."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = spec.input_dim
        for _ in range(spec.depth):
            layers += [nn.Linear(width, spec.hidden_dim), nn.GELU()]
            width = spec.hidden_dim
        layers.append(nn.Linear(width, spec.output_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


def _init_linear_layers(model: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default Linear init (U(+-1/sqrt(fan_in)) for weight and bias), drawn from
    ``gen`` in module order."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.in_features)
            _uniform_(module.weight, bound, gen)
            if module.bias is not None:
                _uniform_(module.bias, bound, gen)


@register_model("mlp", _init_linear_layers)
def _build_mlp(spec: ModelSpec) -> nn.Module:
    return MLP(spec)
