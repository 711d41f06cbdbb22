"""Pseudo-gradient codecs: what a slot uploads for aggregation, in one canonical byte encoding.

The codec is ``diloco.compression`` (``training.pseudo_gradient = "int8"`` is the legacy
spelling of ``int8``). Every encoding is a safetensors object without metadata whose tensors
are packed flat in the model's parameter order, so its header stays a few hundred bytes:

- ``none``: ``pg`` (P,) float32;
- ``int8``: ``pg.q`` (P,) uint8 codes and ``pg.scales`` (n_tensors, 2) float32 (lo, scale),
  per-tensor min-max as in INTELLECT-1;
- ``topk``: each tensor is cut into chunks of ``C = min(diloco.chunk, numel)`` elements (the
  last one zero-padded); in every chunk the ``k = max(1, round(density * C))`` entries of
  largest magnitude are kept (a stable sort: ties go to the lower index), ``pg.idx`` holds
  their in-chunk indices (int16, ascending within the chunk), ``pg.codes`` their ``bits``-bit
  codes packed little-end first into bytes (code = sign << (bits - 1) | level), and
  ``pg.scales`` (n_chunks, 2) float32 the chunk's ``(lo, step)``: ``lo`` the smallest kept
  magnitude, ``step = (max - lo) / L`` with ``L = 2 ** (bits - 1)`` levels per sign, and a kept
  entry decodes to ``+-(lo + step * (level + 0.5))``.

``topk`` carries error feedback (SparseLoCo): a slot compresses ``v = delta + decay * e`` where
``delta = G_r - output`` and ``e`` is the residual slot ``s`` committed in round ``r - 1``
(zeros in round 0); what it did not send, ``v - decode(encode(v))``, is its new residual,
committed with the contribution (``slot_update``) so that anyone can recompute both objects
from the output checkpoint and check them byte for byte.

All of it is integer arithmetic (sort, gather, shifts, masks) and elementwise float32 ops, one
correctly rounded op at a time, on the CPU: the same bytes on any machine and thread count.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import safetensors.torch
import torch

from opentrain.spec import JobSpec, ModelSpec
from opentrain.training.checkpoint import CheckpointError, load_checked
from opentrain.training.models import build_model

__all__ = [
    "Codec",
    "codec_of",
    "decode_pseudo_gradient",
    "decode_residual",
    "dequantize_int8",
    "encode_pseudo_gradient",
    "encode_residual",
    "has_residual",
    "pseudo_gradient",
    "quantize_int8",
    "slot_update",
    "zero_residual",
]

Tensors = dict[str, torch.Tensor]
Codec = Literal["none", "int8", "topk"]
LEVELS = 255  # uint8 codes 0..255
_Expected = dict[str, tuple[tuple[int, ...], torch.dtype]]


def codec_of(spec: JobSpec) -> Codec:
    """The job's codec, resolving the legacy ``training.pseudo_gradient`` spelling."""
    if spec.diloco.compression == "none" and spec.training.pseudo_gradient == "int8":
        return "int8"
    return spec.diloco.compression


def has_residual(spec: JobSpec) -> bool:
    """Does a slot commit an update and a residual (error feedback) with its contribution?"""
    return codec_of(spec) == "topk"


@functools.lru_cache(maxsize=16)
def _model_shapes(model: ModelSpec) -> tuple[tuple[str, tuple[int, ...]], ...]:
    built = build_model(model, initialize=False)
    return tuple((name, tuple(p.shape)) for name, p in built.named_parameters())


def _shapes(spec: JobSpec) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape, in the model's parameter order (the packing order)."""
    return dict(_model_shapes(spec.model))


def pseudo_gradient(global_params: Tensors, output: Tensors) -> Tensors:
    """``G_r - output_s``: the direction one slot moved the model, negated."""
    return {name: g - output[name] for name, g in global_params.items()}


def _check_finite(delta: Tensors, what: str = "pseudo-gradient") -> None:
    for name, t in delta.items():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{what} of {name} is not finite")


def _flat(spec: JobSpec, tensors: Tensors, what: str) -> list[torch.Tensor]:
    names = list(_shapes(spec))
    if set(names) != set(tensors):
        raise ValueError(f"{what} names do not match the model")
    return [tensors[n].detach().to("cpu", torch.float32).reshape(-1) for n in names]


def _unflat(spec: JobSpec, flat: torch.Tensor) -> Tensors:
    shapes = _shapes(spec)
    sizes = [math.prod(s) for s in shapes.values()]
    return {
        name: piece.reshape(shape).clone()
        for piece, (name, shape) in zip(flat.split(sizes), shapes.items(), strict=True)
    }


# -- int8 -----------------------------------------------------------------------------------


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


# -- top-k ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """One tensor's chunking under ``topk``."""

    name: str
    numel: int
    chunk: int  # C
    chunks: int  # m
    k: int


def _layout(spec: JobSpec) -> list[_Block]:
    d = spec.diloco
    blocks = []
    for name, shape in _shapes(spec).items():
        numel = math.prod(shape)
        chunk = min(d.chunk, numel)
        k = min(chunk, max(1, math.floor(d.density * chunk + 0.5)))
        blocks.append(_Block(name, numel, chunk, -(-numel // chunk), k))
    return blocks


def _topk_expected(spec: JobSpec) -> _Expected:
    blocks = _layout(spec)
    kept = sum(b.chunks * b.k for b in blocks)
    per_byte = 8 // spec.diloco.bits
    return {
        "pg.idx": ((kept,), torch.int16),
        "pg.codes": ((-(-kept // per_byte),), torch.uint8),
        "pg.scales": ((sum(b.chunks for b in blocks), 2), torch.float32),
    }


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """``bits``-bit codes (uint8) packed into bytes, the first code in the lowest bits."""
    per = 8 // bits
    padded = torch.cat([codes, codes.new_zeros((-codes.numel()) % per)]).to(torch.int32)
    shifts = torch.arange(per, dtype=torch.int32) * bits
    return (padded.reshape(-1, per) << shifts).sum(dim=1, dtype=torch.int32).to(torch.uint8)


def _unpack(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    per = 8 // bits
    shifts = torch.arange(per, dtype=torch.int32) * bits
    codes = (packed.to(torch.int32).unsqueeze(1) >> shifts) & ((1 << bits) - 1)
    return codes.reshape(-1)[:count].to(torch.uint8)


def _decode_values(
    codes: torch.Tensor, lo: torch.Tensor, step: torch.Tensor, bits: int
) -> torch.Tensor:
    """``+-(lo + step * (level + 0.5))`` per kept entry; ``lo``/``step`` broadcast per chunk."""
    level = (codes & ((1 << (bits - 1)) - 1)).to(torch.float32) + 0.5  # exact
    magnitude = lo + step * level
    return torch.where((codes >> (bits - 1)).bool(), -magnitude, magnitude)


def _topk_encode(spec: JobSpec, flat: list[torch.Tensor]) -> tuple[bytes, list[torch.Tensor]]:
    """The ``topk`` bytes of the flat tensors and what they decode to (flat, same sizes)."""
    bits = spec.diloco.bits
    levels = 1 << (bits - 1)
    idx_parts, code_parts, scale_parts, sent = [], [], [], []
    for block, x in zip(_layout(spec), flat, strict=True):
        rows = torch.cat([x, x.new_zeros(block.chunks * block.chunk - block.numel)])
        rows = rows.reshape(block.chunks, block.chunk)
        magnitude = rows.abs()
        order = torch.sort(magnitude, dim=1, descending=True, stable=True).indices
        idx = torch.sort(order[:, : block.k], dim=1).values
        kept = rows.gather(1, idx)
        kept_mag = kept.abs()
        lo = kept_mag.amin(dim=1, keepdim=True)
        step = (kept_mag.amax(dim=1, keepdim=True) - lo) / levels
        safe = torch.where(step > 0, step, torch.ones_like(step))
        level = torch.floor((kept_mag - lo) / safe).clamp_(0, levels - 1)
        level = torch.where(step > 0, level, torch.zeros_like(level)).to(torch.uint8)
        codes = ((kept < 0).to(torch.uint8) << (bits - 1)) | level
        dense = torch.zeros_like(rows).scatter_(1, idx, _decode_values(codes, lo, step, bits))
        sent.append(dense.reshape(-1)[: block.numel])
        idx_parts.append(idx.reshape(-1).to(torch.int16))
        code_parts.append(codes.reshape(-1))
        scale_parts.append(torch.cat([lo, step], dim=1))
    tensors = {
        "pg.idx": torch.cat(idx_parts).contiguous(),
        "pg.codes": _pack(torch.cat(code_parts), bits).contiguous(),
        "pg.scales": torch.cat(scale_parts).contiguous(),
    }
    return safetensors.torch.save(tensors, metadata=None), sent


def _topk_decode(spec: JobSpec, data: bytes) -> list[torch.Tensor]:
    """Flat dense tensors from ``topk`` bytes, refusing anything ``_topk_encode`` cannot give:
    indices out of range or not strictly ascending in a chunk, non-finite or negative scales."""
    bits = spec.diloco.bits
    tensors = load_checked(data, _topk_expected(spec), None, "pseudo-gradient")
    blocks = _layout(spec)
    kept = [b.chunks * b.k for b in blocks]
    scales = tensors["pg.scales"]
    if not bool(torch.isfinite(scales).all()) or bool((scales < 0).any()):
        raise CheckpointError("pseudo-gradient: chunk scales must be finite and non-negative")
    codes = _unpack(tensors["pg.codes"], bits, sum(kept))
    chunk_scales = scales.split([b.chunks for b in blocks])
    out = []
    for block, idx, code, scale in zip(
        blocks, tensors["pg.idx"].split(kept), codes.split(kept), chunk_scales, strict=True
    ):
        idx = idx.to(torch.int64).reshape(block.chunks, block.k)
        if bool((idx < 0).any()) or bool((idx >= block.chunk).any()):
            raise CheckpointError(f"pseudo-gradient: index out of range in {block.name}")
        if block.k > 1 and not bool((idx[:, 1:] > idx[:, :-1]).all()):
            raise CheckpointError(f"pseudo-gradient: indices not ascending in {block.name}")
        values = _decode_values(
            code.reshape(block.chunks, block.k), scale[:, :1], scale[:, 1:], bits
        )
        rows = torch.zeros(block.chunks, block.chunk, dtype=torch.float32)
        out.append(rows.scatter_(1, idx, values).reshape(-1)[: block.numel])
    return out


# -- the codec interface --------------------------------------------------------------------


def encode_pseudo_gradient(spec: JobSpec, delta: Tensors) -> bytes:
    """Canonical safetensors bytes of ``delta`` under the job's codec (module docstring).

    Under ``topk`` this is the update of a slot with a zero residual (round 0); later rounds
    use ``slot_update``."""
    _check_finite(delta)
    flat = _flat(spec, delta, "pseudo-gradient")
    codec = codec_of(spec)
    if codec == "none":
        return safetensors.torch.save({"pg": torch.cat(flat).contiguous()}, metadata=None)
    if codec == "topk":
        return _topk_encode(spec, flat)[0]
    packed = [quantize_int8(t) for t in flat]
    codes = torch.cat([q for q, _, _ in packed])
    scales = torch.stack([torch.stack((lo, scale)) for _, lo, scale in packed])
    return safetensors.torch.save(
        {"pg.q": codes.contiguous(), "pg.scales": scales.contiguous()}, metadata=None
    )


def decode_pseudo_gradient(spec: JobSpec, data: bytes) -> Tensors:
    """The (dequantized, densified) pseudo-gradient from ``encode_pseudo_gradient`` or
    ``slot_update`` bytes, validated against the model's exact sizes and dtypes."""
    shapes = _shapes(spec)
    sizes = [math.prod(shape) for shape in shapes.values()]
    codec = codec_of(spec)
    if codec == "topk":
        delta = _unflat(spec, torch.cat(_topk_decode(spec, data)))
    elif codec == "int8":
        expected: _Expected = {
            "pg.q": ((sum(sizes),), torch.uint8),
            "pg.scales": ((len(shapes), 2), torch.float32),
        }
        tensors = load_checked(data, expected, None, "pseudo-gradient")
        delta = {}
        pieces = tensors["pg.q"].split(sizes)
        for i, (piece, (name, shape)) in enumerate(zip(pieces, shapes.items(), strict=True)):
            lo, scale = tensors["pg.scales"][i]
            delta[name] = dequantize_int8(piece.reshape(shape), lo, scale)
    else:
        expected = {"pg": ((sum(sizes),), torch.float32)}
        delta = _unflat(spec, load_checked(data, expected, None, "pseudo-gradient")["pg"])
    _check_finite(delta)
    return delta


# -- error feedback -------------------------------------------------------------------------


def zero_residual(spec: JobSpec) -> Tensors:
    """The residual every slot starts from in round 0."""
    return {name: torch.zeros(shape, dtype=torch.float32) for name, shape in _shapes(spec).items()}


def encode_residual(spec: JobSpec, residual: Tensors) -> bytes:
    """Canonical bytes of a residual: ``residual`` (P,) float32 in parameter order."""
    _check_finite(residual, "residual")
    flat = torch.cat(_flat(spec, residual, "residual")).contiguous()
    return safetensors.torch.save({"residual": flat}, metadata=None)


def decode_residual(spec: JobSpec, data: bytes) -> Tensors:
    """A committed residual, validated (exact size and dtype, finite)."""
    total = sum(math.prod(shape) for shape in _shapes(spec).values())
    tensors = load_checked(data, {"residual": ((total,), torch.float32)}, None, "residual")
    residual = _unflat(spec, tensors["residual"])
    _check_finite(residual, "residual")
    return residual


def slot_update(
    spec: JobSpec, global_params: Tensors, output: Tensors, residual: Tensors
) -> tuple[bytes, bytes]:
    """A ``topk`` slot's two committed objects: ``(update, new residual)`` bytes.

    ``v = (G_r - output) + decay * residual``; the update is ``encode(v)``, the new residual
    ``v - decode(update)``. Node and verifier both call this; the verifier compares bytes."""
    if not has_residual(spec):
        raise ValueError(f"codec {codec_of(spec)!r} has no error feedback")
    delta = pseudo_gradient(global_params, output)
    _check_finite(delta)
    flat_delta = _flat(spec, delta, "pseudo-gradient")
    flat_res = _flat(spec, residual, "residual")
    decay = torch.tensor(spec.diloco.error_decay, dtype=torch.float32)
    v = [d + r * decay for d, r in zip(flat_delta, flat_res, strict=True)]
    update, sent = _topk_encode(spec, v)
    new_residual = torch.cat([a - b for a, b in zip(v, sent, strict=True)])
    return update, encode_residual(spec, _unflat(spec, new_residual))
