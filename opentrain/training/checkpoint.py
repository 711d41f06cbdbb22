"""The canonical training state and its one byte encoding.

A checkpoint is everything needed to continue a slot bit-for-bit: parameters, AdamW moments
and step counts, and the inner step (which is also the data position, since batches are a pure
function of the step). It is encoded as safetensors with fixed names, dtypes and contiguous CPU
tensors, so equal states give equal bytes and the sha256 of the bytes is the state's identity
in the trace commitment.

A slot's checkpoints are bound to their worker: a :class:`Binding` (claimant address, job id,
spec digest) is the one safetensors metadata entry (``opentrain.binding``, canonical JSON),
hence part of every digest and Merkle leaf, and it seeds the slot's batch order
(``data.batch_seed``), so the tensors themselves depend on who trained them: another node's
checkpoints cannot be relabelled and re-submitted, since re-execution under the new binding
takes other batches. Unbound checkpoints (no metadata) are what benches and unit tests use;
the protocol never accepts them.

Decoding never unpickles (``safetensors.torch.load`` only) and checks the exact tensor set,
shapes and dtypes against the model built from the spec, so an untrusted node cannot smuggle
in anything else.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

import safetensors.torch
import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from opentrain.spec import JobSpec, TrainingSpec
from opentrain.training.binding import ANY_BINDING, AnyBinding, Binding, BindingError
from opentrain.training.models import build_model

__all__ = [
    "ADAMW_EPS",
    "ANY_BINDING",
    "Binding",
    "CheckpointError",
    "TrainState",
    "decode_checkpoint",
    "decode_global",
    "decode_params",
    "digest",
    "encode_checkpoint",
    "encode_params",
    "fresh_state",
    "load_checked",
    "make_optimizer",
    "move_state",
    "read_binding",
    "sha256_hex",
    "state_params",
    "state_tensors",
]

ADAMW_EPS = 1e-8
_OPT_DTYPE_STEP = torch.float32
_META_KEYS = ("meta.round", "meta.slot", "meta.step")
# Header slack on top of the raw tensor bytes when deriving the default size limit.
_HEADER_SLACK = 1 << 20


_BINDING_KEY = "opentrain.binding"


class CheckpointError(ValueError):
    """Bytes that are not a valid checkpoint for this spec; the message is one line."""


@dataclass
class TrainState:
    """Live training state of one slot; ``step`` = inner steps done (= data position);
    ``binding`` = whose slot it is (None: unbound, for benches and unit tests)."""

    model: nn.Module
    optimizer: torch.optim.AdamW
    step: int
    binding: Binding | None = None


def digest(data: bytes) -> bytes:
    """sha256 of ``data`` (32 bytes): the checkpoint identity used in commitments."""
    return hashlib.sha256(data).digest()


def sha256_hex(data: bytes) -> str:
    """sha256 of ``data`` as lowercase hex, for manifests and logs."""
    return hashlib.sha256(data).hexdigest()


def make_optimizer(model: nn.Module, training: TrainingSpec) -> torch.optim.AdamW:
    """AdamW with the spec's hyperparameters and pinned implementation choices.

    ``foreach``/``fused`` are fixed (not left to per-device defaults) so that every machine
    runs the same update arithmetic."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=training.lr,
        betas=(training.beta1, training.beta2),
        eps=ADAMW_EPS,
        weight_decay=training.weight_decay,
        amsgrad=False,
        maximize=False,
        foreach=False,
        capturable=False,
        differentiable=False,
        fused=False,
    )


def move_state(state: TrainState, device: str | torch.device) -> TrainState:
    """Move parameters and AdamW moments to ``device`` in place and return ``state``.

    Parameters keep their identity (``Module.to`` swaps ``.data``), so the optimizer's state
    keys stay valid; step counters stay on the CPU, as non-fused AdamW expects. Encoding
    always copies back to the CPU, so a GPU-trained state has the same checkpoint format."""
    state.model.to(device)
    for p in state.model.parameters():
        opt = state.optimizer.state[p]
        for key in ("exp_avg", "exp_avg_sq"):
            if key in opt:
                opt[key] = opt[key].to(device)
    return state


def _named_params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return list(model.named_parameters())


def _materialize_optimizer_state(state: TrainState) -> None:
    """Fill AdamW's lazily created state with the zeros it would create on its first step.

    Then checkpoint 0 has the same tensor set as every later one, and a state resumed from
    checkpoint 0 takes exactly the path a fresh optimizer would."""
    for _, p in _named_params(state.model):
        if not state.optimizer.state[p]:
            state.optimizer.state[p] = {
                "step": torch.tensor(0.0, dtype=_OPT_DTYPE_STEP),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous()


def _scalar(value: int) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.int64)


def state_params(state: TrainState) -> dict[str, torch.Tensor]:
    """Detached CPU copies of the model parameters, by name."""
    return {name: _cpu(p).clone() for name, p in _named_params(state.model)}


def state_tensors(state: TrainState) -> dict[str, torch.Tensor]:
    """Every float tensor of the state under its checkpoint name: ``model.<p>`` and
    ``optim.<p>.exp_avg`` / ``optim.<p>.exp_avg_sq`` (CPU copies). Tolerance mode compares
    all of them, so a node cannot forge optimizer state that the next segment builds on."""
    _materialize_optimizer_state(state)
    out: dict[str, torch.Tensor] = {}
    for name, p in _named_params(state.model):
        opt = state.optimizer.state[p]
        out[f"model.{name}"] = _cpu(p).clone()
        out[f"optim.{name}.exp_avg"] = _cpu(opt["exp_avg"]).clone()
        out[f"optim.{name}.exp_avg_sq"] = _cpu(opt["exp_avg_sq"]).clone()
    return out


def encode_checkpoint(state: TrainState, round: int, slot: int) -> bytes:
    """Canonical safetensors bytes of the full state, tagged with (round, slot, step) and, in
    the metadata, the state's binding (none if unbound)."""
    _materialize_optimizer_state(state)
    tensors: dict[str, torch.Tensor] = {}
    for name, p in _named_params(state.model):
        opt = state.optimizer.state[p]
        tensors[f"model.{name}"] = _cpu(p)
        tensors[f"optim.{name}.exp_avg"] = _cpu(opt["exp_avg"])
        tensors[f"optim.{name}.exp_avg_sq"] = _cpu(opt["exp_avg_sq"])
        tensors[f"optim.{name}.step"] = _cpu(opt["step"]).to(_OPT_DTYPE_STEP)
    tensors["meta.round"] = _scalar(round)
    tensors["meta.slot"] = _scalar(slot)
    tensors["meta.step"] = _scalar(state.step)
    # one metadata key only: safetensors writes a metadata map in hash order
    meta = None if state.binding is None else {_BINDING_KEY: state.binding.to_json()}
    return safetensors.torch.save(tensors, metadata=meta)


def _header_metadata(data: bytes, what: str) -> dict[str, str]:
    """The ``__metadata__`` map of safetensors bytes ({} if absent), read from the header."""
    if len(data) < 8:
        raise CheckpointError(f"{what}: not valid safetensors (too short)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise CheckpointError(f"{what}: not valid safetensors (header size)")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{what}: not valid safetensors (header)") from None
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{what}: not valid safetensors (metadata)")
    return meta


def read_binding(data: bytes) -> Binding | None:
    """The binding in checkpoint bytes (None if unbound); anything else in the metadata, or a
    binding not in its one canonical encoding, is an error."""
    meta = _header_metadata(data, "checkpoint")
    if not meta:
        return None
    if set(meta) != {_BINDING_KEY}:
        raise CheckpointError(f"checkpoint: unexpected metadata keys {sorted(meta)[:3]}")
    raw = meta[_BINDING_KEY]
    try:
        doc = json.loads(raw)
        binding = Binding(doc["claimant"], doc["job_id"], doc["spec_sha256"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, BindingError):
        raise CheckpointError("checkpoint: malformed binding") from None
    if not isinstance(doc, dict) or set(doc) != {"claimant", "job_id", "spec_sha256"}:
        raise CheckpointError("checkpoint: malformed binding")
    if binding.to_json() != raw:
        raise CheckpointError("checkpoint: binding is not canonically encoded")
    return binding


def encode_params(
    params: dict[str, torch.Tensor], momentum: dict[str, torch.Tensor] | None = None
) -> bytes:
    """Canonical safetensors bytes of a global checkpoint G_r: parameters under
    ``model.<name>`` and the DiLoCo outer Nesterov momentum under ``outer.<name>.momentum``
    (zeros for G_0), so the next aggregation is reproducible from public data alone."""
    tensors = {f"model.{name}": _cpu(t) for name, t in params.items()}
    for name, t in params.items():
        m = momentum[name] if momentum is not None else torch.zeros_like(t)
        tensors[f"outer.{name}.momentum"] = _cpu(m)
    return safetensors.torch.save(tensors, metadata=None)


def _expected_tensors(
    spec: JobSpec, model: nn.Module, *, with_optim: bool
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of every tensor a valid encoding holds, nothing more."""
    expected: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    for name, p in _named_params(model):
        shape = tuple(p.shape)
        expected[f"model.{name}"] = (shape, p.dtype)
        if not with_optim:
            expected[f"outer.{name}.momentum"] = (shape, p.dtype)
        if with_optim:
            expected[f"optim.{name}.exp_avg"] = (shape, p.dtype)
            expected[f"optim.{name}.exp_avg_sq"] = (shape, p.dtype)
            expected[f"optim.{name}.step"] = ((), _OPT_DTYPE_STEP)
    if with_optim:
        for key in _META_KEYS:
            expected[key] = ((), torch.int64)
    return expected


def _size_limit(expected: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> int:
    total = 0
    for shape, dtype in expected.values():
        numel = 1
        for dim in shape:
            numel *= dim
        total += numel * dtype.itemsize
    return total + _HEADER_SLACK


def load_checked(
    data: bytes,
    expected: dict[str, tuple[tuple[int, ...], torch.dtype]],
    max_bytes: int | None,
    what: str,
    up_to: frozenset[str] = frozenset(),
) -> dict[str, torch.Tensor]:
    """Parse safetensors bytes and insist on exactly the expected names, shapes and dtypes.
    A name in ``up_to`` is a 1-D tensor of 1 up to its expected length (a variable-length
    code); every other shape is exact."""
    limit = _size_limit(expected) if max_bytes is None else max_bytes
    if len(data) > limit:
        raise CheckpointError(f"{what}: {len(data)} bytes exceeds the limit of {limit}")
    try:
        tensors = load_safetensors(data)
    except Exception as err:  # safetensors raises its own untyped errors on bad input
        raise CheckpointError(f"{what}: not valid safetensors ({err})") from None
    missing = sorted(expected.keys() - tensors.keys())
    extra = sorted(tensors.keys() - expected.keys())
    if missing or extra:
        raise CheckpointError(
            f"{what}: wrong tensor set (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for name, (shape, dtype) in expected.items():
        t = tensors[name]
        if name in up_to and t.dim() == 1 and 1 <= t.numel() <= shape[0] and t.dtype == dtype:
            continue
        if tuple(t.shape) != shape or t.dtype != dtype:
            raise CheckpointError(
                f"{what}: tensor {name} is {t.dtype} {list(t.shape)}, "
                f"expected {dtype} {list(shape)}"
            )
    return tensors


def _copy_params(model: nn.Module, params: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, p in _named_params(model):
            p.copy_(params[name])


def _check_meta(
    tensors: dict[str, torch.Tensor], spec: JobSpec, round: int | None, slot: int | None
) -> int:
    """Validate the (round, slot, step) tags; returns the step."""
    got_round = int(tensors["meta.round"].item())
    got_slot = int(tensors["meta.slot"].item())
    step = int(tensors["meta.step"].item())
    if round is not None and got_round != round:
        raise CheckpointError(f"checkpoint: is for round {got_round}, expected round {round}")
    if slot is not None and got_slot != slot:
        raise CheckpointError(f"checkpoint: is for slot {got_slot}, expected slot {slot}")
    if not 0 <= step <= spec.training.inner_steps:
        raise CheckpointError(f"checkpoint: step {step} outside [0, {spec.training.inner_steps}]")
    return step


def decode_checkpoint(
    spec: JobSpec,
    data: bytes,
    round: int | None = None,
    slot: int | None = None,
    *,
    binding: Binding | None | AnyBinding = ANY_BINDING,
    max_bytes: int | None = None,
) -> TrainState:
    """Rebuild a ``TrainState`` from checkpoint bytes, validating everything.

    ``binding``: the one the bytes must carry (None: must be unbound); by default any is
    accepted and kept in the state, so re-encoding gives the same bytes. ``max_bytes``
    defaults to the exact tensor payload for the spec plus 1 MiB of header."""
    model = build_model(spec.model, initialize=False)
    expected = _expected_tensors(spec, model, with_optim=True)
    if len(data) > (_size_limit(expected) if max_bytes is None else max_bytes):
        load_checked(data, expected, max_bytes, "checkpoint")  # raises the size error
    found = read_binding(data)
    if not isinstance(binding, AnyBinding) and found != binding:
        raise CheckpointError(
            f"checkpoint: bound to {found or 'no one'}, expected {binding or 'unbound'}"
        )
    tensors = load_checked(data, expected, max_bytes, "checkpoint")
    step = _check_meta(tensors, spec, round, slot)
    _copy_params(model, {n: tensors[f"model.{n}"] for n, _ in _named_params(model)})
    optimizer = make_optimizer(model, spec.training)
    for name, p in _named_params(model):
        opt_step = tensors[f"optim.{name}.step"]
        if float(opt_step.item()) != float(step):
            raise CheckpointError(
                f"checkpoint: optimizer step of {name} is {opt_step.item()}, expected {step}"
            )
        optimizer.state[p] = {
            "step": opt_step.clone(),
            "exp_avg": tensors[f"optim.{name}.exp_avg"].clone(),
            "exp_avg_sq": tensors[f"optim.{name}.exp_avg_sq"].clone(),
        }
    return TrainState(model=model, optimizer=optimizer, step=step, binding=found)


def decode_global(
    spec: JobSpec, data: bytes, *, max_bytes: int | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Parameters and outer momentum of a global checkpoint (G_r), validated like a checkpoint."""
    model = build_model(spec.model, initialize=False)
    expected = _expected_tensors(spec, model, with_optim=False)
    tensors = load_checked(data, expected, max_bytes, "model checkpoint")
    names = [name for name, _ in _named_params(model)]
    params = {name: tensors[f"model.{name}"] for name in names}
    momentum = {name: tensors[f"outer.{name}.momentum"] for name in names}
    return params, momentum


def decode_params(
    spec: JobSpec, data: bytes, *, max_bytes: int | None = None
) -> dict[str, torch.Tensor]:
    """Parameters of a global model (G_r) by name."""
    return decode_global(spec, data, max_bytes=max_bytes)[0]


def fresh_state(
    spec: JobSpec, global_params: dict[str, torch.Tensor], binding: Binding | None = None
) -> TrainState:
    """Checkpoint 0 of a slot: G_r's parameters, fresh AdamW (zeros materialized), step 0,
    bound to ``binding`` (the claimant's work)."""
    model = build_model(spec.model, initialize=False)
    expected = {
        name[len("model.") :]: v
        for name, v in _expected_tensors(spec, model, with_optim=False).items()
        if name.startswith("model.")
    }
    if set(global_params) != set(expected):
        raise CheckpointError("global params: parameter names do not match the model")
    for name, (shape, dtype) in expected.items():
        t = global_params[name]
        if tuple(t.shape) != shape or t.dtype != dtype:
            raise CheckpointError(
                f"global params: {name} is {t.dtype} {list(t.shape)}, "
                f"expected {dtype} {list(shape)}"
            )
    _copy_params(model, global_params)
    state = TrainState(
        model=model, optimizer=make_optimizer(model, spec.training), step=0, binding=binding
    )
    _materialize_optimizer_state(state)
    return state
