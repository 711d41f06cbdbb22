"""Every known way to fake a segment is caught by re-executing it in tolerance mode, and honest
re-execution on another thread count or gradient-accumulation split is always accepted.

The job is the tiny gpt on the builtin corpus with the demo's calibrated per-group tolerances
(parameters, first moments, second moments); each attack forges checkpoint j+1 of slot (0, 1) and
``verification.check_segment`` must reject it.
"""

from __future__ import annotations

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
from opentrain.protocol.presets import DEMO_TOLERANCE, DEMO_TOLERANCES, small_gpt_spec
from opentrain.protocol.segment import check_segment, group_maxima, relative_l2
from opentrain.spec import (
    TENSOR_GROUPS,
    GroupTolerances,
    JobSpec,
    SpecError,
    TensorGroup,
    VerificationSpec,
    canonical_json,
    parse_spec,
)
from opentrain.training.checkpoint import decode_checkpoint, encode_checkpoint, fresh_state
from opentrain.training.corpus import publish_corpus
from opentrain.training.data import DataSource, data_source
from opentrain.training.models import build_model, model_params
from opentrain.training.train import train_segment

ROUND, SLOT, OTHER_SLOT = 0, 1, 0
UPDATE_TOL = GroupTolerances().update
J = 2  # the attacked segment: checkpoint J -> J + 1
Pair = tuple[torch.Tensor, torch.Tensor]


@pytest.fixture(scope="module")
def spec() -> JobSpec:
    spec = small_gpt_spec()
    assert spec.verification.mode == "tolerance"
    assert spec.verification.tolerances == DEMO_TOLERANCES == GroupTolerances()
    assert spec.verification.tolerance is None
    return spec


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStore:
    store = EmbeddedStore(tmp_path_factory.mktemp("attacks") / "store")
    publish_corpus(store)
    return store


@pytest.fixture(scope="module")
def data(spec: JobSpec, store: EmbeddedStore) -> DataSource:
    return data_source(spec, store)


def _trace(spec: JobSpec, data: DataSource, slot: int) -> list[bytes]:
    state = fresh_state(spec, model_params(build_model(spec.model)))
    out = [encode_checkpoint(state, ROUND, slot)]
    for _ in range(spec.training.num_segments):
        train_segment(spec, state, ROUND, slot, data=data)
        out.append(encode_checkpoint(state, ROUND, slot))
    return out


@pytest.fixture(scope="module")
def trace(spec: JobSpec, data: DataSource) -> list[bytes]:
    return _trace(spec, data, SLOT)


@pytest.fixture(scope="module")
def other_trace(spec: JobSpec, data: DataSource) -> list[bytes]:
    return _trace(spec, data, OTHER_SLOT)


def _verify(spec: JobSpec, trace: list[bytes], forged_end: bytes, data: DataSource) -> str:
    """Check segment J with a forged end checkpoint; returns the rejection reason."""
    result = check_segment(spec, trace[J], forged_end, J, ROUND, SLOT, data=data)
    assert not result.passed, result.reason
    return result.reason


def _bump_steps(spec: JobSpec, state_bytes: bytes, steps: int) -> bytes:
    """Claim ``steps`` more steps than were trained (step and AdamW counters)."""
    state = decode_checkpoint(spec, state_bytes)
    state.step += steps
    for p in state.model.parameters():
        state.optimizer.state[p]["step"] += steps
    return encode_checkpoint(state, ROUND, SLOT)


def _retag(raw: bytes, slot: int) -> bytes:
    tensors = dict(load_safetensors(raw))
    tensors["meta.slot"] = torch.tensor(slot, dtype=torch.int64)
    return safetensors.torch.save(tensors)


def test_honest_segment_passes(spec: JobSpec, trace: list[bytes], data: DataSource) -> None:
    for j in range(spec.training.num_segments):
        result = check_segment(spec, trace[j], trace[j + 1], j, ROUND, SLOT, data=data)
        assert result.passed, result.reason
        assert result.max_relative_distance == 0.0  # same machine, same threads: same bits
        # parameters, both moments and the step direction, of every parameter
        assert len(result.distances) == 4 * len(list(build_model(spec.model).parameters()))


# (a) no training ---------------------------------------------------------------------------


def test_a_checkpoint_copied_forward(spec: JobSpec, trace: list[bytes], data: DataSource) -> None:
    assert "expected" in _verify(spec, trace, trace[J], data)  # still at the start step
    lazy = _bump_steps(spec, trace[J], spec.training.segment_steps)  # claims the steps
    assert "not below tolerance" in _verify(spec, trace, lazy, data)


# (b) fewer steps than claimed ---------------------------------------------------------------


def test_b_fewer_steps_than_claimed(spec: JobSpec, trace: list[bytes], data: DataSource) -> None:
    state = decode_checkpoint(spec, trace[J])
    train_segment(spec, state, ROUND, SLOT, spec.training.segment_steps - 1, data=data)
    short = _bump_steps(spec, encode_checkpoint(state, ROUND, SLOT), 1)
    assert "not below tolerance" in _verify(spec, trace, short, data)


# (c) noise at or above the tolerance ----------------------------------------------------------


def _add_noise(
    spec: JobSpec,
    raw: bytes,
    factor: float,
    group: TensorGroup = "params",
    *,
    relative: bool = False,
) -> bytes:
    """Perturb every tensor of ``group`` (parameters or one AdamW moment) by seeded noise whose
    relative L2 size is ``factor`` x that group's tolerance, measured the way the verifier
    measures it. ``relative``: noise proportional to each element (x (1 + e)), the shape of
    rounding noise; else additive, spread evenly over the elements."""
    state = decode_checkpoint(spec, raw)
    gen = torch.Generator().manual_seed(1)
    bound = factor * spec.verification.tolerance_for(group)
    for p in state.model.parameters():
        target = p.data if group == "params" else state.optimizer.state[p][group]
        honest = target.clone()
        noise = torch.randn(honest.shape, generator=gen)
        if float(honest.norm()) == 0.0:
            continue  # nothing to be relative to
        if relative:
            noise = noise * honest
        elif group == "exp_avg_sq":
            noise = noise.abs()  # keep the second moment non-negative
        scale = bound * float(honest.norm()) / max(float(noise.norm()), 1e-30)
        while True:  # float32 rounding may land just short of the target: nudge up
            target.copy_(honest + noise * scale)
            if relative_l2(target, honest) >= bound:
                break
            scale *= 1.0001
    return encode_checkpoint(state, ROUND, SLOT)


@pytest.mark.parametrize("factor", [1.0, 2.0, 10.0])
def test_c_noise_at_or_above_tolerance(
    spec: JobSpec, trace: list[bytes], data: DataSource, factor: float
) -> None:
    reason = _verify(spec, trace, _add_noise(spec, trace[J + 1], factor), data)
    assert "of params" in reason and "not below tolerance" in reason


@pytest.mark.parametrize("group", ["exp_avg", "exp_avg_sq"])
def test_c_noise_on_optimizer_state_only(
    spec: JobSpec, trace: list[bytes], data: DataSource, group: TensorGroup
) -> None:
    """Moments are checked too, each against its own group's bound (the next segment starts
    from them), and through the step direction they imply: proportional noise at the moment's
    bound is caught by the moment's group, additive noise a hundredth of it already by the
    step direction (it lands on elements whose second moment is ~0)."""
    forged = _add_noise(spec, trace[J + 1], 1.0, group, relative=True)
    assert f"of {group} " in _verify(spec, trace, forged, data)
    forged = _add_noise(spec, trace[J + 1], 0.01, group)
    assert "of update " in _verify(spec, trace, forged, data)


@pytest.mark.parametrize("group", ["params", "exp_avg", "exp_avg_sq"])
def test_c_noise_well_below_tolerance_is_accepted(
    spec: JobSpec, trace: list[bytes], data: DataSource, group: TensorGroup
) -> None:
    """The boundary is the group's tolerance: a tenth of it (and of the step direction's, for
    noise shaped like rounding, proportional to each element) is indistinguishable from
    hardware noise."""
    v = spec.verification
    factor = 0.1 * min(1.0, v.tolerance_for("update") / v.tolerance_for(group))
    forged = _add_noise(spec, trace[J + 1], factor, group, relative=group != "params")
    result = check_segment(spec, trace[J], forged, J, ROUND, SLOT, data=data)
    assert result.passed, result.reason


def test_c_parameter_noise_the_single_tolerance_let_through_is_caught(
    spec: JobSpec, trace: list[bytes], data: DataSource
) -> None:
    """Half the old single bound (1e-4) on the parameters: a legacy spec (``tolerance``) passes
    it, the per-group default (parameters 1e-5) does not."""
    legacy = spec.model_copy(
        update={"verification": VerificationSpec(mode="tolerance", tolerance=DEMO_TOLERANCE)}
    )
    forged = _add_noise(legacy, trace[J + 1], 0.5)
    assert check_segment(legacy, trace[J], forged, J, ROUND, SLOT, data=data).passed
    assert "of params" in _verify(spec, trace, forged, data)


def test_verification_spec_tolerances_per_group_and_the_legacy_single_bound() -> None:
    v = VerificationSpec(mode="tolerance")
    assert [v.tolerance_for(g) for g in TENSOR_GROUPS] == [1e-5, 1e-4, 1e-4, UPDATE_TOL]
    legacy = VerificationSpec(mode="tolerance", tolerance=1e-3)
    assert {legacy.tolerance_for(g) for g in TENSOR_GROUPS} == {1e-3}
    custom = VerificationSpec(tolerances=GroupTolerances(params=1e-6, exp_avg_sq=5e-5))
    assert [custom.tolerance_for(g) for g in TENSOR_GROUPS] == [1e-6, 1e-4, 5e-5, UPDATE_TOL]
    with pytest.raises(ValueError, match="not both"):
        VerificationSpec(tolerance=1e-4, tolerances=GroupTolerances(params=1e-6))
    # a spec written before per-group bounds still parses and keeps its single bound; the
    # canonical encoding round-trips either way
    spec = small_gpt_spec()
    old = canonical_json(spec).replace(
        b'"tolerance":null,"tolerances":{"exp_avg":0.0001,"exp_avg_sq":0.0001,"params":1e-05,'
        + f'"update":{UPDATE_TOL!r}}}'.encode(),
        b'"tolerance":0.0001',
    )
    assert old != canonical_json(spec)
    parsed = parse_spec(old)
    assert parsed.verification.tolerance == 1e-4
    assert parse_spec(canonical_json(parsed)) == parsed
    assert parse_spec(canonical_json(spec)) == spec
    with pytest.raises(SpecError, match="verification.tolerances.params"):
        parse_spec(canonical_json(spec).replace(b'"params":1e-05', b'"params":0.0'))


# (d) the wrong data shard ---------------------------------------------------------------------


class WrongShard:
    """The job's data, but every batch drawn (same seeds) from one fixed other shard."""

    def __init__(self, inner: DataSource, shard: int) -> None:
        self.inner, self.shard = inner, shard

    def batch(self, shard: int, seed: int, size: int) -> Pair:
        return self.inner.batch(self.shard, seed, size)

    def validation(self) -> Pair:
        return self.inner.validation()


def test_d_wrong_data_shard(spec: JobSpec, trace: list[bytes], data: DataSource) -> None:
    state = decode_checkpoint(spec, trace[J])
    wrong = (ROUND * spec.slots_per_round + SLOT + 1) % spec.data.num_shards
    train_segment(spec, state, ROUND, SLOT, data=WrongShard(data, wrong))
    forged = encode_checkpoint(state, ROUND, SLOT)
    assert "not below tolerance" in _verify(spec, trace, forged, data)


# (e) a checkpoint replayed from another slot ------------------------------------------------


def test_e_replayed_from_another_slot(
    spec: JobSpec, trace: list[bytes], other_trace: list[bytes], data: DataSource
) -> None:
    replay = other_trace[J + 1]
    assert f"is for slot {OTHER_SLOT}" in _verify(spec, trace, replay, data)
    retagged = _retag(replay, SLOT)  # the tag rewritten to pass decoding
    assert "not below tolerance" in _verify(spec, trace, retagged, data)
    # ... or replayed from another position of the same slot
    assert "expected" in _verify(spec, trace, trace[J + 2], data)


# (f) a changed learning rate ----------------------------------------------------------------


@pytest.mark.parametrize("factor", [1.01, 0.5, 2.0])
def test_f_changed_learning_rate(
    spec: JobSpec, trace: list[bytes], data: DataSource, factor: float
) -> None:
    cheat = spec.model_copy(
        update={"training": spec.training.model_copy(update={"lr": spec.training.lr * factor})}
    )
    state = decode_checkpoint(cheat, trace[J])
    train_segment(cheat, state, ROUND, SLOT, data=data)
    forged = encode_checkpoint(state, ROUND, SLOT)
    assert "not below tolerance" in _verify(spec, trace, forged, data)


# honest runs are always accepted ------------------------------------------------------------

_NODE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import torch
    from opentrain.training.checkpoint import encode_checkpoint, fresh_state
    from opentrain.training.data import data_source
    from opentrain.training.models import build_model, model_params
    from opentrain.spec import parse_spec
    from opentrain.content.embedded import EmbeddedStore
    from opentrain.training.train import train_segment
    spec = parse_spec(Path(sys.argv[1]).read_bytes())
    data = data_source(spec, EmbeddedStore(Path(sys.argv[2])))
    out = Path(sys.argv[3])
    state = fresh_state(spec, model_params(build_model(spec.model)))
    (out / "0").write_bytes(encode_checkpoint(state, 0, 1))
    for j in range(spec.training.num_segments):
        train_segment(spec, state, 0, 1, data=data)
        (out / str(j + 1)).write_bytes(encode_checkpoint(state, 0, 1))
    print(torch.get_num_threads())
    """
)


def _node_traces(spec: JobSpec, store: EmbeddedStore, tmp: Path) -> dict[int, list[bytes]]:
    """A node's whole slot trained in a subprocess with 1 and with 2 threads."""
    (tmp / "spec.json").write_bytes(canonical_json(spec))
    procs = {}
    for threads in (1, 2):
        (tmp / str(threads)).mkdir()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        args = [str(tmp / "spec.json"), str(store.root), str(tmp / str(threads))]
        procs[threads] = subprocess.Popen(
            [sys.executable, "-c", _NODE, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    traces = {}
    for threads, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.split()[-1] == str(threads)
        n = spec.training.num_segments
        traces[threads] = [(tmp / str(threads) / str(j)).read_bytes() for j in range(n + 1)]
    return traces


def test_honest_nodes_on_1_and_2_threads_are_accepted(
    spec: JobSpec, store: EmbeddedStore, data: DataSource, tmp_path: Path
) -> None:
    for threads, node_trace in _node_traces(spec, store, tmp_path).items():
        for j in range(spec.training.num_segments):
            result = check_segment(
                spec, node_trace[j], node_trace[j + 1], j, ROUND, SLOT, data=data
            )
            assert result.passed, (threads, j, result.reason)
            for group, worst in group_maxima(result.distances).items():
                assert worst < spec.verification.tolerance_for(group) / 10, (threads, j, group)


def test_honest_node_with_another_accumulation_split_is_accepted(
    spec: JobSpec, data: DataSource
) -> None:
    """A node short of memory splits each batch in 2 micro-batches; the verifier does not."""
    split = spec.model_copy(
        update={"training": spec.training.model_copy(update={"micro_batches": 2})}
    )
    node_trace = _trace(split, data, SLOT)
    for j in range(spec.training.num_segments):
        result = check_segment(spec, node_trace[j], node_trace[j + 1], j, ROUND, SLOT, data=data)
        assert result.passed, (j, result.reason)
