"""Shared training core: spec encoding, models, corpus data, checkpoints, and the determinism
verification rests on. Most tests use the synthetic mlp job (no store, fastest); the gpt and
corpus tests use the tiny gpt job on the builtin corpus."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors.torch import load as load_safetensors

from opentrain.content.embedded import EmbeddedStore
from opentrain.content.errors import ContentError
from opentrain.protocol.presets import mlp_demo_spec, small_gpt_spec
from opentrain.protocol.segment import relative_l2
from opentrain.spec import (
    CorpusDataSpec,
    JobSpec,
    SpecError,
    TrainingSpec,
    canonical_json,
    load_spec_file,
    parse_spec,
    spec_digest,
)
from opentrain.training.checkpoint import (
    CheckpointError,
    TrainState,
    decode_checkpoint,
    decode_params,
    digest,
    encode_checkpoint,
    encode_params,
    fresh_state,
    move_state,
    sha256_hex,
    state_tensors,
)
from opentrain.training.corpus import (
    CHUNK_BYTES,
    DEFAULT_NUM_SHARDS,
    CorpusError,
    CorpusManifest,
    builtin_corpus,
    builtin_corpus_spec,
    corpus_data_spec,
    publish_corpus,
)
from opentrain.training.data import (
    DataError,
    DataSource,
    batch_seed,
    data_source,
    load_batch,
    shard_for,
    validation_set,
)
from opentrain.training.models import build_model, model_params, parameter_names
from opentrain.training.train import evaluate_loss, train_segment, train_slot_plain

ROUND, SLOT = 1, 1


@pytest.fixture(scope="module")
def spec() -> JobSpec:
    return mlp_demo_spec()


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
    assert raw == canonical_json(mlp_demo_spec())
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
    other = mlp_demo_spec(rounds=spec.rounds + 1)
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
        ("model", "name", "gpt9", "model: Input tag 'gpt9'"),
        ("training", "micro_batches", 5, "batch_size (32) must be a multiple of micro_batches"),
        ("training", "warmup_steps", 41, "warmup_steps (41) must not exceed"),
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
        "net.0.weight",
        "net.0.bias",
        "net.2.weight",
        "net.2.bias",
        "net.4.weight",
        "net.4.bias",
    ]
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb)
    other = build_model(spec.model.model_copy(update={"init_seed": 1}))
    assert not torch.equal(next(a.parameters()), next(other.parameters()))


def test_data_is_pure_and_follows_the_shard_rule(spec: JobSpec) -> None:
    assert shard_for(spec, 3, 1) == (3 * 2 + 1) % 8
    source = data_source(spec)
    x, y = source.shard(2)  # type: ignore[attr-defined]
    assert x.shape == (1024, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(torch.unique(y)) == spec.model.output_dim
    fresh = type(spec).model_validate(spec.model_dump())  # equal spec, different object
    x2, y2 = load_batch(fresh, 0, 1, 5)
    x1, y1 = load_batch(spec, 0, 1, 5)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (spec.training.batch_size, 16)
    assert not torch.equal(load_batch(spec, 0, 1, 6)[0], x1)
    assert batch_seed(spec, 0, 1, 5) != batch_seed(spec, 0, 1, 6)
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
    t0 = load_safetensors(trace[0])
    assert set(t0) == set(load_safetensors(trace[-1]))
    assert float(t0["optim.net.0.weight.exp_avg"].abs().sum()) == 0.0
    assert int(t0["meta.step"]) == 0
    assert int(load_safetensors(trace[-1])["meta.step"]) == spec.training.inner_steps


def test_params_encoding_round_trips(spec: JobSpec, g0: dict[str, torch.Tensor]) -> None:
    raw = encode_params(g0)
    params = decode_params(spec, raw)
    assert encode_params(params) == raw
    assert all(torch.equal(params[n], g0[n]) for n in g0)
    with pytest.raises(CheckpointError):
        decode_params(spec, raw[:-4])


def _reencode(raw: bytes, edit: dict[str, torch.Tensor | None]) -> bytes:
    tensors = dict(load_safetensors(raw))
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
    narrower = mlp_demo_spec(model={"name": "mlp", "hidden_dim": 32})
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
    sx, sy = data_source(spec).shard(shard_for(spec, ROUND, SLOT))  # type: ignore[attr-defined]
    gen = torch.Generator().manual_seed(batch_seed(spec, ROUND, SLOT, 3))
    idx = torch.randperm(spec.data.shard_size, generator=gen)[: spec.training.batch_size]
    assert torch.equal(x, sx[idx]) and torch.equal(y, sy[idx])


_THREAD_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(int(sys.argv[1]))
    from opentrain.training.checkpoint import encode_checkpoint, fresh_state, sha256_hex
    from opentrain.training.models import build_model, model_params
    from opentrain.protocol.presets import mlp_demo_spec
    from opentrain.training.train import train_segment
    spec = mlp_demo_spec()
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


# --- gpt on the builtin corpus ----------------------------------------------------------------

GPT_INIT_SHA256 = "79062e2d3b064d55d16e1be4d78f580dc9fbbc5609e5566872fb34d7697ef11c"


@pytest.fixture(scope="module")
def gpt_spec() -> JobSpec:
    return small_gpt_spec()


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStore:
    store = EmbeddedStore(tmp_path_factory.mktemp("corpus") / "store")
    publish_corpus(store)
    return store


@pytest.fixture(scope="module")
def gpt_data(gpt_spec: JobSpec, corpus_store: EmbeddedStore) -> DataSource:
    return data_source(gpt_spec, corpus_store)


def test_builtin_corpus_publishes_to_the_cid_the_spec_names(
    gpt_spec: JobSpec, corpus_store: EmbeddedStore
) -> None:
    assert isinstance(gpt_spec.data, CorpusDataSpec)
    cid = publish_corpus(corpus_store)  # publishing again is a no-op with the same CID
    assert cid == gpt_spec.data.manifest_cid
    assert corpus_data_spec(corpus_store, cid) == builtin_corpus_spec()
    manifest = CorpusManifest.from_json(corpus_store.get_bytes(cid))
    assert len(manifest.shards) == gpt_spec.data.num_shards == DEFAULT_NUM_SHARDS
    text = builtin_corpus()
    held = manifest.validation.size
    assert sum(s.size for s in manifest.shards) + held == len(text) > 400_000
    assert 0.04 < held / len(text) < 0.06
    first = corpus_store.get_bytes(manifest.shards[0].cid)
    assert first.startswith(text[:CHUNK_BYTES])  # chunk 0 is dealt to shard 0


def test_any_file_can_be_published(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"the quick brown fox jumps over the lazy dog. " * 4000)
    store = EmbeddedStore(tmp_path / "store")
    cid = publish_corpus(store, path, num_shards=3)
    data = corpus_data_spec(store, cid, validation_size=8)
    assert data.num_shards == 3 and data.validation_size == 8
    spec = small_gpt_spec(data=data)
    x, y = load_batch(spec, 0, 0, 0, data_source(spec, store))
    assert x.shape == (spec.training.batch_size, spec.model.block_size)
    tiny = tmp_path / "tiny.txt"
    tiny.write_bytes(b"too small")
    with pytest.raises(CorpusError, match="too small"):
        publish_corpus(store, tiny)
    with pytest.raises(CorpusError, match="cannot read"):
        publish_corpus(store, tmp_path / "missing.txt")


def test_corpus_data_comes_only_through_the_store_and_is_checked(tmp_path: Path) -> None:
    spec = small_gpt_spec(data=builtin_corpus_spec(num_shards=5))  # a corpus nobody opened
    with pytest.raises(DataError, match="open it with data_source"):
        data_source(spec)
    empty = EmbeddedStore(tmp_path / "empty")
    with pytest.raises(ContentError):
        data_source(spec, empty)
    store = EmbeddedStore(tmp_path / "tampered")
    cid = publish_corpus(store, num_shards=5)
    manifest = CorpusManifest.from_json(store.get_bytes(cid))
    block = store.block_path(manifest.shards[2].cid)
    block.write_bytes(block.read_bytes()[:-1] + b"!")
    with pytest.raises(ContentError, match="mismatch"):
        data_source(spec, store)


def test_gpt_batches_are_pure_windows_of_the_slot_shard(
    gpt_spec: JobSpec, corpus_store: EmbeddedStore, gpt_data: DataSource
) -> None:
    x, y = load_batch(gpt_spec, ROUND, SLOT, 3, gpt_data)
    b, t = gpt_spec.training.batch_size, gpt_spec.model.block_size
    assert x.shape == y.shape == (b, t) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # next-byte targets
    assert torch.equal(x, load_batch(gpt_spec, ROUND, SLOT, 3, gpt_data)[0])
    assert torch.equal(x, load_batch(gpt_spec, ROUND, SLOT, 3)[0])  # cached source
    assert not torch.equal(x, load_batch(gpt_spec, ROUND, SLOT, 4, gpt_data)[0])
    assert not torch.equal(x, load_batch(gpt_spec, ROUND, 0, 3, gpt_data)[0])
    manifest = CorpusManifest.from_json(corpus_store.get_bytes(gpt_spec.data.manifest_cid))
    shard = corpus_store.get_bytes(manifest.shards[shard_for(gpt_spec, ROUND, SLOT)].cid)
    for row, last in zip(x.tolist(), y[:, -1].tolist(), strict=True):
        assert bytes([*row, last]) in shard
    vx, vy = validation_set(gpt_spec, gpt_data)
    assert vx.shape == (gpt_spec.data.validation_size, t)
    held = corpus_store.get_bytes(manifest.validation.cid)
    assert bytes(vx[0].tolist()) in held and bytes(vx[-1].tolist()) in held


def test_gpt_init_is_seeded_and_golden(gpt_spec: JobSpec) -> None:
    """The init uses only serial RNG draws and separately rounded ops, so its bytes are the
    same on every CPU; the golden digest catches any change to that."""
    torch.manual_seed(0)
    before = torch.get_rng_state()
    model = build_model(gpt_spec.model)
    assert torch.equal(torch.get_rng_state(), before)
    assert parameter_names(model) == [
        "wte.weight",
        "wpe.weight",
        "blocks.0.ln_1.weight",
        "blocks.0.attn.c_attn.weight",
        "blocks.0.attn.c_proj.weight",
        "blocks.0.ln_2.weight",
        "blocks.0.mlp.0.weight",
        "blocks.0.mlp.2.weight",
        "ln_f.weight",
        "lm_head.weight",
    ]
    assert sha256_hex(encode_params(model_params(model))) == GPT_INIT_SHA256
    logits = model(torch.zeros(2, gpt_spec.model.block_size, dtype=torch.int64))
    assert logits.shape == (2, gpt_spec.model.block_size, 256)
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(1, gpt_spec.model.block_size + 1, dtype=torch.int64))


def test_gpt_segments_reproduce_and_the_loss_falls(gpt_spec: JobSpec, gpt_data: DataSource) -> None:
    g0 = model_params(build_model(gpt_spec.model))
    state = fresh_state(gpt_spec, g0)
    trace = [encode_checkpoint(state, ROUND, SLOT)]
    for _ in range(gpt_spec.training.num_segments):
        train_segment(gpt_spec, state, ROUND, SLOT, data=gpt_data)
        trace.append(encode_checkpoint(state, ROUND, SLOT))
    for j in range(gpt_spec.training.num_segments):
        again = decode_checkpoint(gpt_spec, trace[j])
        train_segment(gpt_spec, again, ROUND, SLOT, data=gpt_data)
        assert encode_checkpoint(again, ROUND, SLOT) == trace[j + 1]
    before = evaluate_loss(gpt_spec, g0, gpt_data)
    assert before == pytest.approx(math.log(256), rel=0.01)  # uniform over bytes at init
    assert evaluate_loss(gpt_spec, state.model, gpt_data) < 0.9 * before


def test_micro_batches_give_the_same_update_up_to_rounding(
    gpt_spec: JobSpec, gpt_data: DataSource
) -> None:
    start = encode_checkpoint(
        fresh_state(gpt_spec, model_params(build_model(gpt_spec.model))), ROUND, SLOT
    )
    ends = []
    for m in (1, 2, 4):
        spec = gpt_spec.model_copy(
            update={"training": gpt_spec.training.model_copy(update={"micro_batches": m})}
        )
        state = decode_checkpoint(spec, start)
        train_segment(spec, state, ROUND, SLOT, data=gpt_data)
        ends.append(state_tensors(state))
    for other in ends[1:]:
        for name, t in ends[0].items():
            assert relative_l2(other[name], t) < 1e-5, name


def test_warmup_is_a_pure_function_of_the_step(gpt_spec: JobSpec, gpt_data: DataSource) -> None:
    training = TrainingSpec(inner_steps=10, segment_steps=5, lr=1.0, warmup_steps=4)
    assert [training.lr_at(t) for t in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    spec = gpt_spec.model_copy(
        update={"training": gpt_spec.training.model_copy(update={"warmup_steps": 4})}
    )
    state = fresh_state(spec, model_params(build_model(spec.model)))
    train_segment(spec, state, ROUND, SLOT, steps=2, data=gpt_data)
    assert state.optimizer.param_groups[0]["lr"] == spec.training.lr * 2 / 4


def test_move_state_keeps_the_state(gpt_spec: JobSpec) -> None:
    state = fresh_state(gpt_spec, model_params(build_model(gpt_spec.model)))
    raw = encode_checkpoint(state, ROUND, SLOT)
    assert encode_checkpoint(move_state(state, "cpu"), ROUND, SLOT) == raw


def test_data_cli_publishes_and_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from opentrain.cli.data import data_app

    monkeypatch.setenv("OPENTRAIN_HOME", str(tmp_path))
    monkeypatch.delenv("OPENTRAIN_IPFS_API", raising=False)
    monkeypatch.delenv("OPENTRAIN_STORE_DIR", raising=False)
    runner = CliRunner()
    result = runner.invoke(data_app, ["publish"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == builtin_corpus_spec().manifest_cid
    result = runner.invoke(data_app, ["publish", "--json"])
    assert json.loads(result.stdout) == builtin_corpus_spec().model_dump(mode="json")
    result = runner.invoke(data_app, ["show", builtin_corpus_spec().manifest_cid])
    assert result.exit_code == 0 and "8 shards" in result.stdout
    result = runner.invoke(data_app, ["publish", str(tmp_path / "missing.txt")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot read") and "Traceback" not in result.output
