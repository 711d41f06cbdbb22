"""Determinism settings and seed derivation: the one place that decides how reproducible
training is (torchtitan's ``set_determinism`` is the model).

Verification re-runs a node's segment and compares the result, so every random draw must be a
pure function of protocol values (never of wall clock, process state or thread count) and every
kernel must be deterministic. What this buys, measured by ``bench/determinism.py`` and written up
in ``docs/determinism.md``:

- same machine, same threads: bit-identical checkpoints (exact mode works);
- other thread counts, gradient-accumulation splits, CPUs or a GPU: small float differences
  that tolerance mode absorbs.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import struct

import numpy as np
import torch

__all__ = [
    "derive_seed",
    "portable_normal",
    "portable_uniform_",
    "set_determinism",
]

# cuBLAS needs a fixed workspace to be deterministic; it reads this when CUDA initializes.
_CUBLAS_WORKSPACE = ":4096:8"
_SQRT3 = math.sqrt(3.0)


def derive_seed(tag: str, *values: int) -> int:
    """A 64-bit seed from a domain tag and integers: sha256(tag, NUL, int64 big-endian...).

    Hashing (rather than e.g. ``seed + step``) keeps streams for different (round, slot, step)
    unrelated and makes the rule trivially re-implementable in any language."""
    packed = struct.pack(f">{len(values)}q", *values)
    digest = hashlib.sha256(tag.encode("ascii") + b"\x00" + packed).digest()
    return int.from_bytes(digest[:8], "big")


def set_determinism(seed: int | None = None) -> None:
    """Make torch deterministic and optionally seed every global RNG.

    Cheap and idempotent, so the segment code calls it on every segment: a verifier process
    may not have run anything else first. Seeding globals at segment start means any code that
    does touch a global RNG (e.g. dropout later) is still reproducible from a checkpoint.

    Thread count is deliberately *not* pinned: on this project's ops the CPU kernels give the
    same bits for 1 and 2 threads (tested), and tolerance mode covers the rest."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also NaN-fills every fresh allocation (a debugging aid that caught
    # reads of uninitialized memory); it cost ~15 % of a CPU training step here. Our kernels
    # write what they allocate, so keep the determinism and skip the fill.
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # TF32 changes numerics depending on hardware generation; keep full fp32 matmuls.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)


def portable_normal(
    shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Approximately standard normal samples with bit-identical results on any CPU.

    ``torch.randn`` picks SIMD code paths (and libm calls) per CPU, so its bits differ between
    machines; here only a serial uniform draw and separately rounded add/mul are used
    (Irwin-Hall with 4 terms, rescaled to unit variance), computed in float64 then cast."""
    u = torch.rand((4, *shape), generator=gen, dtype=torch.float64)
    total = (u[0] + u[1]) + (u[2] + u[3])
    return ((total - 2.0) * _SQRT3).to(dtype)


def portable_uniform_(t: torch.Tensor, bound: float, gen: torch.Generator) -> None:
    """Fill ``t`` with U(-bound, bound) using only portable ops: rand in [0, 1) (a serial
    kernel) then separate mul and sub, each correctly rounded (no fused multiply-add)."""
    u = torch.rand(t.shape, generator=gen, dtype=t.dtype)
    t.copy_(u.mul_(2.0 * bound).sub_(bound))
