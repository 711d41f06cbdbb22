"""Ready-made job specs: the demo's CPU job and the small jobs tests and benchmarks use."""

from __future__ import annotations

from typing import Any

from opentrain.spec import (
    GPTSpec,
    GroupTolerances,
    JobSpec,
    RewardSpec,
    TrainingSpec,
    VerificationSpec,
)

# Per tensor group, calibrated by bench/determinism.py on the demo job (docs/determinism.md);
# the spec's defaults.
DEMO_TOLERANCES = GroupTolerances()
# The single bound every group had before (a legacy ``verification.tolerance``).
DEMO_TOLERANCE = 1e-4
# For jobs with training.precision "bf16": bf16 rounding makes honest re-executions on
# another micro-batch split differ by up to 3.5e-3 (demo job); 14x above that. It catches a
# step skipped or another shard, not a 1 % learning-rate change (docs/determinism.md).
BF16_TOLERANCE = 5e-2


# Seconds a node has, once its seed is recorded, to publish the sampled checkpoints and reveal
# them (availability on demand); new specs use it, older ones (0) published everything.
DEFAULT_REVEAL_WINDOW = 600


def default_demo_spec(**overrides: Any) -> JobSpec:
    """The CPU job of ``opentrain demo``: the demo gpt on CPython's docs, 2 rounds x 2 slots.

    Shaped so three targets hold at once (``bench/``): a segment's proof work (checkpoint,
    digest, disk, upload) under 2 % of its training time, which needs c x tokens per step large
    against the checkpoint size; the verifier's re-execution under 5 % of the node's training,
    which needs n = H/c >= 40 segments at k = 2 samples (it costs k*c/H); and the whole demo in
    a few minutes on 2 CPU cores, which is why the model is small (d = 64). The data
    part names the builtin corpus by CID, which is computed locally, so the spec exists
    before anything is published; ``opentrain.corpus.publish_corpus`` stores the same bytes.

    Top-level fields may be overridden, e.g. ``default_demo_spec(rounds=3)``; a bf16
    ``training`` gets ``BF16_TOLERANCE`` unless ``verification`` is given too."""
    from opentrain.training.corpus import builtin_corpus_spec

    fields: dict[str, Any] = {
        "name": "demo-gpt",
        "rounds": 2,
        "slots_per_round": 2,
        "reward": RewardSpec(reward_per_slot=10**18, verifier_fee=10**17),
        "model": GPTSpec(n_layer=2, n_head=4, n_embd=64, block_size=128),
        "data": builtin_corpus_spec(),
        "training": TrainingSpec(
            inner_steps=400,
            segment_steps=8,
            batch_size=32,
            lr=3e-3,
            warmup_steps=10,
            outer_lr=0.7,
            outer_momentum=0.5,
        ),
        "verification": VerificationSpec(
            mode="tolerance",
            tolerances=DEMO_TOLERANCES,
            samples=2,
            reveal_window=DEFAULT_REVEAL_WINDOW,
        ),
    }
    fields.update(overrides)
    if "verification" not in overrides and fields["training"].precision == "bf16":
        fields["verification"] = VerificationSpec(
            mode="tolerance",
            tolerance=BF16_TOLERANCE,
            samples=2,
            reveal_window=DEFAULT_REVEAL_WINDOW,
        )
    return JobSpec(**fields)


def small_gpt_spec(**overrides: Any) -> JobSpec:
    """A tiny gpt job on the builtin corpus for tests: same code paths, a fraction of the cost."""
    fields: dict[str, Any] = {
        "model": GPTSpec(n_layer=1, n_head=2, n_embd=32, block_size=32),
        "training": TrainingSpec(
            inner_steps=8,
            segment_steps=2,
            batch_size=8,
            lr=3e-3,
            outer_lr=0.7,
            outer_momentum=0.5,
        ),
        "name": "test-gpt",
    }
    fields.update(overrides)
    return default_demo_spec(**fields)


def mlp_demo_spec(**overrides: Any) -> JobSpec:
    """The walking skeleton's synthetic mlp job (no corpus, no store): the fastest tests."""
    fields: dict[str, Any] = {
        "name": "demo-mlp",
        "rounds": 2,
        "slots_per_round": 2,
        "reward": RewardSpec(reward_per_slot=10**18, verifier_fee=10**17),
        # tuned on this toy task: DiLoCo's 0.9 outer momentum overshoots at H=40
        "training": TrainingSpec(lr=5e-3, outer_lr=0.7, outer_momentum=0.5),
    }
    fields.update(overrides)
    return JobSpec(**fields)
