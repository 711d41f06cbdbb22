"""Training data: shard assignment, batch order, validation set, behind one ``DataSource``.

Every batch is a pure function of the job spec, protocol integers (round, slot, step) and the
slot's binding (claimant, job, spec digest: ``binding.Binding``), so a verifier can rebuild the
exact batches of any segment without talking to the node, and two claimants of one slot train
on different batch orders of the same shard.

A ``DataSource`` serves one job's data: ``batch(shard, seed, size)`` and ``validation()``. It is
built by ``data_source(spec, store)``:

- ``synthetic`` data (the ``mlp`` job) is generated from the spec, no store needed;
- ``corpus`` data (the ``gpt`` job) is fetched through the content store and checked against
  the spec's manifest CID and sha256. Loaded corpora are cached per data spec (which pins the
  exact bytes), so later ``data_source(spec)`` calls in the process need no store.
"""

from __future__ import annotations

import functools
import math
from typing import Protocol

import torch

from opentrain.spec import CorpusDataSpec, GPTSpec, JobSpec, MLPSpec, SyntheticDataSpec
from opentrain.training.binding import Binding
from opentrain.training.corpus import (
    BlobStore,
    CorpusSource,
    LoadedCorpus,
    builtin_corpus_spec,
    load_corpus,
    publish_corpus,
)
from opentrain.training.determinism import derive_seed, portable_normal

__all__ = [
    "DataError",
    "DataSource",
    "SyntheticTeacher",
    "batch_seed",
    "data_source",
    "ensure_job_data",
    "load_batch",
    "shard_for",
    "validation_set",
]

Pair = tuple[torch.Tensor, torch.Tensor]

_TEACHER_HIDDEN = 32


class DataError(RuntimeError):
    """A job's data cannot be served here (e.g. a corpus that was never fetched)."""


class DataSource(Protocol):
    """What the training core needs from a job's data."""

    def batch(self, shard: int, seed: int, size: int) -> Pair:
        """``size`` examples of shard ``shard``, chosen by a generator seeded with ``seed``.
        Returns fresh tensors ``(x, y)`` with the same leading dimension."""
        ...

    def validation(self) -> Pair:
        """The held-out set used for the round's published loss; callers must not modify it."""
        ...


def _matmul_exact(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w as a fixed-order sum of elementwise products (BLAS reduction order varies)."""
    out = x[:, 0:1] * w[0]
    for i in range(1, w.shape[0]):
        out = out + x[:, i : i + 1] * w[i]
    return out


class SyntheticTeacher:
    """Gaussian-ish inputs labelled by a fixed random 2-layer ReLU "teacher" network.

    The teacher is derived from the data seed, so every shard and the validation set share
    one labelling rule that a student MLP can learn (the loss falls)."""

    def __init__(self, data: SyntheticDataSpec, input_dim: int, num_classes: int) -> None:
        self.data = data
        self.input_dim = input_dim
        self.num_classes = num_classes
        gen = torch.Generator().manual_seed(derive_seed("opentrain/data/teacher", data.seed))
        self._w1 = portable_normal((input_dim, _TEACHER_HIDDEN), gen) / math.sqrt(input_dim)
        self._w2 = portable_normal((_TEACHER_HIDDEN, num_classes), gen)
        self._shards: dict[int, Pair] = {}
        self._validation: Pair | None = None

    def _examples(self, n: int, seed: int) -> Pair:
        gen = torch.Generator().manual_seed(seed)
        x64 = portable_normal((n, self.input_dim), gen)
        hidden = torch.clamp(_matmul_exact(x64, self._w1), min=0.0)
        labels = torch.argmax(_matmul_exact(hidden, self._w2), dim=1)
        return x64.to(torch.float32).contiguous(), labels.to(torch.int64).contiguous()

    def shard(self, index: int) -> Pair:
        """All examples of one shard (cached; read-only)."""
        if not 0 <= index < self.data.num_shards:
            raise ValueError(f"shard index {index} out of range [0, {self.data.num_shards})")
        if index not in self._shards:
            seed = derive_seed("opentrain/data/shard", self.data.seed, index)
            self._shards[index] = self._examples(self.data.shard_size, seed)
        return self._shards[index]

    def batch(self, shard: int, seed: int, size: int) -> Pair:
        """``size`` distinct examples of the shard, by a seeded permutation."""
        x, y = self.shard(shard)
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(self.data.shard_size, generator=gen, dtype=torch.int64)[:size]
        return x[idx], y[idx]

    def validation(self) -> Pair:
        if self._validation is None:
            seed = derive_seed("opentrain/data/validation", self.data.seed)
            self._validation = self._examples(self.data.validation_size, seed)
        return self._validation


@functools.lru_cache(maxsize=8)
def _synthetic(data: SyntheticDataSpec, input_dim: int, output_dim: int) -> SyntheticTeacher:
    return SyntheticTeacher(data, input_dim, output_dim)


_CORPORA: dict[CorpusDataSpec, LoadedCorpus] = {}


def data_source(spec: JobSpec, store: BlobStore | None = None) -> DataSource:
    """The job's data source; corpus data is fetched through ``store`` on first use.

    Node, verifier and aggregator call this once per job with their content store (e.g. when
    loading the job) and pass the result to ``train_segment``/``evaluate_loss`` (or rely on
    the per-process cache, keyed by the content-pinning data spec)."""
    data, model = spec.data, spec.model
    if isinstance(data, SyntheticDataSpec):
        if not isinstance(model, MLPSpec):
            raise DataError("synthetic data needs the mlp model")
        return _synthetic(data, model.input_dim, model.output_dim)
    if not isinstance(model, GPTSpec):
        raise DataError("corpus data needs the gpt model")
    corpus = _CORPORA.get(data)
    if corpus is None:
        if store is None:
            raise DataError(
                f"job data is corpus {data.manifest_cid} in the content store: open it with "
                "data_source(spec, store) first"
            )
        corpus = load_corpus(data, store)
        _CORPORA[data] = corpus
    return CorpusSource(corpus, model.block_size, data.validation_size)


def ensure_job_data(spec: JobSpec, store: BlobStore) -> DataSource:
    """For a sponsor posting a job (and the demo): publish the builtin corpus to ``store`` if
    the spec names it (a no-op when already there), then open the job's data source, which
    fails if a corpus the spec names is not in the store."""
    data = spec.data
    if isinstance(data, CorpusDataSpec) and data == builtin_corpus_spec(
        data.num_shards, data.validation_size
    ):
        publish_corpus(store, num_shards=data.num_shards)
    return data_source(spec, store)


def shard_for(spec: JobSpec, round: int, slot: int) -> int:
    """DESIGN rule: slot ``s`` of round ``r`` trains on shard ``(r * W + s) mod num_shards``."""
    if not 0 <= slot < spec.slots_per_round:
        raise ValueError(f"slot {slot} out of range [0, {spec.slots_per_round})")
    if round < 0:
        raise ValueError(f"round {round} must be >= 0")
    return (round * spec.slots_per_round + slot) % spec.data.num_shards


def batch_seed(
    spec: JobSpec, round: int, slot: int, step: int, binding: Binding | None = None
) -> int:
    """sha256-derived seed of inner step ``step`` of slot ``(round, slot)``: any step's batch
    can be rebuilt on its own, which is what lets a verifier start mid-slot. A bound slot's
    seed also covers its binding, so the order (hence the trained tensors) is the claimant's
    own and cannot be lifted from another claimant's checkpoints."""
    if binding is None:
        return derive_seed("opentrain/data/batch", spec.training.seed, round, slot, step)
    return derive_seed(
        "opentrain/data/bound-batch",
        spec.training.seed,
        round,
        slot,
        step,
        *binding.seed_values(),
    )


def load_batch(
    spec: JobSpec,
    round: int,
    slot: int,
    step: int,
    data: DataSource | None = None,
    binding: Binding | None = None,
) -> Pair:
    """The ``(x, y)`` batch of inner step ``step`` of slot ``(round, slot)`` (bound to
    ``binding``, if any)."""
    source = data if data is not None else data_source(spec)
    seed = batch_seed(spec, round, slot, step, binding)
    return source.batch(shard_for(spec, round, slot), seed, spec.training.batch_size)


def validation_set(spec: JobSpec, data: DataSource | None = None) -> Pair:
    """The held-out ``(x, y)`` pair; read-only."""
    return (data if data is not None else data_source(spec)).validation()
