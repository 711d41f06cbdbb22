"""Pseudo-gradient codecs: what a slot uploads for aggregation, in one canonical byte encoding.

The codec is ``diloco.compression`` (``training.pseudo_gradient = "int8"`` is the legacy
spelling of ``int8``). Every encoding is a safetensors object without metadata whose tensors
are packed flat in the model's parameter order, so its header stays a few hundred bytes:

- ``none``: ``pg`` (P,) float32;
- ``int8``: ``pg.q`` (P,) uint8 codes and ``pg.scales`` (n_tensors, 2) float32 (lo, scale),
  per-tensor min-max as in INTELLECT-1;
- ``topk``: each tensor of ``n`` elements is cut into ``m = ceil(n / diloco.chunk)`` chunks
  of equal length ``C = ceil(n / m)`` (zero-padded by fewer than ``m`` elements, so every
  chunk is mostly real and ``density`` is the density actually sent); in every chunk the
  ``k = max(1, round(density * C))`` entries of largest magnitude are kept (a stable sort:
  ties go to the lower index). Two tensors: ``pg.bits``, one byte stream of three parts, and
  ``pg.scales`` (n_chunks, 2) bfloat16, each chunk's ``(lo, step)``: ``lo`` the smallest kept
  magnitude, ``step = (max - lo) / L`` with ``L = 2 ** (bits - 1)`` levels per sign (each
  rounded to bfloat16 before the levels are chosen); a kept entry decodes to
  ``+-(lo + step * (level + 0.5))`` in float32. The parts of ``pg.bits``, each padded to a
  whole byte, fixed lengths first:

  1. the kept entries' ``bits``-bit codes (code = sign << (bits - 1) | level);
  2. the Rice remainders of their in-chunk indices: indices ascending are sent as gaps
     ``g = idx_j - idx_{j-1} - 1`` (``idx_{-1} = -1``) with the tensor's shift
     ``s = floor(log2((C - k) // k))`` (0 when that is 0), here the low ``s`` bits of every gap;
  3. the rest of each gap, ``g >> s``, in unary (that many 1 bits, then a 0; padded with 1
     bits), the only part of variable length.

  That is about ``log2(1 / density) + 1.5`` bits per index instead of 16, plus ``bits`` per
  value, 32 bits of scales per chunk and a header of about 140 bytes. Every bit stream is
  packed first bit lowest.

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

    @property
    def shift(self) -> int:
        """The Rice shift of the index gaps: about log2 of the mean gap ``(C - k) / k``."""
        return max(0, ((self.chunk - self.k) // self.k).bit_length() - 1)

    @property
    def kept(self) -> int:
        return self.chunks * self.k

    @property
    def max_unary_bits(self) -> int:
        """The most unary bits this tensor's gaps can take: the gaps of a chunk sum to at most
        ``C - k``, so their quotients to at most ``(C - k) >> shift``, plus a 0 per index."""
        return self.kept + self.chunks * ((self.chunk - self.k) >> self.shift)


def _layout(spec: JobSpec) -> list[_Block]:
    """Each tensor's equal chunks: as few as ``diloco.chunk`` allows, padded by fewer than
    their count, so that a short last chunk never keeps ``k`` entries of mostly padding."""
    d = spec.diloco
    blocks = []
    for name, shape in _shapes(spec).items():
        numel = math.prod(shape)
        chunks = -(-numel // d.chunk)
        chunk = -(-numel // chunks)
        k = min(chunk, max(1, math.floor(d.density * chunk + 0.5)))
        blocks.append(_Block(name, numel, chunk, chunks, k))
    return blocks


@dataclass(frozen=True)
class _StreamParts:
    """Byte lengths of the parts of ``pg.bits``: codes and remainders are fixed by the
    layout, the unary quotients take at least one byte and at most ``gaps_max``."""

    codes: int
    rem: int
    gaps_max: int

    @property
    def fixed(self) -> int:
        return self.codes + self.rem


def _stream_parts(spec: JobSpec, blocks: list[_Block]) -> _StreamParts:
    kept = sum(b.kept for b in blocks)
    return _StreamParts(
        codes=-(-kept * spec.diloco.bits // 8),
        rem=-(-sum(b.kept * b.shift for b in blocks) // 8),
        gaps_max=-(-sum(b.max_unary_bits for b in blocks) // 8),
    )


def _topk_expected(spec: JobSpec) -> _Expected:
    """Names, shapes and dtypes of a ``topk`` upload; ``pg.bits`` is at most that long."""
    blocks = _layout(spec)
    parts = _stream_parts(spec, blocks)
    return {
        "pg.bits": ((parts.fixed + parts.gaps_max,), torch.uint8),
        "pg.scales": ((sum(b.chunks for b in blocks), 2), torch.bfloat16),
    }


def _rice_encode(
    blocks: list[_Block], indices: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unary quotients and the remainders (packed bytes) of each block's (chunks, k)
    ascending in-chunk indices."""
    quotients, remainder_bits = [], []
    for block, idx in zip(blocks, indices, strict=True):
        previous = torch.cat([idx.new_full((block.chunks, 1), -1), idx[:, :-1]], dim=1)
        gaps = (idx - previous - 1).reshape(-1)
        quotients.append(gaps >> block.shift)
        low = torch.arange(block.shift, dtype=torch.int64)
        remainder_bits.append(((gaps.unsqueeze(1) >> low) & 1).reshape(-1))
    q = torch.cat(quotients)
    zeros = torch.cumsum(q + 1, dim=0) - 1  # where each index's unary code ends
    total = int(zeros[-1]) + 1
    unary = torch.ones(total + (-total) % 8, dtype=torch.uint8)
    unary[zeros] = 0
    rem = torch.cat(remainder_bits).to(torch.uint8)
    return _pack(unary, 1), _pack(rem, 1)


def _rice_decode(blocks: list[_Block], gaps: torch.Tensor, rem: torch.Tensor) -> list[torch.Tensor]:
    """Each block's (chunks, k) in-chunk indices from the unary quotients and the remainders,
    refusing another number of codes, a whole byte of padding, or an index past its chunk."""
    kept = sum(b.kept for b in blocks)
    unary = _unpack(gaps, 1, 8 * gaps.numel())
    zeros = torch.nonzero(unary == 0).reshape(-1)
    if zeros.numel() != kept or unary.numel() - int(zeros[-1]) - 1 >= 8:
        raise CheckpointError(
            f"pseudo-gradient: index stream holds {zeros.numel()} codes, not {kept}"
        )
    q = torch.diff(zeros, prepend=zeros.new_full((1,), -1)) - 1
    rem_bits = _unpack(rem, 1, 8 * rem.numel()).to(torch.int64)
    out, at_q, at_bit = [], 0, 0
    for block in blocks:
        n, shift = block.kept, block.shift
        low = rem_bits[at_bit : at_bit + n * shift].reshape(n, shift)
        remainder = (low << torch.arange(shift, dtype=torch.int64)).sum(dim=1)
        gap = (q[at_q : at_q + n] << shift) | remainder
        idx = torch.cumsum(gap.reshape(block.chunks, block.k) + 1, dim=1) - 1
        if bool((idx[:, -1] >= block.chunk).any()):
            raise CheckpointError(f"pseudo-gradient: index out of range in {block.name}")
        out.append(idx)
        at_q, at_bit = at_q + n, at_bit + n * shift
    return out


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


def _chunk_scales(kept_mag: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each chunk's ``(lo, step)`` as sent: bfloat16, then back to float32 (exactly). ``lo``
    may round up past the largest kept magnitude (one entry kept): ``step`` is then 0."""
    lo = kept_mag.amin(dim=1, keepdim=True).to(torch.bfloat16).float()
    span = (kept_mag.amax(dim=1, keepdim=True) - lo).clamp_(min=0.0)
    step = (span / levels).to(torch.bfloat16).float()
    if not bool(torch.isfinite(step).all()):
        raise ValueError("pseudo-gradient is too large for bfloat16 chunk scales")
    return lo, step


def _topk_encode(spec: JobSpec, flat: list[torch.Tensor]) -> tuple[bytes, list[torch.Tensor]]:
    """The ``topk`` bytes of the flat tensors and what they decode to (flat, same sizes)."""
    bits = spec.diloco.bits
    levels = 1 << (bits - 1)
    blocks = _layout(spec)
    idx_parts, code_parts, scale_parts, sent = [], [], [], []
    for block, x in zip(blocks, flat, strict=True):
        rows = torch.cat([x, x.new_zeros(block.chunks * block.chunk - block.numel)])
        rows = rows.reshape(block.chunks, block.chunk)
        order = torch.sort(rows.abs(), dim=1, descending=True, stable=True).indices
        idx = torch.sort(order[:, : block.k], dim=1).values
        kept = rows.gather(1, idx)
        kept_mag = kept.abs()
        lo, step = _chunk_scales(kept_mag, levels)
        safe = torch.where(step > 0, step, torch.ones_like(step))
        level = torch.floor((kept_mag - lo) / safe).clamp_(0, levels - 1)
        level = torch.where(step > 0, level, torch.zeros_like(level)).to(torch.uint8)
        codes = ((kept < 0).to(torch.uint8) << (bits - 1)) | level
        dense = torch.zeros_like(rows).scatter_(1, idx, _decode_values(codes, lo, step, bits))
        sent.append(dense.reshape(-1)[: block.numel])
        idx_parts.append(idx)
        code_parts.append(codes.reshape(-1))
        scale_parts.append(torch.cat([lo, step], dim=1))
    unary, rem = _rice_encode(blocks, idx_parts)
    tensors = {
        "pg.bits": torch.cat([_pack(torch.cat(code_parts), bits), rem, unary]),
        "pg.scales": torch.cat(scale_parts).to(torch.bfloat16),
    }
    tensors = {name: t.contiguous() for name, t in tensors.items()}
    return safetensors.torch.save(tensors, metadata=None), sent


def _topk_decode(spec: JobSpec, data: bytes) -> list[torch.Tensor]:
    """Flat dense tensors from ``topk`` bytes, refusing anything ``_topk_encode`` cannot give:
    a stream too short for its fixed parts, an index stream with the wrong number of codes or
    an index past its chunk (gaps make them strictly ascending by construction), non-finite
    or negative scales."""
    bits = spec.diloco.bits
    tensors = load_checked(
        data, _topk_expected(spec), None, "pseudo-gradient", frozenset({"pg.bits"})
    )
    blocks = _layout(spec)
    parts = _stream_parts(spec, blocks)
    stream = tensors["pg.bits"]
    if stream.numel() <= parts.fixed:
        raise CheckpointError(
            f"pseudo-gradient: pg.bits holds {stream.numel()} bytes, "
            f"not more than the {parts.fixed} of its codes and remainders"
        )
    kept = [b.kept for b in blocks]
    scales = tensors["pg.scales"].float()
    if not bool(torch.isfinite(scales).all()) or bool((scales < 0).any()):
        raise CheckpointError("pseudo-gradient: chunk scales must be finite and non-negative")
    indices = _rice_decode(blocks, stream[parts.fixed :], stream[parts.codes : parts.fixed])
    codes = _unpack(stream[: parts.codes], bits, sum(kept))
    chunk_scales = scales.split([b.chunks for b in blocks])
    out = []
    for block, idx, code, scale in zip(
        blocks, indices, codes.split(kept), chunk_scales, strict=True
    ):
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
