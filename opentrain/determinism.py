"""Process-wide determinism switches and seed derivation.

Verification re-runs a node's segment and compares digests, so every kernel must be
deterministic and every random draw must be a pure function of protocol values
(never of wall clock, process state or thread count).
"""

from __future__ import annotations

import hashlib
import os
import random
import struct

import numpy as np
import torch

__all__ = ["derive_seed", "set_determinism"]

# cuBLAS needs a fixed workspace to be deterministic; it reads this when CUDA initializes.
_CUBLAS_WORKSPACE = ":4096:8"


def derive_seed(tag: str, *values: int) -> int:
    """A 64-bit seed from a domain tag and integers: sha256(tag, NUL, int64 big-endian...).

    Hashing (rather than e.g. ``seed + step``) keeps streams for different (round, slot, step)
    unrelated and makes the rule trivially re-implementable in any language."""
    packed = struct.pack(f">{len(values)}q", *values)
    digest = hashlib.sha256(tag.encode("ascii") + b"\x00" + packed).digest()
    return int.from_bytes(digest[:8], "big")


def set_determinism(seed: int | None = None) -> None:
    """Make torch deterministic (torchtitan style) and optionally seed every global RNG.

    Cheap and idempotent, so the segment code calls it on every segment: a verifier process
    may not have run anything else first. Seeding globals at segment start means any code that
    does touch a global RNG (e.g. dropout later) is still reproducible from a checkpoint."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # TF32 changes numerics depending on hardware generation; keep full fp32 matmuls.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
