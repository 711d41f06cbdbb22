"""Shared training core: spec encoding, checkpoints, and the determinism verification rests on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors.torch
import torch

from opentrain.checkpoint import (
    CheckpointError,
    TrainState,
    decode_checkpoint,
    decode_params,
    digest,
    encode_checkpoint,
    encode_params,
    fresh_state,
    sha256_hex,
)
from opentrain.data import batch_indices, load_batch, load_shard, shard_for, validation_set
from opentrain.models import build_model, model_params, parameter_names
from opentrain.spec import (
    JobSpec,
    SpecError,
    canonical_json,
    default_demo_spec,
    load_spec_file,
    parse_spec,
    spec_digest,
)
from opentrain.training import evaluate_loss, train_segment, train_slot_plain

ROUND, SLOT = 1, 1


@pytest.fixture(scope="module")
def spec() -> JobSpec:
    return default_demo_spec()


@pytest.fixture(scope="module")
def g0(spec: JobSpec) -> dict[str, torch.Tensor]:
    return model_params(build_model(spec.model))


@pytest.fixture(scope="module")
def trace(spec: JobSpec, g0: dict[str, torch.Tensor]) -> list[bytes]:
    """Checkpoints 0..H/c of one slot, trained segment by segment with a decode in between."""
    state = fresh_state(spec, g0)
    checkpoints = [encode_checkpoint(state, ROUND, SLOT)]
    for _ in range(spec.training.num_segments):
        state = decode_checkpoint(spec, checkpoints[-1], ROUND, SLOT)
        train_segment(spec, state, ROUND, SLOT)
        checkpoints.append(encode_checkpoint(state, ROUND, SLOT))
    return checkpoints


# --- spec -----------------------------------------------------------------------------------


def test_canonical_json_is_stable_and_round_trips(spec: JobSpec) -> None:
    raw = canonical_json(spec)
    assert raw == canonical_json(default_demo_spec())
    assert b" " not in raw and raw.isascii()
    assert list(json.loads(raw)) == sorted(json.loads(raw))
    again = parse_spec(raw)
    assert again == spec
    assert canonical_json(again) == raw
    assert spec_digest(again) == spec_digest(spec) and len(spec_digest(spec)) == 32
    # Key order and whitespace of the input do not matter; the canonical form is unique.
    shuffled = json.dumps(dict(reversed(list(json.loads(raw).items()))), indent=2)
    assert canonical_json(parse_spec(shuffled)) == raw
    assert spec.training.num_segments == 4


def test_spec_digest_changes_with_content(spec: JobSpec) -> None:
    other = default_demo_spec(rounds=spec.rounds + 1)
    assert spec_digest(other) != spec_digest(spec)


def test_load_spec_file(tmp_path: Path, spec: JobSpec) -> None:
    path = tmp_path / "job.json"
    path.write_bytes(canonical_json(spec))
    assert load_spec_file(path) == spec
    with pytest.raises(SpecError, match="cannot read"):
        load_spec_file(tmp_path / "missing.json")


def _mutated(spec: JobSpec, section: str | None, key: str, value: object) -> str:
    doc = json.loads(canonical_json(spec))
    (doc[section] if section else doc)[key] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("section", "key", "value", "expect"),
    [
        ("training", "segment_steps", 15, "training: inner_steps (40) must be a multiple"),
        ("model", "hidden_dim", 0, "model.hidden_dim: Input should be greater than 0"),
        ("model", "hidden_dim", "64", "model.hidden_dim: Input should be a valid integer"),
        ("model", "name", "gpt9", "model.name"),
        ("verification", "samples", 5, "verification.samples (5) must not exceed"),
        ("training", "lr", -1.0, "training.lr"),
        (None, "extra_field", 1, "extra_field: Extra inputs are not permitted"),
        ("reward", "verifier_fee", -1, "reward.verifier_fee"),
        (None, "name", "", "name"),
    ],
)
def test_bad_specs_give_one_line(
    spec: JobSpec, section: str | None, key: str, value: object, expect: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_mutated(spec, section, key, value))
    msg = str(info.value)
    assert msg.startswith("job spec: ") and "\n" not in msg
    assert expect in msg


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b'{"name": NaN}', "\u00e9"])
def test_malformed_json_gives_one_line(raw: bytes | str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert str(info.value).startswith("job spec: ") and "\n" not in str(info.value)


# --- models and data ------------------------------------------------------------------------


def test_model_init_is_seeded_and_leaves_global_rng_alone(spec: JobSpec) -> None:
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b = build_model(spec.model), build_model(spec.model)
    assert torch.equal(torch.get_rng_state(), before)
    assert parameter_names(a) == [
        "net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias"
    ]
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb)
    other = build_model(spec.model.model_copy(update={"init_seed": 1}))
    assert not torch.equal(next(a.parameters()), next(other.parameters()))


def test_data_is_pure_and_follows_the_shard_rule(spec: JobSpec) -> None:
    assert shard_for(spec, 3, 1) == (3 * 2 + 1) % 8
    x, y = load_shard(spec, 2)
    assert x.shape == (1024, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(torch.unique(y)) == spec.model.output_dim
    fresh = type(spec).model_validate(spec.model_dump())  # equal spec, different object
    x2, y2 = load_shard(fresh, 2)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(load_shard(spec, 3)[0], x)
    idx = batch_indices(spec, 0, 1, 5)
    assert torch.equal(idx, batch_indices(spec, 0, 1, 5))
    assert len(set(idx.tolist())) == spec.training.batch_size
    assert not torch.equal(idx, batch_indices(spec, 0, 1, 6))
    assert validation_set(spec)[0].shape == (512, 16)
    with pytest.raises(ValueError):
        shard_for(spec, 0, spec.slots_per_round)


# --- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_encoding_is_canonical(trace: list[bytes], spec: JobSpec) -> None:
    for raw in trace:
        state = decode_checkpoint(spec, raw, ROUND, SLOT)
        assert encode_checkpoint(state, ROUND, SLOT) == raw
        assert encode_checkpoint(state, ROUND, SLOT) == raw  # encoding does not mutate
    assert len({digest(raw) for raw in trace}) == len(trace)
    assert sha256_hex(trace[0]) == digest(trace[0]).hex()
    # Checkpoint 0 has the full tensor set with zero moments and step 0.
    t0 = safetensors.torch.load(trace[0])
    assert set(t0) == set(safetensors.torch.load(trace[-1]))
    assert float(t0["optim.net.0.weight.exp_avg"].abs().sum()) == 0.0
    assert int(t0["meta.step"]) == 0
    assert int(safetensors.torch.load(trace[-1])["meta.step"]) == spec.training.inner_steps


def test_params_encoding_round_trips(spec: JobSpec, g0: dict[str, torch.Tensor]) -> None:
    raw = encode_params(g0)
    params = decode_params(spec, raw)
    assert encode_params(params) == raw
    assert all(torch.equal(params[n], g0[n]) for n in g0)
    with pytest.raises(CheckpointError):
        decode_params(spec, raw[:-4])


def _reencode(raw: bytes, edit: dict[str, torch.Tensor | None]) -> bytes:
    tensors = dict(safetensors.torch.load(raw))
    for name, t in edit.items():
        if t is None:
            del tensors[name]
        else:
            tensors[name] = t
    return safetensors.torch.save(tensors)


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        ({"optim.net.0.bias.exp_avg": None}, "wrong tensor set"),
        ({"extra": torch.zeros(1)}, "wrong tensor set"),
        ({"model.net.0.bias": torch.zeros(65)}, "tensor model.net.0.bias"),
        ({"model.net.0.bias": torch.zeros(64, dtype=torch.float64)}, "torch.float64"),
        ({"meta.step": torch.tensor(9999)}, "step 9999 outside"),
    ],
)
def test_decode_rejects_malformed(
    trace: list[bytes], spec: JobSpec, edit: dict[str, torch.Tensor | None], expect: str
) -> None:
    with pytest.raises(CheckpointError, match=expect) as info:
        decode_checkpoint(spec, _reencode(trace[1], edit))
    assert "\n" not in str(info.value)


def test_decode_rejects_bad_bytes_and_wrong_slot(trace: list[bytes], spec: JobSpec) -> None:
    raw = trace[1]
    with pytest.raises(CheckpointError, match="not valid safetensors"):
        decode_checkpoint(spec, raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="not valid safetensors"):
        decode_checkpoint(spec, b"")
    with pytest.raises(CheckpointError, match="exceeds the limit"):
        decode_checkpoint(spec, raw, max_bytes=len(raw) - 1)
    with pytest.raises(CheckpointError, match="expected round 0"):
        decode_checkpoint(spec, raw, round=0, slot=SLOT)
    with pytest.raises(CheckpointError, match="expected slot 0"):
        decode_checkpoint(spec, raw, round=ROUND, slot=0)
    narrower = default_demo_spec(model={"hidden_dim": 32})
    with pytest.raises(CheckpointError, match="tensor model.net"):
        decode_checkpoint(narrower, raw)


# --- training: the properties verification rests on -----------------------------------------


def test_one_call_equals_segment_by_segment(
    trace: list[bytes], spec: JobSpec, g0: dict[str, torch.Tensor]
) -> None:
    state = fresh_state(spec, g0)
    train_segment(spec, state, ROUND, SLOT, steps=spec.training.inner_steps)
    assert encode_checkpoint(state, ROUND, SLOT) == trace[-1]
    plain = train_slot_plain(spec, g0, ROUND, SLOT)
    final = decode_checkpoint(spec, trace[-1])
    for name, p in final.model.named_parameters():
        assert torch.equal(plain[name], p.detach())


def test_rerunning_any_segment_reproduces_the_next_checkpoint(
    trace: list[bytes], spec: JobSpec
) -> None:
    for j in range(spec.training.num_segments):
        state = decode_checkpoint(spec, trace[j], ROUND, SLOT)
        train_segment(spec, state, ROUND, SLOT)
        assert digest(encode_checkpoint(state, ROUND, SLOT)) == digest(trace[j + 1])


def test_a_fake_segment_is_detected(trace: list[bytes], spec: JobSpec) -> None:
    """Training on the wrong slot's batches (a shortcut a cheater might take) changes bits."""
    state = decode_checkpoint(spec, trace[1], ROUND, SLOT)
    train_segment(spec, state, ROUND, 0)
    assert encode_checkpoint(state, ROUND, SLOT) != trace[2]


def test_segment_refuses_to_overrun_the_slot(trace: list[bytes], spec: JobSpec) -> None:
    state: TrainState = decode_checkpoint(spec, trace[-1])
    with pytest.raises(ValueError, match="cannot run"):
        train_segment(spec, state, ROUND, SLOT)


def test_training_reduces_validation_loss(
    trace: list[bytes], spec: JobSpec, g0: dict[str, torch.Tensor]
) -> None:
    before = evaluate_loss(spec, g0)
    after = evaluate_loss(spec, decode_checkpoint(spec, trace[-1]).model)
    assert after < 0.7 * before, (before, after)


def test_batches_come_from_the_slot_shard(spec: JobSpec) -> None:
    x, y = load_batch(spec, ROUND, SLOT, 3)
    sx, sy = load_shard(spec, shard_for(spec, ROUND, SLOT))
    idx = batch_indices(spec, ROUND, SLOT, 3)
    assert torch.equal(x, sx[idx]) and torch.equal(y, sy[idx])


_THREAD_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(int(sys.argv[1]))
    from opentrain.checkpoint import encode_checkpoint, fresh_state, sha256_hex
    from opentrain.models import build_model, model_params
    from opentrain.spec import default_demo_spec
    from opentrain.training import train_segment
    spec = default_demo_spec()
    state = fresh_state(spec, model_params(build_model(spec.model)))
    train_segment(spec, state, 1, 1, steps=spec.training.inner_steps)
    print(torch.get_num_threads(), sha256_hex(encode_checkpoint(state, 1, 1)))
    """
)


def test_digest_is_independent_of_thread_count(trace: list[bytes]) -> None:
    procs = []
    for threads in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _THREAD_SCRIPT, str(threads)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(out.split())
    assert [r[0] for r in results] == ["1", "2"]
    assert results[0][1] == results[1][1] == sha256_hex(trace[-1])
