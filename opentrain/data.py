"""Training data: shard assignment, shard contents, batch order, validation set.

Everything here is a pure function of the spec and protocol integers (round, slot, step), so a
verifier can rebuild the exact batches of any segment without talking to the node.

Data sources sit behind ``DataSource``: a source maps a shard index to ``(x, y)`` tensors with
the same leading dimension, plus a held-out validation pair. Batches are ``x[idx], y[idx]``, so
the same training loop serves classification (``y``: (N,)) and language modelling
(``x``, ``y``: (N, T)).
"""

from __future__ import annotations

import functools
import math
from typing import Protocol

import torch

from opentrain.determinism import derive_seed
from opentrain.spec import DataSpec, JobSpec

__all__ = [
    "DataSource",
    "SyntheticTeacher",
    "batch_indices",
    "data_source",
    "load_batch",
    "load_shard",
    "shard_for",
    "validation_set",
]

Pair = tuple[torch.Tensor, torch.Tensor]

_SQRT3 = math.sqrt(3.0)
_TEACHER_HIDDEN = 32


class DataSource(Protocol):
    """What the training core needs from a data kind."""

    def shard(self, index: int) -> Pair:
        """Examples of shard ``index``; callers must not modify the returned tensors."""
        ...

    def validation(self) -> Pair:
        """The held-out set used for the round's published loss."""
        ...


def _portable_normal(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Approximately standard normal float64 samples with bit-identical results on any CPU.

    ``torch.randn`` picks SIMD code paths (and libm calls) per CPU, so its bits differ between
    machines; here only a serial uniform draw and separately rounded add/mul are used
    (Irwin-Hall with 4 terms, rescaled to unit variance)."""
    u = torch.rand((4, *shape), generator=gen, dtype=torch.float64)
    total = (u[0] + u[1]) + (u[2] + u[3])
    return (total - 2.0) * _SQRT3


def _matmul_exact(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w as a fixed-order sum of elementwise products (BLAS reduction order varies)."""
    out = x[:, 0:1] * w[0]
    for i in range(1, w.shape[0]):
        out = out + x[:, i : i + 1] * w[i]
    return out


class SyntheticTeacher:
    """Gaussian-ish inputs labelled by a fixed random 2-layer ReLU "teacher" network.

    The teacher is derived from ``DataSpec.seed``, so every shard and the validation set share
    one labelling rule that a student MLP can learn (the loss falls)."""

    def __init__(self, data: DataSpec, input_dim: int, num_classes: int) -> None:
        self.data = data
        self.input_dim = input_dim
        self.num_classes = num_classes
        gen = torch.Generator().manual_seed(derive_seed("opentrain/data/teacher", data.seed))
        self._w1 = _portable_normal((input_dim, _TEACHER_HIDDEN), gen) / math.sqrt(input_dim)
        self._w2 = _portable_normal((_TEACHER_HIDDEN, num_classes), gen)

    def _examples(self, n: int, seed: int) -> Pair:
        gen = torch.Generator().manual_seed(seed)
        x64 = _portable_normal((n, self.input_dim), gen)
        hidden = torch.clamp(_matmul_exact(x64, self._w1), min=0.0)
        labels = torch.argmax(_matmul_exact(hidden, self._w2), dim=1)
        return x64.to(torch.float32).contiguous(), labels.to(torch.int64).contiguous()

    def shard(self, index: int) -> Pair:
        if not 0 <= index < self.data.num_shards:
            raise ValueError(f"shard index {index} out of range [0, {self.data.num_shards})")
        seed = derive_seed("opentrain/data/shard", self.data.seed, index)
        return self._examples(self.data.shard_size, seed)

    def validation(self) -> Pair:
        seed = derive_seed("opentrain/data/validation", self.data.seed)
        return self._examples(self.data.validation_size, seed)


@functools.lru_cache(maxsize=8)
def _source(data: DataSpec, input_dim: int, output_dim: int) -> DataSource:
    if data.kind == "synthetic":
        return SyntheticTeacher(data, input_dim, output_dim)
    raise ValueError(f"unknown data kind {data.kind!r}")


def data_source(spec: JobSpec) -> DataSource:
    """The (cached) source for a job; keyed only by what the data depends on."""
    return _source(spec.data, spec.model.input_dim, spec.model.output_dim)


@functools.lru_cache(maxsize=16)
def _cached_shard(data: DataSpec, input_dim: int, output_dim: int, index: int) -> Pair:
    return _source(data, input_dim, output_dim).shard(index)


@functools.lru_cache(maxsize=4)
def _cached_validation(data: DataSpec, input_dim: int, output_dim: int) -> Pair:
    return _source(data, input_dim, output_dim).validation()


def shard_for(spec: JobSpec, round: int, slot: int) -> int:
    """DESIGN rule: slot ``s`` of round ``r`` trains on shard ``(r * W + s) mod num_shards``."""
    if not 0 <= slot < spec.slots_per_round:
        raise ValueError(f"slot {slot} out of range [0, {spec.slots_per_round})")
    if round < 0:
        raise ValueError(f"round {round} must be >= 0")
    return (round * spec.slots_per_round + slot) % spec.data.num_shards


def load_shard(spec: JobSpec, shard_index: int) -> Pair:
    """Shard contents ``(x, y)``, a pure function of (data spec, shard index); cached, so
    callers must treat the tensors as read-only."""
    return _cached_shard(spec.data, spec.model.input_dim, spec.model.output_dim, shard_index)


def validation_set(spec: JobSpec) -> Pair:
    """The held-out ``(x, y)`` pair (disjoint seed stream from every shard); read-only."""
    return _cached_validation(spec.data, spec.model.input_dim, spec.model.output_dim)


def batch_indices(spec: JobSpec, round: int, slot: int, step: int) -> torch.Tensor:
    """Indices (int64, distinct) into the slot's shard for inner step ``step``.

    Seeded from sha256(training.seed, round, slot, step), so any step's batch can be
    rebuilt on its own: this is what lets a verifier start mid-slot."""
    seed = derive_seed("opentrain/data/batch", spec.training.seed, round, slot, step)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(spec.data.shard_size, generator=gen, dtype=torch.int64)
    return perm[: spec.training.batch_size].clone()


def load_batch(spec: JobSpec, round: int, slot: int, step: int) -> Pair:
    """The ``(x, y)`` batch of inner step ``step`` of slot ``(round, slot)``."""
    x, y = load_shard(spec, shard_for(spec, round, slot))
    idx = batch_indices(spec, round, slot, step)
    return x[idx], y[idx]
