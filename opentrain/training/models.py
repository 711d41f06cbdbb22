"""Model registry: one place that turns a ``ModelSpec`` into a ``torch.nn.Module``.

Node, verifier and aggregator all build models here, so parameter names, shapes, order and
initial values agree everywhere. Initialization draws only from a local generator seeded by
``init_seed``: building a model never touches (or depends on) global RNG state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from opentrain.spec import GPTSpec, MLPSpec, ModelSpec
from opentrain.training.determinism import derive_seed, portable_normal, portable_uniform_

__all__ = [
    "GPT",
    "MLP",
    "build_model",
    "model_params",
    "parameter_names",
    "register_model",
]

PARAM_DTYPE = torch.float32

Builder = Callable[[Any], nn.Module]
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
    is about to be overwritten (loading a checkpoint) to skip the init cost. Models hold
    parameters only, no buffers: ``to_empty`` would leave a buffer uninitialized too."""
    try:
        builder, init = _BUILDERS[spec.name]
    except KeyError:
        raise ValueError(f"unknown model {spec.name!r}") from None
    with torch.device("meta"):
        model = builder(spec)
    model = model.to_empty(device="cpu").to(PARAM_DTYPE)
    if any(True for _ in model.buffers()):
        raise ValueError(f"model {spec.name!r} has buffers; registered models must not")
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
        name: p.detach().to("cpu", copy=True).contiguous() for name, p in model.named_parameters()
    }


class MLP(nn.Module):
    """Linear/GELU stack: input -> depth x (Linear, GELU) at hidden width -> Linear to logits."""

    def __init__(self, spec: MLPSpec) -> None:
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
            portable_uniform_(module.weight, bound, gen)
            if module.bias is not None:
                portable_uniform_(module.bias, bound, gen)


@register_model("mlp", _init_linear_layers)
def _build_mlp(spec: MLPSpec) -> nn.Module:
    return MLP(spec)


# --- gpt: nanoGPT, byte level ------------------------------------------------------------------


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention written out in plain ops.

    Not ``scaled_dot_product_attention``: that picks a backend (flash, memory-efficient, math)
    per device and build, and some backward kernels are not deterministic; explicit matmuls
    and a masked softmax are the same arithmetic everywhere, and cost little at this size."""

    def __init__(self, spec: GPTSpec) -> None:
        super().__init__()
        self.n_head = spec.n_head
        self.c_attn = nn.Linear(spec.n_embd, 3 * spec.n_embd, bias=False)
        self.c_proj = nn.Linear(spec.n_embd, spec.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        shape = (b, t, self.n_head, c // self.n_head)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.c_proj(y)  # type: ignore[no-any-return]


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, spec: GPTSpec) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(spec.n_embd, bias=False)
        self.attn = CausalSelfAttention(spec)
        self.ln_2 = nn.LayerNorm(spec.n_embd, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(spec.n_embd, 4 * spec.n_embd, bias=False),
            nn.GELU(),
            nn.Linear(4 * spec.n_embd, spec.n_embd, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))  # type: ignore[no-any-return]


class GPT(nn.Module):
    """nanoGPT over bytes: token + position embeddings, blocks, final norm, untied head.

    No biases anywhere (nanoGPT's ``bias=False``). Besides being a little better, this removes
    the attention key bias, whose true gradient is identically zero (softmax ignores a shift
    shared by all keys): its computed gradient is pure rounding noise, which Adam normalizes
    into full-size updates, and that alone made honest re-executions on 1 vs 2 threads differ
    by ~1e-5 instead of ~1e-8 (docs/determinism.md). The head is not tied to the token
    embedding, so every parameter has exactly one name. ``forward`` returns (B, T, 256) logits."""

    def __init__(self, spec: GPTSpec) -> None:
        super().__init__()
        self.block_size = spec.block_size
        self.wte = nn.Embedding(spec.vocab_size, spec.n_embd)
        self.wpe = nn.Embedding(spec.block_size, spec.n_embd)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.n_layer))
        self.ln_f = nn.LayerNorm(spec.n_embd, bias=False)
        self.lm_head = nn.Linear(spec.n_embd, spec.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(f"sequence of {t} tokens exceeds block_size {self.block_size}")
        pos = torch.arange(t, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # type: ignore[no-any-return]


def _fill_normal_(t: torch.Tensor, std: float, gen: torch.Generator) -> None:
    t.copy_(portable_normal(tuple(t.shape), gen).mul_(std))


def _init_gpt(model: nn.Module, gen: torch.Generator) -> None:
    """nanoGPT's init, drawn from ``gen`` in parameter order: N(0, 0.02) weights and
    embeddings, residual projections scaled by 1/sqrt(2 * n_layer), unit norm gains."""
    n_layer = sum(1 for m in model.modules() if isinstance(m, Block))
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
            _fill_normal_(p, 0.02 / math.sqrt(2 * n_layer), gen)
        elif p.dim() >= 2:
            _fill_normal_(p, 0.02, gen)
        else:  # the LayerNorm gains, the only vectors
            p.fill_(1.0)


@register_model("gpt", _init_gpt)
def _build_gpt(spec: GPTSpec) -> nn.Module:
    return GPT(spec)
