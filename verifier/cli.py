"""``opentrain verifier``: the verifier's commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from opentrain.chain.types import TOKEN

if TYPE_CHECKING:
    from opentrain.context import RoleContext

# Heavy modules (torch, web3) are imported inside the commands, so `--help` answers at once.


def role_context() -> RoleContext:
    from opentrain.context import role_context as context

    return context()


verifier_app = typer.Typer(
    help="Re-execute sampled segments, attest, earn fees.\n\n"
    "Example: opentrain verifier stake 200 && opentrain verifier register && "
    "opentrain verifier run",
    no_args_is_help=True,
)
out = Console()


@verifier_app.command()
def stake(amount: Annotated[float, typer.Argument(help="amount in TRAIN")]) -> None:
    """Stake TRAIN (a verifier needs the minimum verifier stake to be drawn).

    Example: opentrain verifier stake 200
    """
    ctx = role_context()
    ctx.account.stake(int(amount * TOKEN))
    out.print(f"staked {amount:g} TRAIN; total {ctx.account.stake_of() / TOKEN:g}")


@verifier_app.command()
def register() -> None:
    """Join the set of verifiers drawn by sampling seeds.

    Example: opentrain verifier register
    """
    ctx = role_context()
    ctx.account.register_verifier()
    lag = int(ctx.chain.stakes.functions.drawLag().call())
    out.print(
        f"registered as a verifier; draws see it {lag} blocks from now (the snapshot lag), "
        "weighted by stake"
    )


@verifier_app.command()
def withdraw() -> None:
    """Withdraw earned fees and slash rewards.

    Example: opentrain verifier withdraw
    """
    ctx = role_context()
    credits = ctx.account.credits()
    if not credits:
        out.print("nothing to withdraw")
        return
    ctx.account.withdraw()
    out.print(f"withdrew {credits / TOKEN:g} TRAIN")


@verifier_app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="one pass, then exit")] = False,
    poll: Annotated[float, typer.Option(help="seconds between passes")] = 5.0,
    aggregate: Annotated[
        bool, typer.Option(help="also aggregate completed rounds and check others' aggregates")
    ] = True,
    state: Annotated[Path | None, typer.Option(help="cursor file")] = None,
) -> None:
    """Watch submissions, record seeds, verify assigned ones, attest, finalize, aggregate;
    sit on dispute committees (re-execute, vote), challenge wrong aggregates.

    Example: opentrain verifier run
    """
    from opentrain.cli.progress import segment_progress
    from verifier.daemon import VerifierDaemon

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ctx = role_context()
    with segment_progress(out, "re-executed segments") as progress:
        daemon = VerifierDaemon(
            ctx.account,
            ctx.store,
            state or ctx.settings.home / "verifier-state.json",
            aggregate,
            progress,
        )
        if once:
            out.print(f"{daemon.step()} actions taken")
            return
        daemon.run(poll_seconds=poll)
