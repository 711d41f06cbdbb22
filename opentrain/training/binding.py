"""Whose work a slot is: the claimant, the job and its spec, bound into every checkpoint.

A :class:`Binding` is written into each checkpoint's safetensors metadata
(``checkpoint.encode_checkpoint``), so it is part of every digest and Merkle leaf, and it seeds
the slot's batch order (``data.batch_seed``), so the trained tensors depend on it too: a node
cannot take another node's published checkpoints, relabel them and be paid for them, because
re-executing a segment under its own binding draws other batches.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass

__all__ = ["ANY_BINDING", "AnyBinding", "Binding", "BindingError"]

_ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_JOB_ID = 2**63 - 1


class BindingError(ValueError):
    """A malformed binding; the message is one line."""


@dataclass(frozen=True)
class Binding:
    """Whose work a slot's checkpoints are: the claimant's address (lowercase hex), the on-chain
    job id and the sha256 of the job's canonical spec (hex). Part of every checkpoint's bytes
    and of the slot's batch seed."""

    claimant: str
    job_id: int
    spec_sha256: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "claimant", self.claimant.lower())
        if not _ADDRESS.match(self.claimant):
            raise BindingError(f"binding: claimant {self.claimant!r} is not an address")
        if type(self.job_id) is not int or not 0 <= self.job_id <= _MAX_JOB_ID:
            raise BindingError(f"binding: job id {self.job_id} out of range")
        if not _SHA256.match(self.spec_sha256):
            raise BindingError("binding: spec digest is not 64 lowercase hex digits")

    def to_json(self) -> str:
        """The one encoding: sorted keys, no whitespace."""
        doc = {"claimant": self.claimant, "job_id": self.job_id, "spec_sha256": self.spec_sha256}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def seed_values(self) -> tuple[int, ...]:
        """The binding as int64s for ``determinism.derive_seed``: address (20 bytes), job id,
        spec digest (32 bytes), in 8-byte big-endian words."""
        raw = bytes.fromhex(self.claimant[2:]).rjust(24, b"\0") + bytes.fromhex(self.spec_sha256)
        words = struct.unpack(">7q", raw)
        return (words[0], words[1], words[2], self.job_id, *words[3:])

    def __str__(self) -> str:
        return f"claimant {self.claimant}, job {self.job_id}, spec {self.spec_sha256[:12]}"


class AnyBinding:
    """Sentinel for ``decode_checkpoint``: accept whatever binding the bytes carry."""

    def __repr__(self) -> str:
        return "ANY_BINDING"


ANY_BINDING = AnyBinding()
