"""What ``job init`` and ``job validate`` compute: presets by size, the printed summary (proof
overhead, verifier share, minimum stake, checkpoint bytes, a 3-step probe), every problem of a
spec, one line each. No heavy import at module level.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentrain.chain.types import TOKEN, JobParams
from opentrain.cli.errors import fail

if TYPE_CHECKING:
    from opentrain.chain.client import ProtocolParams
    from opentrain.spec import DilocoSpec, JobSpec


DEFAULT_CHEAT_FRACTION_BPS = 1_000  # JobParams' default: a cheat fakes 10 % of the segments
DEFAULT_MIN_NODE_STAKE = 100 * TOKEN  # ProtocolParams' default, used when no chain is at hand
DEFAULT_CLAIM_TIMEOUT: int = JobParams.claim_timeout  # seconds


# -- init ----------------------------------------------------------------------------------------

SIZES = ("tiny", "small", "base")


def build_spec(
    model: str,
    size: str,
    data: str,
    rounds: int,
    slots: int,
    reward: float,
    fee: float,
    diloco: DilocoSpec | None = None,
) -> JobSpec:
    """A spec with sensible defaults for ``model`` at ``size`` (tiny: seconds per slot on a
    CPU, small: the demo's job, base: a larger gpt for GPUs), uploading pseudo-gradients as
    ``diloco`` says (default: float32)."""
    from opentrain.protocol.presets import DEFAULT_REVEAL_WINDOW
    from opentrain.spec import (
        GPTSpec,
        JobSpec,
        MLPSpec,
        RewardSpec,
        SyntheticDataSpec,
        TrainingSpec,
        VerificationSpec,
    )

    reward_spec = RewardSpec(
        reward_per_slot=int(round(reward * TOKEN)), verifier_fee=int(round(fee * TOKEN))
    )
    common: dict[str, Any] = {"rounds": rounds, "slots_per_round": slots, "reward": reward_spec}
    if diloco is not None:
        common["diloco"] = diloco
    if model == "mlp":
        if data != "builtin":
            raise ValueError("the mlp model trains on synthetic data: leave --data at builtin")
        shapes = {
            "tiny": (MLPSpec(hidden_dim=32), TrainingSpec(inner_steps=8, segment_steps=2)),
            "small": (MLPSpec(), TrainingSpec(lr=5e-3, outer_lr=0.7, outer_momentum=0.5)),
            "base": (
                MLPSpec(hidden_dim=512, depth=4),
                TrainingSpec(inner_steps=200, segment_steps=5, batch_size=128, lr=3e-3),
            ),
        }
        mlp, training = shapes[size]
        return JobSpec(
            name=f"mlp-{size}",
            model=mlp,
            data=SyntheticDataSpec(),
            training=training,
            verification=VerificationSpec(samples=2, reveal_window=DEFAULT_REVEAL_WINDOW),
            **common,
        )
    from opentrain.protocol.presets import DEMO_TOLERANCE

    gpt_shapes = {
        "tiny": (
            GPTSpec(n_layer=1, n_head=2, n_embd=32, block_size=32),
            TrainingSpec(inner_steps=8, segment_steps=2, batch_size=8, lr=3e-3, outer_momentum=0.5),
        ),
        "small": (
            GPTSpec(n_layer=2, n_head=4, n_embd=64, block_size=128),
            TrainingSpec(
                inner_steps=400,
                segment_steps=8,
                batch_size=32,
                lr=3e-3,
                warmup_steps=10,
                outer_momentum=0.5,
            ),
        ),
        "base": (
            GPTSpec(n_layer=6, n_head=8, n_embd=256, block_size=256),
            TrainingSpec(
                inner_steps=500,
                segment_steps=10,
                batch_size=32,
                lr=1e-3,
                warmup_steps=20,
                outer_momentum=0.5,
            ),
        ),
    }
    gpt, gpt_training = gpt_shapes[size]
    return JobSpec(
        name=f"gpt-{size}",
        model=gpt,
        data=_data_part(data),
        training=gpt_training,
        verification=VerificationSpec(
            mode="tolerance",
            tolerance=DEMO_TOLERANCE,
            samples=2,
            reveal_window=DEFAULT_REVEAL_WINDOW,
        ),
        **common,
    )


def _data_part(data: str) -> Any:
    from opentrain.training.corpus import builtin_corpus_spec, corpus_data_spec

    if data == "builtin":
        return builtin_corpus_spec()
    from opentrain.content.backends import store_from_settings
    from opentrain.settings import Settings

    return corpus_data_spec(store_from_settings(Settings()), data)


def minimum_stake(cheat_fraction_bps: int, samples: int, reward: int) -> int:
    """The smallest node stake for which cheating loses (``createJob``'s rule), in base units:
    ``opentrain.protocol.economics.minimum_stake``, the one formula; the largest value when no
    stake is enough (detection probability 0)."""
    from opentrain.protocol.economics import minimum_stake as least_stake

    try:
        return least_stake(reward, cheat_fraction_bps, samples)
    except ValueError:
        return 2**256 - 1


def checkpoint_bytes(spec: JobSpec) -> int:
    """Bytes of one slot checkpoint: fp32 parameters plus AdamW's two moments."""
    import torch

    from opentrain.training.models import build_model

    with torch.device("meta"):
        model = build_model(spec.model, initialize=False)
    params = sum(p.numel() for p in model.parameters())
    return params * 4 * 3


def update_bytes(spec: JobSpec) -> tuple[int, int]:
    """Bytes of one slot's upload for aggregation under the spec's codec, and under float32,
    encoding a pseudo-gradient of random normal values (the ``topk`` index stream varies a
    little with the values)."""
    import torch

    from opentrain.protocol.codecs import encode_pseudo_gradient
    from opentrain.training.models import build_model

    with torch.device("meta"):
        model = build_model(spec.model, initialize=False)
    gen = torch.Generator().manual_seed(0)
    delta = {n: torch.randn(p.shape, generator=gen) for n, p in model.named_parameters()}
    plain = spec.model_copy(
        update={"diloco": spec.diloco.model_copy(update={"compression": "none"})}
    )
    plain = plain.model_copy(
        update={"training": plain.training.model_copy(update={"pseudo_gradient": "float32"})}
    )
    return len(encode_pseudo_gradient(spec, delta)), len(encode_pseudo_gradient(plain, delta))


def _codec_name(spec: JobSpec) -> str:
    from opentrain.protocol.codecs import codec_of

    codec, d = codec_of(spec), spec.diloco
    if codec == "topk":
        return f"topk {d.density:.3g} x {d.bits}-bit, error decay {d.error_decay:g}"
    return {"none": "float32", "int8": "int8"}[codec]


def probe_seconds_per_step(spec: JobSpec, steps: int = 3) -> float:
    """Time ``steps`` real inner steps of the job on this machine."""
    import tempfile

    from opentrain.content.embedded import EmbeddedStore
    from opentrain.training.checkpoint import fresh_state
    from opentrain.training.data import ensure_job_data
    from opentrain.training.models import build_model, model_params
    from opentrain.training.train import train_segment

    with tempfile.TemporaryDirectory(prefix="opentrain-probe-") as tmp:
        from opentrain.spec import CorpusDataSpec

        store: Any = EmbeddedStore(Path(tmp))
        if isinstance(spec.data, CorpusDataSpec):
            from opentrain.training.corpus import builtin_corpus_spec

            if spec.data != builtin_corpus_spec(spec.data.num_shards, spec.data.validation_size):
                from opentrain.content.backends import store_from_settings
                from opentrain.settings import Settings

                store = store_from_settings(Settings())
        source = ensure_job_data(spec, store)
        state = fresh_state(spec, model_params(build_model(spec.model)))
        steps = min(steps, spec.training.inner_steps)
        train_segment(spec, state, 0, 0, steps=1, data=source)  # warm-up (lazy torch imports)
        began = time.perf_counter()
        train_segment(spec, state, 0, 0, steps=steps, data=source)
        return (time.perf_counter() - began) / steps


def spec_summary(spec: JobSpec, seconds_per_step: float | None) -> list[tuple[str, str, str]]:
    """(what, value, comment) rows describing what a spec implies."""
    t, v = spec.training, spec.verification
    per_slot = spec.reward.reward_per_slot + spec.reward.verifier_fee
    escrow = spec.rounds * spec.slots_per_round * per_slot
    stake = minimum_stake(DEFAULT_CHEAT_FRACTION_BPS, v.samples, spec.reward.reward_per_slot)
    ckpt = checkpoint_bytes(spec)
    rows = [
        ("model", spec.model.name, json.dumps(spec.model.model_dump(exclude={"name"}))),
        ("rounds x slots", f"{spec.rounds} x {spec.slots_per_round}", "DiLoCo rounds R, slots W"),
        (
            "steps per slot",
            f"H={t.inner_steps}, c={t.segment_steps}",
            f"{t.num_segments} committed segments per slot",
        ),
        (
            "verifier share",
            f"{v.samples * t.segment_steps / t.inner_steps:.1%}",
            f"k*c/H: k={v.samples} sampled segments are re-executed",
        ),
        (
            "escrow",
            f"{escrow / TOKEN:g} TRAIN",
            f"{spec.reward.reward_per_slot / TOKEN:g} per slot + "
            f"{spec.reward.verifier_fee / TOKEN:g} verifier fee",
        ),
        (
            "minimum node stake",
            f"{stake / TOKEN:.4g} TRAIN",
            f"cheating loses when a cheat fakes {DEFAULT_CHEAT_FRACTION_BPS / 100:g}% of segments",
        ),
        ("bytes per checkpoint", f"{ckpt / 2**20:.2f} MiB", "parameters + AdamW moments (fp32)"),
    ]
    sent, dense = update_bytes(spec)
    rows.append(
        (
            "upload per slot",
            f"{_format_bytes(sent)}",
            f"{_codec_name(spec)} pseudo-gradient for the aggregator"
            + (f" ({dense / sent:,.0f}x less than float32)" if sent < dense else ""),
        )
    )
    if seconds_per_step is not None:
        slot_seconds = seconds_per_step * t.inner_steps
        # proof work per segment: encode + sha256 + write one checkpoint (~1 GB/s on a CPU)
        proof = (ckpt / 1e9) * t.num_segments
        rows.append(
            (
                "node time per slot",
                f"{slot_seconds:.1f} s",
                f"on this machine (3-step probe: {seconds_per_step * 1000:.1f} ms/step)",
            )
        )
        rows.append(
            (
                "proof overhead",
                f"{proof / max(slot_seconds, 1e-9):.1%}",
                "checkpoint encode + digest + disk per segment, estimated",
            )
        )
        rows += _window_rows(spec, seconds_per_step)
    else:
        defaults = _default_windows()
        rows.append(
            (
                "windows",
                f"attest {defaults.attest_window} s, challenge {defaults.challenge_window} s",
                f"claim timeout {DEFAULT_CLAIM_TIMEOUT} s; run without --no-probe to check fit",
            )
        )
    return rows


def _format_bytes(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _default_windows() -> ProtocolParams:
    """The windows ``chain deploy`` gives a public chain (web3 imported only when run)."""
    from opentrain.chain.client import ProtocolParams

    return ProtocolParams()


def _window_rows(spec: JobSpec, seconds_per_step: float) -> list[tuple[str, str, str]]:
    """The windows the job runs under and whether the work fits them on this machine: a slot
    must be submitted within the claim timeout, a verifier must re-execute its k segments within
    the attest window (3x margin for slower verifiers)."""
    t, v = spec.training, spec.verification
    slot = seconds_per_step * t.inner_steps
    verify = seconds_per_step * t.segment_steps * v.samples
    defaults = _default_windows()
    attest = max(defaults.attest_window, round(3 * verify))
    fits = "fits" if 3 * slot <= DEFAULT_CLAIM_TIMEOUT else "TOO SHORT: slow nodes will expire"
    return [
        (
            "claim timeout",
            f"{DEFAULT_CLAIM_TIMEOUT} s",
            f"{fits} (a slot takes {slot:.1f} s here, 3x margin)",
        ),
        (
            "attest window",
            f"{attest} s",
            f"max(chain default {defaults.attest_window} s, 3 x re-execution {verify:.1f} s); "
            f"deploy with chain deploy --attest-window if the chain's is shorter",
        ),
        (
            "challenge window",
            f"{defaults.challenge_window} s",
            "after each verdict and aggregate (the chain's own setting)",
        ),
    ]


# -- validate ------------------------------------------------------------------------------------


_UNION_TAGS = ("mlp", "gpt", "synthetic", "corpus")


def spec_problems(raw: bytes, min_node_stake: int | None = DEFAULT_MIN_NODE_STAKE) -> list[str]:
    """Every problem of a spec, one line each (empty: the contract would accept it).
    ``min_node_stake`` None skips the economics check (``post`` does it with the chain's)."""
    from pydantic import ValidationError

    from opentrain.protocol.economics import cheating_loses, detection_probability
    from opentrain.spec import MAX_SPEC_BYTES, JobSpec

    if len(raw) > MAX_SPEC_BYTES:
        return [f"too large ({len(raw)} bytes, limit {MAX_SPEC_BYTES})"]
    try:
        spec = JobSpec.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            parts = [str(p) for p in e["loc"] if str(p) not in _UNION_TAGS]
            msg = " ".join(str(e["msg"]).removeprefix("Value error, ").split())
            if e["type"] == "json_invalid":
                msg = f"invalid JSON ({e.get('ctx', {}).get('error', msg)})"
            problems.append(f"{'.'.join(parts)}: {msg}" if parts else msg)
        return problems
    k, reward = spec.verification.samples, spec.reward.reward_per_slot
    if min_node_stake is None:
        return []
    if not cheating_loses(DEFAULT_CHEAT_FRACTION_BPS, k, min_node_stake, reward):
        p = detection_probability(DEFAULT_CHEAT_FRACTION_BPS, k) / 1e18
        need = minimum_stake(DEFAULT_CHEAT_FRACTION_BPS, k, reward)
        return [
            f"economics: cheating pays (detection {p:.1%} with {k} samples, node stake "
            f"{min_node_stake / TOKEN:g} TRAIN, reward {reward / TOKEN:g} TRAIN per slot): "
            f"raise verification.samples or lower the reward (needs a stake of "
            f"{need / TOKEN:.4g} TRAIN)"
        ]
    return []


def _first(problems: list[str]) -> str:
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more: opentrain job validate)" if more else "")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
