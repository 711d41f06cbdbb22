"""The job spec: everything node, verifier and aggregator must agree on to compute identically.

A spec is frozen and has exactly one byte encoding (``canonical_json``), so its sha256 can be
committed on chain and every party can check it is training the job it was paid for.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "CorpusDataSpec",
    "DataSpec",
    "DilocoSpec",
    "GPTSpec",
    "GroupTolerances",
    "JobSpec",
    "MLPSpec",
    "ModelSpec",
    "RewardSpec",
    "SpecError",
    "SyntheticDataSpec",
    "TENSOR_GROUPS",
    "TensorGroup",
    "TrainingSpec",
    "VerificationSpec",
    "canonical_json",
    "load_spec_file",
    "parse_spec",
    "spec_digest",
]

MAX_SEED = 2**63 - 1
MAX_UINT256 = 2**256 - 1
MAX_SPEC_BYTES = 1 << 20
BYTE_VOCAB = 256


class SpecError(ValueError):
    """A job spec that cannot be used; the message is one line meant for a human."""


class _Frozen(BaseModel):
    """Base for every spec part: unknown keys are errors (typos must not pass silently), values
    are immutable (the spec is hashed), and NaN/inf are refused (they have no canonical form)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MLPSpec(_Frozen):
    """A Linear/GELU stack for the synthetic teacher task: fast enough for unit tests."""

    name: Literal["mlp"] = "mlp"
    input_dim: int = Field(default=16, gt=0, le=4096)
    hidden_dim: int = Field(default=64, gt=0, le=16384)
    depth: int = Field(default=2, gt=0, le=64)
    output_dim: int = Field(default=4, gt=0, le=65536)
    init_seed: int = Field(default=0, ge=0, le=MAX_SEED)


class GPTSpec(_Frozen):
    """A nanoGPT-style byte-level language model (vocabulary: the 256 byte values)."""

    name: Literal["gpt"] = "gpt"
    n_layer: int = Field(default=2, gt=0, le=64)
    n_head: int = Field(default=4, gt=0, le=128)
    n_embd: int = Field(default=128, gt=0, le=8192)
    block_size: int = Field(default=64, ge=2, le=8192)
    init_seed: int = Field(default=0, ge=0, le=MAX_SEED)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> Self:
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        return self

    @property
    def vocab_size(self) -> int:
        """Byte-level: every token is one byte of the corpus."""
        return BYTE_VOCAB


# Which architecture to build (a key into ``opentrain.training.models``) and its shape.
ModelSpec = Annotated[MLPSpec | GPTSpec, Field(discriminator="name")]


class SyntheticDataSpec(_Frozen):
    """Teacher-labelled random inputs (for ``mlp``); shards are a pure function of this part."""

    kind: Literal["synthetic"] = "synthetic"
    num_shards: int = Field(default=8, gt=0, le=65536)
    shard_size: int = Field(default=1024, gt=0, le=1 << 20)
    validation_size: int = Field(default=512, gt=0, le=1 << 20)
    seed: int = Field(default=1234, ge=0, le=MAX_SEED)


class CorpusDataSpec(_Frozen):
    """A text corpus published to the content store (``opentrain data publish``), for ``gpt``.

    The manifest's CID says where to fetch it and its sha256 pins the exact bytes; the
    manifest in turn pins every shard by sha256, so the whole corpus is part of the job's
    identity. ``num_shards`` repeats the manifest's count so the shard rule needs no fetch."""

    kind: Literal["corpus"] = "corpus"
    manifest_cid: str = Field(min_length=1, max_length=200)
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    num_shards: int = Field(gt=0, le=65536)
    validation_size: int = Field(default=64, gt=0, le=1 << 20)


# Where the training data comes from.
DataSpec = Annotated[SyntheticDataSpec | CorpusDataSpec, Field(discriminator="kind")]


class TrainingSpec(_Frozen):
    """Inner-loop hyperparameters of one slot: H = inner_steps AdamW steps cut into segments
    of c = segment_steps steps, each segment ending in a committed checkpoint; then the outer
    (DiLoCo) step's hyperparameters."""

    inner_steps: int = Field(default=40, gt=0, le=1_000_000)
    segment_steps: int = Field(default=10, gt=0, le=1_000_000)
    batch_size: int = Field(default=32, gt=0, le=65536)
    micro_batches: int = Field(default=1, gt=0, le=65536)
    lr: float = Field(default=1e-2, gt=0.0, le=10.0)
    warmup_steps: int = Field(default=0, ge=0, le=1_000_000)
    weight_decay: float = Field(default=0.0, ge=0.0, le=10.0)
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    seed: int = Field(default=7, ge=0, le=MAX_SEED)
    outer_lr: float = Field(default=0.7, gt=0.0, le=10.0)
    outer_momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    # Legacy spelling of ``diloco.compression = "int8"`` (existing specs keep their bytes);
    # "int8" here with compression "none" or "int8" means the int8 codec.
    pseudo_gradient: Literal["float32", "int8"] = "float32"
    # "bf16": forward and backward under autocast (bfloat16 matmuls), with float32 master
    # weights, gradients and AdamW state; checkpoints stay float32. Verifiers re-execute under
    # the same precision (train_segment follows the spec). Jobs in bf16 need the looser
    # tolerance of docs/determinism.md (presets.BF16_TOLERANCE).
    precision: Literal["fp32", "bf16"] = "fp32"

    @model_validator(mode="after")
    def _segments_tile_the_slot(self) -> Self:
        if self.inner_steps % self.segment_steps != 0:
            raise ValueError(
                f"inner_steps ({self.inner_steps}) must be a multiple of "
                f"segment_steps ({self.segment_steps})"
            )
        if self.warmup_steps > self.inner_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must not exceed inner_steps "
                f"({self.inner_steps})"
            )
        if self.batch_size % self.micro_batches != 0:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of "
                f"micro_batches ({self.micro_batches})"
            )
        return self

    @property
    def num_segments(self) -> int:
        """H // c: the number of segments, hence checkpoints 0..num_segments per slot."""
        return self.inner_steps // self.segment_steps

    def lr_at(self, step: int) -> float:
        """Inner learning rate of inner step ``step`` (0-based): linear warmup over the first
        ``warmup_steps`` steps of every slot, then constant. Each slot starts with fresh AdamW
        state, whose first updates are sign-like (size lr for every element); warming up
        keeps those from kicking the W slots apart before they are averaged."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return self.lr


class DilocoSpec(_Frozen):
    """How a slot's pseudo-gradient travels to the aggregator (``opentrain.protocol.codecs``).

    - ``none``: float32 (or int8 when the legacy ``training.pseudo_gradient`` says so);
    - ``int8``: per-tensor min-max 8-bit codes (as in INTELLECT-1), ~4x less;
    - ``topk``: per chunk of at most ``chunk`` elements of each tensor (equal chunks), the
      ``density`` fraction of largest magnitudes (ties broken by the lower index), each as a
      ``bits``-bit code (sign + magnitude level) under one bfloat16 (lo, step) pair per
      chunk, with error feedback: the part not sent (the residual) is committed with the
      contribution and added, times ``error_decay``, to the slot's next pseudo-gradient (same
      slot, next round). The defaults (3 %, 2 bits, decay 0.95, SparseLoCo's) came within
      3 % of synchronous training's loss at about 11,000x less traffic over 400 rounds
      (``bench/diloco_vs_sync.py``, docs/determinism.md).
    """

    compression: Literal["none", "int8", "topk"] = "none"
    density: float = Field(default=0.03, gt=0.0, le=1.0)
    bits: Literal[2, 4] = 2
    chunk: int = Field(default=4096, gt=0, le=32768)  # longest chunk; one (lo, step) each
    error_decay: float = Field(default=0.95, ge=0.0, le=1.0)


# What tolerance mode compares, by kind, with one bound per kind: the float tensors of a
# training state (parameters, AdamW's first and second moments) and the AdamW step direction
# they imply, m_hat / (sqrt(v_hat) + eps) ("update"). The last is what the moments do to the
# next steps: a first moment moved by a hair where the second moment is ~0 (a byte that never
# occurs in the data) barely changes the moments' relative L2 but moves the parameters by
# lr per step, so the moments alone leave a free channel to steer the model.
TensorGroup = Literal["params", "exp_avg", "exp_avg_sq", "update"]
TENSOR_GROUPS: tuple[TensorGroup, ...] = ("params", "exp_avg", "exp_avg_sq", "update")


class GroupTolerances(_Frozen):
    """Tolerance mode's bound on the relative L2 distance of each tensor, per group: the
    parameters, AdamW's first moments and its second moments. The defaults come from
    ``bench/determinism.py`` on the demo job (docs/determinism.md): per group, the smallest
    power of ten at least 10x above every honest distance measured (parameters 1.9e-7, first
    moments 1.8e-6, second moments 1.1e-6, step direction 1.9e-6). One bound for all would
    leave the parameters, through which a node steers the model, 10x more room than their
    noise needs. Jobs without lr warmup need ``params`` 1e-4 (first-segment spread up to
    1.5e-6 on the CPU, 8.8e-6 measured on a 16-thread machine)."""

    params: float = Field(default=1e-5, gt=0.0, le=1.0)
    exp_avg: float = Field(default=1e-4, gt=0.0, le=1.0)
    exp_avg_sq: float = Field(default=1e-4, gt=0.0, le=1.0)
    update: float = Field(default=1e-4, gt=0.0, le=1.0)


class VerificationSpec(_Frozen):
    """How verifiers compare a re-run segment with the committed next checkpoint.

    Tolerance mode bounds each tensor group by ``tolerances``. ``tolerance`` is the older
    single bound: when set, it applies to every group (specs written before per-group bounds
    keep their meaning) and ``tolerances`` must be left at its defaults."""

    mode: Literal["exact", "tolerance"] = "exact"
    tolerance: float | None = Field(default=None, gt=0.0, le=1.0)
    tolerances: GroupTolerances = GroupTolerances()
    samples: int = Field(default=2, gt=0, le=1024)
    # Availability on demand: seconds after the seed is recorded within which the node publishes
    # the start and end checkpoints of each sampled segment and reveals them on chain (capped
    # at the chain's attest window); at submission it publishes only the manifest, the output
    # and its update. 0: every checkpoint is published at submission, nothing is revealed.
    reveal_window: int = Field(default=0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _one_kind_of_bound(self) -> Self:
        if self.tolerance is not None and self.tolerances != GroupTolerances():
            raise ValueError(
                "give either tolerance (one bound for every tensor group) or tolerances "
                "(per group), not both"
            )
        return self

    def tolerance_for(self, group: TensorGroup) -> float:
        """The bound tolerance mode applies to tensors of ``group``."""
        if self.tolerance is not None:
            return self.tolerance
        return float(getattr(self.tolerances, group))


class RewardSpec(_Frozen):
    """Payments in token base units; ints (never floats) so no rounding ever touches money."""

    reward_per_slot: int = Field(ge=0, le=MAX_UINT256)
    verifier_fee: int = Field(ge=0, le=MAX_UINT256)


class JobSpec(_Frozen):
    """A whole job: R rounds of W slots each, with its model, data, training and rewards."""

    version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=100)
    model: ModelSpec = MLPSpec()
    data: DataSpec = SyntheticDataSpec()
    training: TrainingSpec = TrainingSpec()
    verification: VerificationSpec = VerificationSpec()
    diloco: DilocoSpec = DilocoSpec()
    rounds: int = Field(default=1, ge=1, le=1000)
    slots_per_round: int = Field(default=2, ge=1, le=256)
    reward: RewardSpec

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        if self.verification.samples > self.training.num_segments:
            raise ValueError(
                f"verification.samples ({self.verification.samples}) must not exceed the "
                f"number of segments ({self.training.num_segments})"
            )
        if self.training.pseudo_gradient == "int8" and self.diloco.compression == "topk":
            raise ValueError(
                "training.pseudo_gradient 'int8' conflicts with diloco.compression 'topk' "
                "(use diloco.compression alone)"
            )
        if isinstance(self.data, SyntheticDataSpec):
            if not isinstance(self.model, MLPSpec):
                raise ValueError("synthetic data needs the mlp model (it has no tokens)")
            if self.training.batch_size > self.data.shard_size:
                raise ValueError(
                    f"training.batch_size ({self.training.batch_size}) must not exceed "
                    f"data.shard_size ({self.data.shard_size})"
                )
        if isinstance(self.data, CorpusDataSpec) and not isinstance(self.model, GPTSpec):
            raise ValueError("corpus data needs a language model (model.name 'gpt')")
        return self


# Parts and fields added after specs were first committed on chain, with the value every older
# spec means: canonical_json leaves them out at that value, so the digest of every spec written
# before they existed is unchanged (and parsing the shorter form gives the default back). A
# path of one key is a whole part (``diloco``), of two a field of a part.
_OMITTED_AT_DEFAULT: dict[tuple[str, ...], object] = {
    ("diloco",): DilocoSpec().model_dump(mode="json"),
    ("training", "precision"): "fp32",
    ("verification", "reveal_window"): 0,
}


def canonical_json(spec: JobSpec) -> bytes:
    """The one byte encoding of a spec: sorted keys, no whitespace, ASCII, floats by repr.

    Parsing these bytes gives back an equal spec, and equal specs give equal bytes, so
    ``spec_digest`` identifies a job. Parts and fields in ``_OMITTED_AT_DEFAULT`` are left out
    while they hold their default (the ``diloco`` part, ``training.precision`` "fp32",
    ``verification.reveal_window`` 0), so
    adding them changed no existing digest."""
    doc = spec.model_dump(mode="json")
    for path, default in _OMITTED_AT_DEFAULT.items():
        *parents, key = path
        part = doc
        for name in parents:
            part = part[name]
        if part.get(key) == default:
            del part[key]
    text = json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def spec_digest(spec: JobSpec) -> bytes:
    """sha256 of ``canonical_json(spec)`` (32 bytes)."""
    return hashlib.sha256(canonical_json(spec)).digest()


_UNION_TAGS = {("model", "mlp"), ("model", "gpt"), ("data", "synthetic"), ("data", "corpus")}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _format_validation_error(err: ValidationError) -> str:
    """First error as ``job spec: <dotted.path>: <message>`` (+ how many more), one line."""
    errors = err.errors(include_url=False)
    first = errors[0]
    parts = [str(part) for part in first["loc"]]
    # A discriminated union puts the tag in the path ("model.mlp.hidden_dim"): drop it.
    parts = [p for i, p in enumerate(parts) if i == 0 or (parts[i - 1], p) not in _UNION_TAGS]
    loc = ".".join(parts)
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "json_invalid":
        msg = f"invalid JSON ({first.get('ctx', {}).get('error', msg)})"
    where = f"{loc}: " if loc else ""
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return _one_line(f"job spec: {where}{msg}{more}")


def parse_spec(data: bytes | str) -> JobSpec:
    """Parse and validate a JSON spec (strict types: ``"16"`` is not an int), or raise
    ``SpecError`` with one clear line."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"job spec: too large ({len(raw)} bytes, limit {MAX_SPEC_BYTES})")
    try:
        return JobSpec.model_validate_json(raw, strict=True)
    except ValidationError as err:
        raise SpecError(_format_validation_error(err)) from None


def load_spec_file(path: str | os.PathLike[str]) -> JobSpec:
    """Read and parse a spec file; unreadable files are a ``SpecError`` too."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as err:
        raise SpecError(f"job spec: cannot read {os.fspath(path)}: {err.strerror}") from None
    return parse_spec(raw)
