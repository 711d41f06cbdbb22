"""Mixed-precision jobs (``training.precision: bf16``): forward and backward under bf16
autocast with float32 master weights and AdamW state; verifiers re-execute under the same
precision because it is part of the spec. An honest bf16 node on 1 or 2 threads is accepted
at the bf16 tolerance; a cheat is rejected; an fp32 spec keeps its canonical JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.presets import BF16_TOLERANCE, DEMO_TOLERANCE, small_gpt_spec
from opentrain.protocol.segment import check_segment
from opentrain.spec import JobSpec, VerificationSpec, canonical_json, parse_spec, spec_digest
from opentrain.training.checkpoint import decode_checkpoint, encode_checkpoint, fresh_state
from opentrain.training.corpus import publish_corpus
from opentrain.training.data import DataSource, data_source
from opentrain.training.models import build_model, model_params
from opentrain.training.train import train_segment

ROUND, SLOT = 0, 1


def bf16_spec() -> JobSpec:
    spec = small_gpt_spec(
        verification=VerificationSpec(mode="tolerance", tolerance=BF16_TOLERANCE, samples=2)
    )
    return spec.model_copy(
        update={"training": spec.training.model_copy(update={"precision": "bf16"})}
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStore:
    s = EmbeddedStore(tmp_path_factory.mktemp("store"))
    publish_corpus(s)
    return s


def test_precision_is_in_the_spec_and_fp32_digests_are_unchanged() -> None:
    fp32 = small_gpt_spec()
    assert fp32.training.precision == "fp32"
    assert b"precision" not in canonical_json(fp32)  # left out at its default: old digests hold
    bf16 = bf16_spec()
    doc = json.loads(canonical_json(bf16))
    assert doc["training"]["precision"] == "bf16"
    assert parse_spec(canonical_json(bf16)) == bf16 and spec_digest(bf16) != spec_digest(fp32)
    again = json.loads(canonical_json(fp32))
    again["training"]["precision"] = "fp32"  # spelled out, it is the same job
    assert spec_digest(parse_spec(json.dumps(again))) == spec_digest(fp32)
    # the presets give a bf16 job the bf16 tolerance
    preset = small_gpt_spec(training=fp32.training.model_copy(update={"precision": "bf16"}))
    assert preset.verification.tolerance == BF16_TOLERANCE
    with pytest.raises(ValueError, match="precision"):
        again["training"]["precision"] = "fp16"
        parse_spec(json.dumps(again))


def test_bf16_trains_in_bf16_and_keeps_float32_state(store: EmbeddedStore) -> None:
    spec, data = bf16_spec(), data_source(bf16_spec(), store)
    g0 = model_params(build_model(spec.model))
    ends = {}
    for precision in ("fp32", "bf16"):
        job = spec.model_copy(
            update={"training": spec.training.model_copy(update={"precision": precision})}
        )
        state = fresh_state(job, g0)
        train_segment(job, state, ROUND, SLOT, data=data)
        assert {p.dtype for p in state.model.parameters()} == {torch.float32}
        moments = [t for s in state.optimizer.state.values() for t in s.values()]
        assert {t.dtype for t in moments if t.dim() > 0} == {torch.float32}
        ends[precision] = encode_checkpoint(state, ROUND, SLOT)
    # different arithmetic, same checkpoint layout
    assert ends["fp32"] != ends["bf16"] and len(ends["fp32"]) == len(ends["bf16"])
    # a bf16 segment re-executed in fp32 is far outside the fp32 tolerance (why the spec says)
    fp32_job = spec.model_copy(
        update={"training": spec.training.model_copy(update={"precision": "fp32"})}
    )
    start = encode_checkpoint(fresh_state(spec, g0), ROUND, SLOT)
    wrong = check_segment(fp32_job, start, ends["bf16"], 0, ROUND, SLOT, data=data)
    assert wrong.max_relative_distance > 10 * DEMO_TOLERANCE


_NODE = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from opentrain.content.embedded import EmbeddedStore
    from opentrain.spec import parse_spec
    from opentrain.training.checkpoint import encode_checkpoint, fresh_state
    from opentrain.training.data import data_source
    from opentrain.training.models import build_model, model_params
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
    """A bf16 node's whole slot trained in a subprocess with 1 and with 2 threads."""
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
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.split()[-1] == str(threads)
        n = spec.training.num_segments
        traces[threads] = [(tmp / str(threads) / str(j)).read_bytes() for j in range(n + 1)]
    return traces


def test_honest_bf16_nodes_on_1_and_2_threads_are_accepted_and_a_cheat_is_not(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    spec = bf16_spec()
    data: DataSource = data_source(spec, store)
    traces = _node_traces(spec, store, tmp_path)
    for threads, trace in traces.items():  # this process re-executes with its own threads
        for j in range(spec.training.num_segments):
            result = check_segment(spec, trace[j], trace[j + 1], j, ROUND, SLOT, data=data)
            assert result.passed, (threads, j, result.reason)
    # a cheat: the last segment trained one step short, step counters bumped to claim it
    n, c = spec.training.num_segments, spec.training.segment_steps
    state = decode_checkpoint(spec, traces[1][n - 1], round=ROUND, slot=SLOT)
    train_segment(spec, state, ROUND, SLOT, steps=c - 1, data=data)
    state.step += 1
    for p in state.model.parameters():
        state.optimizer.state[p]["step"] += 1
    short = check_segment(
        spec, traces[1][n - 1], encode_checkpoint(state, ROUND, SLOT), n - 1, ROUND, SLOT, data=data
    )
    assert not short.passed and short.max_relative_distance > spec.verification.tolerance
