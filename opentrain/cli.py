"""The ``opentrain`` command: one sub-app per role, composed here (and only here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from opentrain.settings import Settings

app = typer.Typer(
    help="OpenTrain: a trustless market for verifiable decentralized training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@app.callback()
def root() -> None:
    """OpenTrain: sponsors escrow bounties, nodes train and commit, verifiers re-execute."""


@app.command()
def demo(
    home: Annotated[Path | None, typer.Option(help="state folder (default: a fresh one)")] = None,
) -> None:
    """Run the whole market once on the embedded defaults.

    Example: opentrain demo
    """
    import tempfile

    from opentrain.demo import run_demo

    if home is None:
        home = Path(tempfile.mkdtemp(prefix="opentrain-demo-"))
    result = run_demo(home)
    spent = result.balances_before["sponsor"] - result.balances_after["sponsor"]
    if spent != result.paid_out or result.losses[-1] >= result.losses[0]:
        raise typer.Exit(1)


def main() -> None:
    """Entry point: errors are one clear line and a non-zero exit, never a traceback."""
    try:
        app()
    except Exception as exc:  # the last line of defence for the one-line-error rule
        err.print(f"[red]error:[/] {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        sys.exit(1)


_ = Settings  # settings are read by the role commands
