"""The ``opentrain`` command: one sub-app per role, composed here (and only here)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from node.canary_cli import canary_app
from node.cli import node_app
from opentrain.cli.api import api_app
from opentrain.cli.chain import chain_app
from opentrain.cli.data import data_app
from opentrain.cli.job import job_app
from opentrain.cli.market import market_app
from opentrain.cli.store import store_app
from verifier.audit_cli import audit_app
from verifier.cli import verifier_app


def _bool_flags_without_pydantic() -> None:
    """Typer 0.29 builds a pydantic TypeAdapter for a bool flag's value before the first
    ``--help`` can print (0.2-0.4 s of imports). A bool flag's value is already a bool or None,
    which Typer's pass-through coercion returns unchanged: use it for bools, so ``opentrain …
    --help`` answers at once (bench/cli_startup.py). Any other annotation is untouched."""
    try:
        from typer import _coercion, core
    except ImportError:  # another Typer: nothing to speed up
        return
    build = getattr(core, "build_runtime_param", None)
    passthrough = getattr(_coercion, "PassThroughRuntimeParam", None)
    if build is None or passthrough is None:
        return

    def build_runtime_param(descriptor: Any) -> Any:
        if descriptor.annotation is bool and descriptor.file_annotation is None:
            return passthrough(annotation=bool, parameter_info=descriptor.parameter_info)
        return build(descriptor)

    core.build_runtime_param = build_runtime_param


_bool_flags_without_pydantic()

app = typer.Typer(
    help="OpenTrain: a trustless market for verifiable decentralized training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Typer's completion options are coerced through pydantic on every call (0.2-0.3 s of
    # imports before any --help): off, so `opentrain … --help` answers at once.
    add_completion=False,
)


app.add_typer(job_app, name="job")
app.add_typer(market_app, name="market")
app.add_typer(api_app, name="api")
app.add_typer(chain_app, name="chain")
app.add_typer(node_app, name="node")
app.add_typer(verifier_app, name="verifier")
app.add_typer(audit_app, name="audit")
app.add_typer(store_app, name="store")
app.add_typer(data_app, name="data")
app.add_typer(canary_app, name="canary")
err = Console(stderr=True)
out = Console()


@app.callback()
def root() -> None:
    """OpenTrain: sponsors escrow bounties, nodes train and commit, verifiers re-execute."""


@app.command()
def demo(
    home: Annotated[Path | None, typer.Option(help="state folder (default: a fresh one)")] = None,
    serve: Annotated[bool, typer.Option(help="keep serving the dashboard API afterwards")] = False,
    port: Annotated[int, typer.Option(help="port for --serve")] = 8000,
    cheat: Annotated[
        bool, typer.Option(help="include a node that skips training (caught and slashed)")
    ] = True,
    audit: Annotated[
        bool, typer.Option(help="audit the finished job and print the verdict")
    ] = True,
) -> None:
    """Run the whole market once on the embedded defaults.

    Example: opentrain demo --serve
    """
    from opentrain.cli.api import serve_api
    from opentrain.cli.demo import run_demo

    home = home or Path(tempfile.mkdtemp(prefix="opentrain-demo-"))
    result = run_demo(home, cheat=cheat, audit=audit)
    spent = result.balances_before["sponsor"] - result.balances_after["sponsor"]
    if spent != result.paid_out or result.losses[-1] >= result.losses[0]:
        err.print("[red]demo failed:[/] payouts do not add up or the loss did not fall")
        raise typer.Exit(1)
    if cheat and result.cheat_slashed == 0:
        err.print("[red]demo failed:[/] the cheating node was not caught")
        raise typer.Exit(1)
    if audit and result.audit_findings != 0:
        err.print(f"[red]demo failed:[/] the audit has findings ({result.audit_report})")
        raise typer.Exit(1)
    if serve:
        serve_api(result.database_url, "127.0.0.1", port, store_dir=home / "store")


def main() -> None:
    """Entry point: errors are one clear line and a non-zero exit, never a traceback."""
    try:
        app()
    except Exception as exc:  # the last line of defence for the one-line-error rule
        message = str(exc).splitlines()[0] if str(exc) else ""
        err.print(f"[red]error:[/] {type(exc).__name__}: {message}")
        sys.exit(1)


if __name__ == "__main__":
    main()
