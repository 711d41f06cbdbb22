"""How far can a node steer a slot's output through tolerance mode without ever failing a check?

The attack (issue 14): at every segment the node trains honestly, then pushes the committed
checkpoint along a direction D of its choice by just under each bound (BELOW x tolerance). A
verifier re-executing any segment from the node's own previous checkpoint lands on the honest
continuation, so what it measures is the injected push: every segment passes, and the drift
accumulates over the slot's n segments. Measured: the relative L2 distance of the slot's output
parameters from an honest slot's, and its component along D.

- before: the single bound 1e-4 on parameters and both moments (the old rule). The push moves
  the parameters along D and the first moments against D. Where the second moment is ~0 (bytes
  the data never holds have zero embedding gradients), a first moment moved by a hair is a
  full-size AdamW step, lr per step, so the output ends O(1) away: the moments were the wide
  channel, not the parameters.
- after: the per-group defaults, with the AdamW step direction ("update") bounded too. The
  moments can then only steer through the step direction, by under its bound; the push is the
  largest one under every bound at once.

``python tests/test_steering.py [--demo]`` prints the figures (``--demo``: the demo job's shape,
50 segments; minutes on 2 cores); docs/determinism.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.presets import DEMO_TOLERANCE, default_demo_spec, small_gpt_spec
from opentrain.protocol.segment import SegmentCheck, check_segment, group_maxima, tensor_group
from opentrain.spec import TENSOR_GROUPS, JobSpec, TensorGroup, TrainingSpec, VerificationSpec
from opentrain.training.checkpoint import (
    ADAMW_EPS,
    TrainState,
    decode_checkpoint,
    encode_checkpoint,
    fresh_state,
)
from opentrain.training.corpus import publish_corpus
from opentrain.training.data import DataSource, data_source
from opentrain.training.models import build_model, model_params
from opentrain.training.train import train_segment

ROUND, SLOT = 0, 1
BELOW = 0.9  # each injection is this fraction of its group's tolerance


@dataclass
class Steering:
    """The outcome of one steered slot against the honest one."""

    segments: int
    passed: int  # segments whose forged end passed check_segment
    drift: float  # ||steered - honest|| / ||honest|| over all parameters of the output
    along: float  # the drift's component along D, relative to ||honest||
    worst: dict[TensorGroup, float]  # largest distance the verifier measured, per group

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__}


def _flat(state: TrainState) -> torch.Tensor:
    return torch.cat([p.detach().double().flatten() for p in state.model.parameters()])


def _directions(state: TrainState) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(2024)
    return [torch.randn(p.shape, generator=gen) for p in state.model.parameters()]


def _push(
    spec: JobSpec, state: TrainState, directions: list[torch.Tensor], *, via_update: bool
) -> None:
    """Move the parameters along D by BELOW x their bound, and the first moments so as to move
    later steps along D: directly by BELOW x their bound (``via_update`` False, the naive push
    the old rule lets through), or through the step direction, by BELOW x its bound, capped so
    the first moments' own change stays under BELOW x theirs."""
    v = spec.verification
    t = state.step
    bc1, bc2 = 1.0 - spec.training.beta1**t, 1.0 - spec.training.beta2**t
    with torch.no_grad():
        for p, d in zip(state.model.parameters(), directions, strict=True):
            opt = state.optimizer.state[p]
            unit = d / d.norm()
            m, sq = opt["exp_avg"], opt["exp_avg_sq"]
            if via_update:
                denom = (sq.double().sqrt() / math.sqrt(bc2) + ADAMW_EPS) * bc1
                u_norm = float((m.double() / denom).norm())
                delta = unit.double() * (BELOW * v.tolerance_for("update") * u_norm) * denom
                cap = BELOW * v.tolerance_for("exp_avg") * float(m.norm())
                if float(delta.norm()) > cap:
                    delta *= cap / float(delta.norm())
                m.sub_(delta.to(m.dtype))
            else:
                m.sub_(unit * (BELOW * v.tolerance_for("exp_avg") * float(m.norm())))
            p.add_(unit * (BELOW * v.tolerance_for("params") * float(p.norm())))


def old_rule(result: SegmentCheck) -> bool:
    """The check before per-group bounds: parameters and moments below 1e-4, nothing else."""
    kept = [d for name, d in result.distances.items() if tensor_group(name) != "update"]
    return result.recomputed_sha256 == result.claimed_sha256 or all(
        d < DEMO_TOLERANCE for d in kept
    )


def steer(
    spec: JobSpec,
    data: DataSource,
    *,
    via_update: bool,
    rule: str = "spec",
    check: bool = True,
    segments: int | None = None,
) -> Steering:
    """Train one slot (or its first ``segments``) honestly and steered; judge every steered
    segment by ``rule`` ("spec": ``check_segment`` under ``spec``; "old": ``old_rule``)."""
    g0 = model_params(build_model(spec.model))
    honest = fresh_state(spec, g0)
    steered = fresh_state(spec, g0)
    directions = _directions(steered)
    start = encode_checkpoint(steered, ROUND, SLOT)
    passed, n = 0, segments or spec.training.num_segments
    worst: dict[TensorGroup, float] = dict.fromkeys(TENSOR_GROUPS, 0.0)
    for j in range(n):
        train_segment(spec, honest, ROUND, SLOT, data=data)
        train_segment(spec, steered, ROUND, SLOT, data=data)
        _push(spec, steered, directions, via_update=via_update)
        end = encode_checkpoint(steered, ROUND, SLOT)
        if check:
            result = check_segment(spec, start, end, j, ROUND, SLOT, data=data)
            passed += old_rule(result) if rule == "old" else result.passed
            for g, d in group_maxima(result.distances).items():
                worst[g] = max(worst[g], d)
        steered = decode_checkpoint(spec, end)  # what the next segment starts from
        start = end
    a, b = _flat(steered), _flat(honest)
    unit = torch.cat([d.double().flatten() for d in directions])
    unit = unit / unit.norm()
    drift = float((a - b).norm() / b.norm())
    along = float(torch.dot(a - b, unit) / b.norm())
    return Steering(n, passed, drift, along, worst)


def _with_tolerance(spec: JobSpec, single: float | None) -> JobSpec:
    verification = VerificationSpec(
        mode="tolerance", tolerance=single, samples=spec.verification.samples
    )
    return spec.model_copy(update={"verification": verification})


def _test_spec() -> JobSpec:
    """The tiny gpt with 12 segments of 2 steps: enough segments for the drift to build up."""
    spec = small_gpt_spec()
    training = TrainingSpec(**{**spec.training.model_dump(), "inner_steps": 24})
    return spec.model_copy(update={"training": training})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DataSource:
    store = EmbeddedStore(tmp_path_factory.mktemp("steering") / "store")
    publish_corpus(store)
    return data_source(_test_spec(), store)


def test_steering_before_and_after_per_group_bounds(data: DataSource) -> None:
    spec = _test_spec()
    n = spec.training.num_segments
    legacy = _with_tolerance(spec, DEMO_TOLERANCE)
    per_group = _with_tolerance(spec, None)
    before = steer(legacy, data, via_update=False, rule="old")
    caught = steer(per_group, data, via_update=False, segments=2)
    after = steer(per_group, data, via_update=True)
    print(json.dumps({"before": before.to_dict(), "after": after.to_dict()}))
    # before: every steered segment passed the old rule, and the output went O(1) away
    assert before.passed == n
    assert before.worst["params"] < DEMO_TOLERANCE and before.worst["exp_avg"] < DEMO_TOLERANCE
    assert before.drift > 0.1 and before.along > 0.05
    # the same push now fails at once: the step direction it implies is far off
    assert caught.passed == 0 and caught.worst["update"] > 1.0
    # after: the best push under every bound passes every segment ...
    assert after.passed == n
    for group in TENSOR_GROUPS:
        assert after.worst[group] < per_group.verification.tolerance_for(group)
    # ... and its reach is of the order of n pushes of BELOW x the parameters' bound (the
    # moments, bounded through the step direction, add less than as much again)
    push = n * BELOW * per_group.verification.tolerance_for("params")
    assert 0.5 * push < after.along <= after.drift < 3 * push
    assert after.drift < before.drift / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="the demo job's shape (50 segments)")
    parser.add_argument("--no-check", action="store_true", help="skip the verifier's checks")
    args = parser.parse_args()
    import tempfile

    spec = default_demo_spec() if args.demo else _test_spec()
    store = EmbeddedStore(Path(tempfile.mkdtemp(prefix="opentrain-steering-")) / "store")
    publish_corpus(store)
    source = data_source(spec, store)
    out: dict[str, object] = {"segments": spec.training.num_segments, "below": BELOW}
    check = not args.no_check
    runs = {
        "before (single 1e-4, old rule)": (DEMO_TOLERANCE, False, "old"),
        "after (per group, best push)": (None, True, "spec"),
    }
    for label, (single, via_update, rule) in runs.items():
        spec_run = _with_tolerance(spec, single)
        result = steer(spec_run, source, via_update=via_update, rule=rule, check=check)
        out[label] = result.to_dict()
        print(label, out[label], file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
