"""``opentrain node``: the GPU owner's commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from node.earnings import earnings_command
from opentrain.chain.types import TOKEN, ChainError

if TYPE_CHECKING:
    from node.daemon import NodeDaemon
    from opentrain.context import RoleContext

# Heavy modules (torch, web3) are imported inside the commands, so `--help` answers at once.

log = logging.getLogger("opentrain.node")

node_app = typer.Typer(
    help="Stake, train slots, submit, earn.\n\n"
    "Example: opentrain node stake 200 && opentrain node run",
    no_args_is_help=True,
)
out = Console()

Amount = Annotated[float, typer.Argument(help="amount in TRAIN")]


def role_context() -> RoleContext:
    from opentrain.context import role_context as context

    return context()


def _daemon() -> NodeDaemon:
    from node.daemon import NodeDaemon

    ctx = role_context()
    return NodeDaemon(ctx.account, ctx.store, ctx.settings.home / "node")


@node_app.command()
def init(
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="OPENTRAIN_KEYSTORE_PASSWORD",
        ),
    ],
    import_key: Annotated[
        bool, typer.Option("--import", help="import an existing key (prompted, hidden)")
    ] = False,
) -> None:
    """Create this node's key in an encrypted keystore (or import one).

    Example: opentrain node init
    """
    from opentrain.chain.keys import create_keystore
    from opentrain.settings import Settings

    settings = Settings()
    key = typer.prompt("private key", hide_input=True) if import_key else None
    path = settings.keystore or settings.home / "keystore.json"
    address = create_keystore(path, password, key)
    out.print(f"keystore {path} holds {address}")


@node_app.command()
def stake(amount: Amount) -> None:
    """Stake TRAIN so this node can claim slots (each claim locks the minimum node stake).

    Example: opentrain node stake 200
    """
    ctx = role_context()
    ctx.account.stake(int(amount * TOKEN))
    out.print(f"staked {amount:g} TRAIN; total {ctx.account.stake_of() / TOKEN:g}")


@node_app.command()
def unstake(amount: Amount) -> None:
    """Start unbonding free stake; withdraw it with `withdraw` after the unbonding delay.

    Example: opentrain node unstake 100
    """
    ctx = role_context()
    fn = ctx.chain.stakes.functions.requestUnbond(int(amount * TOKEN))
    ctx.account.send(fn, "requestUnbond")
    out.print(f"unbonding {amount:g} TRAIN")


@node_app.command()
def withdraw() -> None:
    """Withdraw earned credits and any stake whose unbonding delay has passed.

    Example: opentrain node withdraw
    """
    ctx = role_context()
    credits = ctx.account.credits()
    if credits:
        ctx.account.withdraw()
        out.print(f"withdrew {credits / TOKEN:g} TRAIN of earnings")
    amount, ready = ctx.chain.stakes.functions.unbondingOf(ctx.account.address).call()
    if amount and ctx.chain.now() >= ready:  # ready is a unix time
        ctx.account.send(ctx.chain.stakes.functions.withdrawUnbonded(), "withdrawUnbonded")
        out.print(f"withdrew {amount / TOKEN:g} TRAIN of unbonded stake")
    elif not credits:
        out.print("nothing to withdraw yet")


@node_app.command()
def status(
    workdir: Annotated[Path | None, typer.Option(help="checkpoint folder")] = None,
) -> None:
    """Stake, locks, earnings and open claims of this node, and the disk its slots use.

    Example: opentrain node status
    """
    from rich.table import Table

    from node.retention import slot_usage

    ctx = role_context()
    a = ctx.account
    table = Table(title=f"node {a.address}")
    table.add_column("what")
    table.add_column("TRAIN", justify="right")
    for what, value in (
        ("wallet", a.balance()),
        ("staked", a.stake_of()),
        ("locked by claims", a.locked_of()),
        ("earned, not withdrawn", a.credits()),
    ):
        table.add_row(what, f"{value / TOKEN:,.4f}")
    out.print(table)
    slots = slot_usage(workdir or ctx.settings.home / "node")
    disk = Table(title="checkpoints on disk (pruned once final and past the dispute window)")
    for col in ("job", "round", "slot", "checkpoints", "MiB"):
        disk.add_column(col, justify="right")
    for i, s in enumerate(slots):
        disk.add_row(
            str(s.job_id),
            str(s.round),
            str(s.slot),
            str(s.checkpoints),
            f"{s.bytes / 2**20:,.1f}",
            end_section=i == len(slots) - 1,
        )
    count, total = sum(s.checkpoints for s in slots), sum(s.bytes for s in slots)
    disk.add_row("total", "", "", str(count), f"{total / 2**20:,.1f}")
    out.print(disk)


@node_app.command()
def jobs() -> None:
    """Open jobs, whether this machine can run them, and expected reward per hour here.

    Example: opentrain node jobs
    """
    from rich.table import Table

    table = Table(title="open jobs")
    for col in ("job", "round", "reward/slot", "runnable", "est. TRAIN/hour", "note"):
        table.add_column(col)
    for o in _daemon().offers():
        table.add_row(
            str(o.job_id),
            str(o.round),
            f"{o.reward_per_slot / TOKEN:g}",
            "yes" if o.runnable else "no",
            f"{o.reward_per_hour / TOKEN:,.2f}" if o.runnable else "-",
            o.reason,
        )
    out.print(table)


@node_app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="work one slot, then exit")] = False,
    poll: Annotated[float, typer.Option(help="seconds between looks for work")] = 5.0,
    workdir: Annotated[Path | None, typer.Option(help="checkpoint folder")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus /metrics on 127.0.0.1:PORT")
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="train each slot with N processes (torchrun DDP: nccl, one per GPU; gloo "
            "on the CPU); for tolerance-mode jobs whose batch size N divides",
        ),
    ] = 1,
    keep_checkpoints: Annotated[
        bool,
        typer.Option(
            "--keep-checkpoints",
            help="keep every slot's local checkpoints (by default a slot's are removed once "
            "its contribution is final and its dispute window has closed)",
        ),
    ] = False,
) -> None:
    """The daemon: pick a job and slot, claim, train, publish, submit; resumes after a crash.

    Between slots it tends what it submitted: a fail its own re-execution does not support is
    contested (bond locked, committee drawn, dispute resolved), expired claims are released,
    and the checkpoints of slots settled for good are pruned (unless --keep-checkpoints).

    Example: opentrain node run --once

    Example: opentrain node run --nproc 4   (one training process per GPU)
    """
    from node.daemon import NodeDaemon
    from opentrain.cli.progress import segment_progress

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ctx = role_context()
    daemon = NodeDaemon(
        ctx.account,
        ctx.store,
        workdir or ctx.settings.home / "node",
        nproc=nproc,
        keep_checkpoints=keep_checkpoints,
    )
    if metrics_port is not None:
        from node.metrics import serve

        serve(metrics_port)
    with segment_progress(out, "segments") as progress:
        if once:
            try:
                daemon.aftercare.step()
            except ChainError as exc:  # a verdict or seed not ready yet: the slot comes first
                log.warning("aftercare: %s", str(exc).splitlines()[0])
            contribution = daemon.run_once(progress)
            out.print(
                "no work available"
                if contribution is None
                else f"submitted contribution {contribution}"
            )
            return
        daemon.run(poll_seconds=poll, progress=progress)


node_app.command("earnings")(earnings_command)
