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
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from opentrain.cli.errors import fail, one_line_errors

if TYPE_CHECKING:
    from opentrain.spec import DilocoSpec, JobSpec
from opentrain.cli.job_chain import (
    _chain,
    _check_timeout,
    _global_model,
    _line,
    _render,
    _role,
    _with_total_reward,
    job_snapshot,
    preflight,
    sample_text,
)
from opentrain.cli.job_spec import (
    DEFAULT_CHEAT_FRACTION_BPS,
    SIZES,
    TOKEN,
    _first,
    _read,
    build_spec,
    probe_seconds_per_step,
    spec_problems,
    spec_summary,
)

job_app = typer.Typer(
    help="The sponsor: write a job spec, post a bounty, watch it, take the model.\n\n"
    "Example: opentrain job init -o spec.json && opentrain job post spec.json --yes",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


JobArg = Annotated[int, typer.Argument(help="job id", min=1)]
_errors = one_line_errors()


def _api_url() -> str:
    return os.environ.get("OPENTRAIN_API_URL", "http://127.0.0.1:8000").rstrip("/")


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
    compression: Annotated[
        str,
        typer.Option(
            help="what a slot uploads for aggregation: none (float32), int8, or topk "
            "(sparse, low-bit, with error feedback)"
        ),
    ] = "none",
    density: Annotated[
        float | None,
        typer.Option(min=1e-4, max=1.0, help="topk: fraction of entries sent [default: 0.03]"),
    ] = None,
    bits: Annotated[
        int | None, typer.Option(help="topk: bits per sent value, 2 or 4 [default: 2]")
    ] = None,
    probe: Annotated[bool, typer.Option(help="time 3 training steps on this machine")] = True,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a valid job spec with sensible defaults and print what it implies.

    Example: opentrain job init --model gpt --size tiny -o spec.json
    Example: opentrain job init --compression topk --density 0.03 --bits 2
    """
    if model not in ("gpt", "mlp"):
        fail(f"--model must be gpt or mlp, not {model!r}")
    if size not in SIZES:
        fail(f"--size must be one of {', '.join(SIZES)}, not {size!r}")
    if output.exists() and not force:
        fail(f"{output} exists: pass --force to overwrite it")
    from opentrain.spec import canonical_json

    spec = build_spec(
        model, size, data, rounds, slots, reward, fee, _codec(compression, density, bits)
    )
    seconds = probe_seconds_per_step(spec) if probe else None
    output.write_text(json.dumps(json.loads(canonical_json(spec)), indent=2) + "\n")
    _print_summary(spec, seconds, title=f"{output}: {spec.name}")


def _codec(compression: str, density: float | None, bits: int | None) -> DilocoSpec:
    """The spec's ``diloco`` part from ``job init``'s options, refusing what does not fit."""
    from opentrain.spec import DilocoSpec

    if compression not in ("none", "int8", "topk"):
        fail(f"--compression must be none, int8 or topk, not {compression!r}")
    if compression != "topk" and (density is not None or bits is not None):
        fail("--density and --bits apply to --compression topk only")
    if bits is not None and bits not in (2, 4):
        fail(f"--bits must be 2 or 4, not {bits}")
    fields: dict[str, object] = {"compression": compression}
    if density is not None:
        fields["density"] = density
    if bits is not None:
        fields["bits"] = bits
    return DilocoSpec.model_validate(fields)


def _print_summary(spec: JobSpec, seconds: float | None, title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("what", "value", "comment"):
        table.add_column(col)
    for row in spec_summary(spec, seconds):
        table.add_row(*row)
    out.print(table)


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
