"""``opentrain job``: the sponsor's commands — write a spec, post the bounty, watch it, take the
model, try it, cancel, refund.

Every heavy import (torch, web3, the content store) happens inside the command that needs it,
so ``opentrain job --help`` answers at once. Errors are one line and exit code 1.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from opentrain.cli.errors import fail, one_line_errors

if TYPE_CHECKING:
    from opentrain.chain.client import Chain
    from opentrain.spec import JobSpec

job_app = typer.Typer(
    help="The sponsor: write a job spec, post a bounty, watch it, take the model.\n\n"
    "Example: opentrain job init -o spec.json && opentrain job post spec.json --yes",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

TOKEN = 10**18
DEFAULT_CHEAT_FRACTION_BPS = 1_000  # JobParams' default: a cheat fakes 10 % of the segments
DEFAULT_MIN_NODE_STAKE = 100 * TOKEN  # ProtocolParams' default, used when no chain is at hand

JobArg = Annotated[int, typer.Argument(help="job id", min=1)]
_errors = one_line_errors()


def _api_url() -> str:
    return os.environ.get("OPENTRAIN_API_URL", "http://127.0.0.1:8000").rstrip("/")


# -- init ----------------------------------------------------------------------------------------

SIZES = ("tiny", "small", "base")


def build_spec(
    model: str, size: str, data: str, rounds: int, slots: int, reward: float, fee: float
) -> JobSpec:
    """A spec with sensible defaults for ``model`` at ``size`` (tiny: seconds per slot on a
    CPU, small: the demo's job, base: a larger gpt for GPUs)."""
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
            verification=VerificationSpec(samples=2),
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
        verification=VerificationSpec(mode="tolerance", tolerance=DEMO_TOLERANCE, samples=2),
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
    """The smallest node stake for which cheating loses (``createJob``'s rule), in base units."""
    from opentrain.protocol.economics import cheating_loses

    if cheating_loses(cheat_fraction_bps, samples, 0, reward):
        return 0
    low, high = 0, max(reward, 1)
    while not cheating_loses(cheat_fraction_bps, samples, high, reward):
        low, high = high, high * 2
        if high > 2**200:
            return 2**256 - 1  # detection probability 0: no stake is enough
    while high - low > 1:
        mid = (low + high) // 2
        if cheating_loses(cheat_fraction_bps, samples, mid, reward):
            high = mid
        else:
            low = mid
    return high


def checkpoint_bytes(spec: JobSpec) -> int:
    """Bytes of one slot checkpoint: fp32 parameters plus AdamW's two moments."""
    import torch

    from opentrain.training.models import build_model

    with torch.device("meta"):
        model = build_model(spec.model, initialize=False)
    params = sum(p.numel() for p in model.parameters())
    return params * 4 * 3


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
    return rows


@job_app.command()
@_errors
def init(
    output: Annotated[Path, typer.Option("-o", "--output", help="spec file to write")] = Path(
        "spec.json"
    ),
    model: Annotated[str, typer.Option(help="gpt (byte-level LM) or mlp (synthetic task)")] = "gpt",
    size: Annotated[str, typer.Option(help="tiny, small or base")] = "small",
    data: Annotated[
        str, typer.Option(help="builtin (CPython's docs) or the CID of a published corpus")
    ] = "builtin",
    rounds: Annotated[int, typer.Option(min=1, help="DiLoCo rounds R")] = 2,
    slots: Annotated[int, typer.Option(min=1, help="slots per round W")] = 2,
    reward: Annotated[float, typer.Option(min=0, help="TRAIN paid per accepted slot")] = 1.0,
    fee: Annotated[float, typer.Option(min=0, help="TRAIN paid to the verifier per slot")] = 0.1,
    probe: Annotated[bool, typer.Option(help="time 3 training steps on this machine")] = True,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a valid job spec with sensible defaults and print what it implies.

    Example: opentrain job init --model gpt --size tiny -o spec.json
    """
    if model not in ("gpt", "mlp"):
        fail(f"--model must be gpt or mlp, not {model!r}")
    if size not in SIZES:
        fail(f"--size must be one of {', '.join(SIZES)}, not {size!r}")
    if output.exists() and not force:
        fail(f"{output} exists: pass --force to overwrite it")
    from opentrain.spec import canonical_json

    spec = build_spec(model, size, data, rounds, slots, reward, fee)
    seconds = probe_seconds_per_step(spec) if probe else None
    output.write_text(json.dumps(json.loads(canonical_json(spec)), indent=2) + "\n")
    _print_summary(spec, seconds, title=f"{output}: {spec.name}")


def _print_summary(spec: JobSpec, seconds: float | None, title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("what", "value", "comment"):
        table.add_column(col)
    for row in spec_summary(spec, seconds):
        table.add_row(*row)
    out.print(table)


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


@job_app.command()
@_errors
def validate(spec_file: Annotated[Path, typer.Argument(help="job spec (JSON)")]) -> None:
    """Check a spec without posting anything: every problem on its own line, exit 1 if any.

    Example: opentrain job validate spec.json
    """
    problems = spec_problems(_read(spec_file))
    if problems:
        for p in problems:
            typer.echo(f"error: {spec_file}: {p}", err=True)
        raise typer.Exit(1)
    from opentrain.spec import parse_spec, spec_digest

    spec = parse_spec(_read(spec_file))
    out.print(f"{spec_file}: valid; spec digest {spec_digest(spec).hex()}")


# -- post ----------------------------------------------------------------------------------------


def _role() -> Any:
    from opentrain.context import role_context

    return role_context()


def _with_total_reward(spec: JobSpec, total: float) -> JobSpec:
    """Spread ``total`` TRAIN over every slot, keeping the spec's node/verifier split."""
    from opentrain.spec import RewardSpec

    slots = spec.rounds * spec.slots_per_round
    per_slot = int(round(total * TOKEN)) // slots
    r = spec.reward
    share = r.verifier_fee / (r.reward_per_slot + r.verifier_fee) if r.reward_per_slot else 0.0
    fee = int(per_slot * share)
    reward = RewardSpec(reward_per_slot=per_slot - fee, verifier_fee=fee)
    return spec.model_copy(update={"reward": reward})


def preflight(ctx: Any, spec: JobSpec, cheat_fraction_bps: int) -> list[str]:
    """What ``createJob`` (and the token transfer) would refuse, checked before sending."""
    from opentrain.protocol.economics import cheating_loses, detection_probability
    from opentrain.protocol.jobs import job_params

    chain = ctx.chain
    problems: list[str] = []
    params = job_params(spec, b"\x01" * 32)
    m = chain.market.functions
    if m.paused().call():
        problems.append("the market is paused: createJob would revert")
    limits = (
        ("rounds", params.rounds, int(m.MAX_ROUNDS().call())),
        ("slots_per_round", params.slots_per_round, int(m.MAX_SLOTS_PER_ROUND().call())),
        ("segments (H / c)", params.num_segments, int(m.MAX_SEGMENTS().call())),
        ("verification.samples", params.sample_count, int(m.MAX_SAMPLES().call())),
    )
    for name, value, limit in limits:
        if value > limit:
            problems.append(f"{name} is {value}, the contract allows at most {limit}")
    stake = int(chain.market.functions.nodeStake().call())
    k, reward = spec.verification.samples, spec.reward.reward_per_slot
    if not cheating_loses(cheat_fraction_bps, k, stake, reward):
        p = detection_probability(cheat_fraction_bps, k) / 1e18
        need = minimum_stake(cheat_fraction_bps, k, reward)
        problems.append(
            f"economics guard: cheating would pay (detection {p:.1%} with {k} samples x "
            f"(stake {stake / TOKEN:g} + reward {reward / TOKEN:g}) <= reward): raise "
            f"verification.samples or lower the reward per slot (it needs a stake of "
            f"{need / TOKEN:.4g} TRAIN)"
        )
    balance = ctx.account.balance()
    if balance < params.escrow:
        problems.append(
            f"balance: {ctx.account.address} holds {balance / TOKEN:g} TRAIN, the escrow is "
            f"{params.escrow / TOKEN:g} TRAIN (on a dev chain: opentrain chain fund ADDRESS)"
        )
    if int(chain.w3.eth.get_balance(ctx.account.address)) == 0:
        problems.append(f"gas: {ctx.account.address} has no ether to pay for transactions")
    return problems


@job_app.command()
@_errors
def post(
    spec_file: Annotated[Path, typer.Argument(help="job spec (JSON)")],
    reward: Annotated[
        float | None,
        typer.Option(help="total TRAIN to escrow, spread over every slot (default: the spec's)"),
    ] = None,
    cheat_fraction: Annotated[
        float, typer.Option(min=0.01, max=100, help="% of segments a cheat is assumed to fake")
    ] = DEFAULT_CHEAT_FRACTION_BPS / 100,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Upload the spec and G_0, approve and escrow the bounty; prints the job id and the
    dashboard URL. Refuses, before sending anything, what the contract would refuse.

    Example: opentrain job post spec.json --reward 10 --yes
    """
    raw = _read(spec_file)
    problems = spec_problems(raw, min_node_stake=None)  # the chain's stake is checked below
    if problems:
        fail(f"{spec_file}: {_first(problems)}")
    from opentrain.spec import canonical_json, parse_spec

    spec = parse_spec(raw)
    if reward is not None:
        if reward <= 0:
            fail("--reward must be positive")
        spec = _with_total_reward(spec, reward)
    ctx = _role()
    bps = int(round(cheat_fraction * 100))
    problems = preflight(ctx, spec, bps)
    if problems:
        fail(f"not posted: {_first(problems)}")
    escrow = (
        spec.rounds
        * spec.slots_per_round
        * (spec.reward.reward_per_slot + spec.reward.verifier_fee)
    )
    if not yes and not typer.confirm(
        f"escrow {escrow / TOKEN:g} TRAIN from {ctx.account.address} for {spec.name!r}?"
    ):
        fail("not posted")
    from dataclasses import replace

    from opentrain.protocol.jobs import job_params
    from opentrain.training.checkpoint import digest, encode_params
    from opentrain.training.data import ensure_job_data
    from opentrain.training.models import build_model, model_params

    ensure_job_data(spec, ctx.store)
    spec_cid = ctx.store.put_bytes(canonical_json(spec))
    g0 = encode_params(model_params(build_model(spec.model)))
    g0_cid = ctx.store.put_bytes(g0)
    params = replace(job_params(spec, digest(g0)), cheat_fraction_bps=bps)
    job_id = ctx.account.create_job(params, spec_cid, g0_cid)
    out.print(f"job {job_id} posted: escrow {escrow / TOKEN:g} TRAIN, spec {spec_cid}")
    out.print(f"dashboard: {_api_url()}/ui/jobs/{job_id}")


# -- status --------------------------------------------------------------------------------------


def _chain() -> Chain:
    from opentrain.context import connect_chain
    from opentrain.settings import Settings

    return connect_chain(Settings())


def job_snapshot(chain: Chain, job_id: int) -> dict[str, Any]:
    """Everything ``job status`` shows, read from the chain."""
    from opentrain.chain.types import AggregateStatus, JobStatus, Verdict
    from opentrain.chain.views import aggregate_info, job_info, verification_info

    info = job_info(chain, job_id)
    p = info.params
    rounds = []
    for r in range(p.rounds):
        agg = aggregate_info(chain, job_id, r)
        rounds.append(
            {
                "round": r,
                "aggregate": agg.status.name.lower(),
                "validation_loss": agg.validation_loss
                if agg.status != AggregateStatus.NONE
                else None,
            }
        )
    slots = []
    current = min(info.current_round, p.rounds - 1)
    names = {0: "open", 1: "claimed", 2: "submitted", 3: "accepted"}
    for s in range(p.slots_per_round):
        node, deadline, status, contribution = chain.market.functions.slotState(
            job_id, current, s
        ).call()
        verdict = ""
        if int(contribution):
            v = verification_info(chain, int(contribution))
            verdict = v.verdict.name.lower() if v.verdict != Verdict.NONE else "pending"
            if v.finalized:
                verdict += " (final)"
        slots.append(
            {
                "slot": s,
                "state": names.get(int(status), str(status)),
                "node": node if int(status) else "",
                "contribution": int(contribution),
                "verdict": verdict,
            }
        )
    done = info.status != JobStatus.OPEN
    return {
        "job": job_id,
        "status": info.status.name.lower(),
        "round": info.current_round,
        "rounds": p.rounds,
        "escrow_left": info.escrow,
        "slots": slots,
        "round_records": rounds,
        "done": done,
    }


def _render(snap: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table

    head = (
        f"job {snap['job']}: {snap['status']}, round {min(snap['round'], snap['rounds'])} of "
        f"{snap['rounds']}, escrow left {snap['escrow_left'] / TOKEN:g} TRAIN"
    )
    slots = Table(title=f"slots of round {min(snap['round'], snap['rounds'] - 1)}")
    for col in ("slot", "state", "claimed by", "contribution", "verdict"):
        slots.add_column(col)
    for s in snap["slots"]:
        slots.add_row(
            str(s["slot"]),
            s["state"],
            s["node"],
            str(s["contribution"] or ""),
            s["verdict"],
        )
    rounds = Table(title="rounds")
    for col in ("round", "aggregate", "validation loss"):
        rounds.add_column(col)
    for r in snap["round_records"]:
        loss = r["validation_loss"]
        rounds.add_row(str(r["round"]), r["aggregate"], "" if loss is None else f"{loss:.4f}")
    return Group(head, slots, rounds)


def _line(snap: dict[str, Any]) -> str:
    slots = " ".join(
        f"{s['slot']}:{s['state']}{'/' + s['verdict'] if s['verdict'] else ''}"
        for s in snap["slots"]
    )
    losses = ",".join(
        f"{r['validation_loss']:.4f}" for r in snap["round_records"] if r["validation_loss"]
    )
    return (
        f"job {snap['job']} {snap['status']} round {snap['round']}/{snap['rounds']} "
        f"slots [{slots}] losses [{losses}] escrow {snap['escrow_left'] / TOKEN:g}"
    )


@job_app.command()
@_errors
def status(
    job_id: JobArg,
    watch: Annotated[bool, typer.Option(help="redraw until the job ends")] = False,
    interval: Annotated[float, typer.Option(help="seconds between redraws")] = 2.0,
    timeout: Annotated[
        float | None, typer.Option(help="with --watch: give up (exit 1) after this many s")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Rounds, slots (open / claimed by / submitted / verdict), validation loss per round and
    escrow left; --watch redraws until the job completes or is cancelled.

    Example: opentrain job status 1 --watch
    """
    chain = _chain()
    snap = job_snapshot(chain, job_id)
    if not watch:
        if as_json:
            typer.echo(json.dumps(snap))
        else:
            out.print(_render(snap))
        return
    began = time.monotonic()
    if out.is_terminal and not as_json:
        from rich.live import Live

        with Live(_render(snap), console=out, auto_refresh=False) as live:
            while not snap["done"]:
                _check_timeout(began, timeout)
                time.sleep(interval)
                snap = job_snapshot(chain, job_id)
                live.update(_render(snap), refresh=True)
        return
    last = ""  # not a terminal: one line per change, then the final tables
    while True:
        line = _line(snap)
        if line != last:
            typer.echo(json.dumps(snap) if as_json else line)
            last = line
        if snap["done"]:
            break
        _check_timeout(began, timeout)
        time.sleep(interval)
        snap = job_snapshot(chain, job_id)
    if not as_json:
        out.print(_render(snap))


def _check_timeout(began: float, timeout: float | None) -> None:
    if timeout is not None and time.monotonic() - began > timeout:
        fail(f"the job did not finish within {timeout:g} s")


# -- model and generate --------------------------------------------------------------------------


def _global_model(round_: int | None, job_id: int) -> tuple[Any, int, bytes]:
    """(job, round, G_round bytes checked against the chain)."""
    from opentrain.chain.types import ChainError
    from opentrain.content.backends import store_from_settings
    from opentrain.protocol.jobs import load_global_model, load_job
    from opentrain.settings import Settings

    settings = Settings()
    from opentrain.context import connect_chain

    chain = connect_chain(settings)
    store = store_from_settings(settings)
    job = load_job(chain, store, job_id)
    final = job.info.params.rounds
    r = final if round_ is None else round_
    if not 0 <= r <= final:
        raise ChainError(f"job {job_id} has models G_0..G_{final}; no G_{r}")
    if r > 0:
        from opentrain.chain.views import aggregate_info

        if aggregate_info(chain, job_id, r - 1).status.name != "FINAL":
            raise ChainError(
                f"job {job_id} has no final model G_{r} yet (it is in round "
                f"{job.info.current_round}): wait, or pass --round {job.info.current_round}"
            )
    raw, _ = load_global_model(chain, store, job, r)
    return job, r, raw


@job_app.command()
@_errors
def model(
    job_id: JobArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="file to write")] = Path(
        "model.safetensors"
    ),
    round_: Annotated[
        int | None,
        typer.Option("--round", help="G_R: the model round R starts from (default: the final)"),
    ] = None,
) -> None:
    """Fetch the final (or round R) global checkpoint, verify its digest against the chain and
    write its parameters only (safetensors).

    Example: opentrain job model 1 -o model.safetensors
    """
    import hashlib

    import safetensors.torch

    from opentrain.training.checkpoint import decode_params

    job, r, raw = _global_model(round_, job_id)
    params = decode_params(job.spec, raw)
    safetensors.torch.save_file(
        {name: t.contiguous() for name, t in params.items()},
        str(output),
        metadata={"job": str(job_id), "round": str(r), "sha256": hashlib.sha256(raw).hexdigest()},
    )
    count = sum(t.numel() for t in params.values())
    out.print(
        f"wrote {output}: G_{r} of job {job_id} ({count:,} parameters), digest "
        f"{hashlib.sha256(raw).hexdigest()[:16]}… matches the chain"
    )


def sample_text(
    spec: JobSpec, params: dict[str, Any], prompt: str, tokens: int, seed: int, temperature: float
) -> str:
    """Sample ``tokens`` bytes after ``prompt`` from a byte-level gpt (seeded, CPU)."""
    import torch

    from opentrain.training.models import build_model

    model = build_model(spec.model, initialize=False)
    model.load_state_dict(params, strict=True)
    model.eval()
    block = spec.model.block_size  # type: ignore[union-attr]
    ids = list(prompt.encode("utf-8")) or [10]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(tokens):
            x = torch.tensor([ids[-block:]], dtype=torch.long)
            logits = model(x)[0, -1] / max(temperature, 1e-6)
            probs = torch.softmax(logits, dim=-1)
            ids.append(int(torch.multinomial(probs, 1, generator=gen)))
    return bytes(ids).decode("utf-8", errors="replace")


@job_app.command()
@_errors
def generate(
    job_id: JobArg,
    prompt: Annotated[str, typer.Option(help="text to continue")] = "The ",
    tokens: Annotated[int, typer.Option(min=1, max=10_000, help="bytes to sample")] = 200,
    round_: Annotated[int | None, typer.Option("--round", help="use G_R instead")] = None,
    temperature: Annotated[float, typer.Option(min=0.01, help="sampling temperature")] = 0.8,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
) -> None:
    """Sample text from a gpt job's model (verified against the chain), so a sponsor sees what
    they paid for.

    Example: opentrain job generate 1 --prompt "The " --tokens 200
    """
    from opentrain.spec import GPTSpec
    from opentrain.training.checkpoint import decode_params

    job, r, raw = _global_model(round_, job_id)
    if not isinstance(job.spec.model, GPTSpec):
        fail(f"job {job_id} trains an {job.spec.model.name}, not a language model")
    text = sample_text(job.spec, decode_params(job.spec, raw), prompt, tokens, seed, temperature)
    err.print(f"[dim]G_{r} of job {job_id}:[/]")
    typer.echo(text)


# -- cancel and refund ---------------------------------------------------------------------------


@job_app.command()
@_errors
def cancel(job_id: JobArg) -> None:
    """Stop new claims on your job (work in flight still settles); refund afterwards.

    Example: opentrain job cancel 1 && opentrain job refund 1
    """
    from opentrain.chain.views import job_info

    ctx = _role()
    info = job_info(ctx.chain, job_id)
    if info.sponsor.lower() != ctx.account.address.lower():
        fail(f"job {job_id} belongs to {info.sponsor}, not to {ctx.account.address}")
    if info.status.name != "OPEN":
        fail(f"job {job_id} is {info.status.name.lower()}, not open")
    ctx.account.cancel_job(job_id)
    out.print(
        f"job {job_id} cancelled; refundable now {ctx.account.refundable(job_id) / TOKEN:g} TRAIN"
    )


@job_app.command()
@_errors
def refund(job_id: JobArg) -> None:
    """Take back the escrow of your completed or cancelled job that nothing can still earn.

    Example: opentrain job refund 1
    """
    from opentrain.chain.views import job_info

    ctx = _role()
    info = job_info(ctx.chain, job_id)
    if info.sponsor.lower() != ctx.account.address.lower():
        fail(f"job {job_id} belongs to {info.sponsor}, not to {ctx.account.address}")
    if info.status.name == "OPEN":
        fail(f"job {job_id} is still open: cancel it first (opentrain job cancel {job_id})")
    amount = ctx.account.refundable(job_id)
    if amount == 0:
        fail(f"job {job_id}: nothing to refund (escrow left {info.escrow / TOKEN:g} TRAIN)")
    ctx.account.refund(job_id)
    out.print(f"refunded {amount / TOKEN:g} TRAIN of job {job_id}")
