"""DiLoCo rounds: the outer step, its momentum in the global checkpoint, int8 pseudo-gradients,
and bitwise reproducibility of the aggregate (the digest every party checks exactly)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.aggregation import (
    aggregate,
    aggregate_pseudo_gradients,
    decode_pseudo_gradient,
    dequantize_int8,
    encode_pseudo_gradient,
    mean_pseudo_gradient,
    outer_step,
    pseudo_gradient,
    quantize_int8,
)
from opentrain.protocol.presets import small_gpt_spec
from opentrain.spec import JobSpec, canonical_json
from opentrain.training.checkpoint import (
    CheckpointError,
    decode_checkpoint,
    decode_global,
    decode_params,
    encode_checkpoint,
    encode_params,
    fresh_state,
    state_params,
)
from opentrain.training.corpus import publish_corpus
from opentrain.training.data import DataSource, data_source
from opentrain.training.models import build_model, model_params
from opentrain.training.train import evaluate_loss, train_segment

Params = dict[str, torch.Tensor]


def _with(spec: JobSpec, **training: object) -> JobSpec:
    return spec.model_copy(update={"training": spec.training.model_copy(update=training)})


@pytest.fixture(scope="module")
def spec() -> JobSpec:
    return small_gpt_spec(rounds=3)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStore:
    store = EmbeddedStore(tmp_path_factory.mktemp("diloco") / "store")
    publish_corpus(store)
    return store


@pytest.fixture(scope="module")
def data(spec: JobSpec, store: EmbeddedStore) -> DataSource:
    return data_source(spec, store)


def _slot_outputs(spec: JobSpec, g: bytes, round_: int, data: DataSource) -> list[bytes]:
    params = decode_params(spec, g)
    outputs = []
    for slot in range(spec.slots_per_round):
        state = fresh_state(spec, params)
        train_segment(spec, state, round_, slot, spec.training.inner_steps, data=data)
        outputs.append(encode_checkpoint(state, round_, slot))
    return outputs


@pytest.fixture(scope="module")
def round0(spec: JobSpec, data: DataSource) -> tuple[bytes, list[bytes]]:
    g0 = encode_params(model_params(build_model(spec.model)))
    return g0, _slot_outputs(spec, g0, 0, data)


# --- int8 quantization -----------------------------------------------------------------------


def test_quantization_is_min_max_8_bit_within_half_a_step() -> None:
    t = torch.linspace(-3.0, 5.0, 1000) ** 3 / 7.0
    codes, lo, scale = quantize_int8(t)
    assert codes.dtype == torch.uint8 and codes.shape == t.shape
    assert int(codes.min()) == 0 and int(codes.max()) == 255
    assert float(lo) == float(t.min())
    assert float(scale) == pytest.approx(float(t.max() - t.min()) / 255)
    back = dequantize_int8(codes, lo, scale)
    assert float((back - t).abs().max()) <= float(scale) / 2 * (1 + 1e-5)
    again = quantize_int8(t.clone())
    assert torch.equal(again[0], codes) and torch.equal(again[2], scale)


def test_constant_tensor_quantizes_exactly() -> None:
    t = torch.full((5, 3), -0.25)
    codes, lo, scale = quantize_int8(t)
    assert float(scale) == 1.0 and int(codes.max()) == 0
    assert torch.equal(dequantize_int8(codes, lo, scale), t)


def test_pseudo_gradient_encoding_round_trips_and_is_a_quarter(
    spec: JobSpec, round0: tuple[bytes, list[bytes]]
) -> None:
    g0, outputs = round0
    params = decode_params(spec, g0)
    delta = pseudo_gradient(params, decode_params_of(spec, outputs[0]))
    fp32, int8 = spec, _with(spec, pseudo_gradient="int8")
    raw32, raw8 = encode_pseudo_gradient(fp32, delta), encode_pseudo_gradient(int8, delta)
    assert encode_pseudo_gradient(int8, delta) == raw8  # canonical
    back32 = decode_pseudo_gradient(fp32, raw32)
    assert all(torch.equal(back32[n], delta[n]) for n in delta)
    back8 = decode_pseudo_gradient(int8, raw8)
    for name, t in delta.items():
        step = float(t.max() - t.min()) / 255
        assert float((back8[name] - t).abs().max()) <= step / 2 * (1 + 1e-5) + 1e-12
    numel = sum(t.numel() for t in delta.values())
    assert len(raw8) < numel + 1024 and len(raw32) > 4 * numel
    assert len(raw32) / len(raw8) > 3.95
    with pytest.raises(CheckpointError):
        decode_pseudo_gradient(fp32, raw8)  # an int8 upload where float32 is expected


def decode_params_of(spec: JobSpec, checkpoint: bytes) -> Params:
    return state_params(decode_checkpoint(spec, checkpoint))


def test_non_finite_pseudo_gradients_are_refused(spec: JobSpec) -> None:
    params = model_params(build_model(spec.model))
    bad = {n: t.clone() for n, t in params.items()}
    next(iter(bad.values()))[0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        mean_pseudo_gradient(params, [bad])
    with pytest.raises(ValueError, match="not finite"):
        encode_pseudo_gradient(spec, pseudo_gradient(params, bad))


# --- the outer step --------------------------------------------------------------------------


def test_aggregate_is_nesterov_on_the_mean_pseudo_gradient(
    spec: JobSpec, round0: tuple[bytes, list[bytes]]
) -> None:
    g0, outputs = round0
    params, momentum = decode_global(spec, g0)
    assert all(float(m.abs().max()) == 0.0 for m in momentum.values())  # G_0: zero momentum
    outs = [decode_params_of(spec, o) for o in outputs]
    lr, mu = spec.training.outer_lr, spec.training.outer_momentum
    new_params, new_momentum = decode_global(spec, aggregate(spec, g0, outputs))
    for name, g in params.items():
        delta = ((g - outs[0][name]) + (g - outs[1][name])) / 2
        m = momentum[name] * mu + delta
        assert torch.allclose(new_momentum[name], m, rtol=0, atol=1e-7)
        assert torch.allclose(new_params[name], g - (delta + m * mu) * lr, rtol=0, atol=1e-7)


def test_outer_momentum_carries_over_rounds(
    spec: JobSpec, round0: tuple[bytes, list[bytes]], data: DataSource
) -> None:
    """G_1 holds m_1; round 1's update uses it, so G_2 differs from a momentum-free step."""
    g0, outputs = round0
    g1 = aggregate(spec, g0, outputs)
    params1, m1 = decode_global(spec, g1)
    assert any(float(t.abs().max()) > 0 for t in m1.values())
    outputs1 = _slot_outputs(spec, g1, 1, data)
    g2 = aggregate(spec, g1, outputs1)
    delta = mean_pseudo_gradient(params1, [decode_params_of(spec, o) for o in outputs1])
    with_m = outer_step(spec, params1, m1, delta)[0]
    zero = {n: torch.zeros_like(t) for n, t in m1.items()}
    without_m = outer_step(spec, params1, zero, delta)[0]
    got = decode_params(spec, g2)
    assert all(torch.equal(got[n], with_m[n]) for n in got)
    assert not all(torch.equal(got[n], without_m[n]) for n in got)


def test_int8_aggregate_equals_aggregating_the_uploads(
    spec: JobSpec, round0: tuple[bytes, list[bytes]]
) -> None:
    """The aggregator may use the nodes' int8 uploads or the full outputs: same bytes."""
    int8 = _with(spec, pseudo_gradient="int8")
    g0, outputs = round0
    params = decode_params(spec, g0)
    uploads = [
        encode_pseudo_gradient(int8, pseudo_gradient(params, decode_params_of(spec, o)))
        for o in outputs
    ]
    from_outputs = aggregate(int8, g0, outputs)
    assert aggregate_pseudo_gradients(int8, g0, uploads) == from_outputs
    assert from_outputs != aggregate(spec, g0, outputs)  # quantization did something...
    close = decode_params(spec, aggregate(spec, g0, outputs))
    for name, t in decode_params(int8, from_outputs).items():  # ...but little
        assert float((t - close[name]).norm() / close[name].norm()) < 0.02
    fp32_uploads = [
        encode_pseudo_gradient(spec, pseudo_gradient(params, decode_params_of(spec, o)))
        for o in outputs
    ]
    assert aggregate_pseudo_gradients(spec, g0, fp32_uploads) == aggregate(spec, g0, outputs)


_AGGREGATE = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    import torch
    from opentrain.protocol.aggregation import aggregate
    from opentrain.spec import parse_spec
    folder = Path(sys.argv[1])
    g0 = (folder / "g0").read_bytes()
    print(torch.get_num_threads())
    for kind in ("float32", "int8"):
        spec = parse_spec((folder / f"{kind}.json").read_bytes())
        outs = [(folder / f"out{i}").read_bytes() for i in range(spec.slots_per_round)]
        print(hashlib.sha256(aggregate(spec, g0, outs)).hexdigest())
    """
)


def test_aggregate_digest_is_independent_of_thread_count(
    spec: JobSpec, round0: tuple[bytes, list[bytes]], tmp_path: Path
) -> None:
    """G_{r+1} is checked by digest: 1 and 2 threads must give the same bytes, float32 or int8."""
    g0, outputs = round0
    (tmp_path / "g0").write_bytes(g0)
    for i, out in enumerate(outputs):
        (tmp_path / f"out{i}").write_bytes(out)
    expected = []
    for kind in ("float32", "int8"):
        job = _with(spec, pseudo_gradient=kind)
        (tmp_path / f"{kind}.json").write_bytes(canonical_json(job))
        expected.append(hashlib.sha256(aggregate(job, g0, outputs)).hexdigest())
    procs = {}
    for threads in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        procs[threads] = subprocess.Popen(
            [sys.executable, "-c", _AGGREGATE, str(tmp_path)],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    for threads, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.split() == [str(threads), *expected]


# --- rounds ----------------------------------------------------------------------------------


def test_diloco_rounds_reduce_the_held_out_loss(spec: JobSpec, data: DataSource) -> None:
    g = encode_params(model_params(build_model(spec.model)))
    losses = [evaluate_loss(spec, decode_params(spec, g), data)]
    for round_ in range(spec.rounds):
        g = aggregate(spec, g, _slot_outputs(spec, g, round_, data))
        losses.append(evaluate_loss(spec, decode_params(spec, g), data))
    assert losses[-1] < losses[1] < losses[0], losses
    assert losses[-1] < 0.9 * losses[0], losses
