"""``opentrain audit``: re-check payments from public data alone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from verifier.audit import Auditor, AuditReport

audit_app = typer.Typer(
    help="Re-check contributions, rounds and jobs from the chain and the content store. "
    "Exit status: 0 no findings, 2 findings, 1 error.\n\n"
    "Example: opentrain audit job 1 --out audit/",
    no_args_is_help=True,
)
out = Console()
OutOpt = Annotated[Path, typer.Option("--out", help="folder for audit.json and audit.html")]


def _auditor() -> Auditor:
    from opentrain.content.backends import store_from_settings
    from opentrain.context import connect_chain
    from opentrain.settings import Settings
    from verifier.audit import Auditor

    settings = Settings()
    store = store_from_settings(settings)
    return Auditor(connect_chain(settings), store)


def finish(report: AuditReport, folder: Path) -> None:
    """Print the findings, write the reports, exit non-zero on any finding."""
    from rich.table import Table

    from verifier.audit import write_report

    table = Table(title=f"audit of {report.subject}")
    for col in ("subject", "check", "result"):
        table.add_column(col)
    for c in report.checks:
        table.add_row(c.subject, c.name, "ok" if c.ok else f"[red]FINDING[/] {c.detail}")
    out.print(table)
    json_path, html_path = write_report(report, folder)
    out.print(
        f"verifier compute share {report.compute_share:.1%}; reports: {json_path}, {html_path}"
    )
    if report.findings:
        raise typer.Exit(2)


@audit_app.command()
def contribution(contribution_id: int, folder: OutOpt = Path("audit")) -> None:
    """Audit one contribution: digests, CIDs, Merkle proofs, re-execution, the verifier's report.

    Example: opentrain audit contribution 7
    """
    auditor = _auditor()
    count = int(auditor.chain.market.functions.contributionCount().call())
    if not 1 <= contribution_id <= count:
        _missing(f"contribution {contribution_id} does not exist ({count} submitted so far)")
    finish(auditor.contribution(contribution_id), folder)


@audit_app.command("round")
def round_(job_id: int, round_number: int, folder: OutOpt = Path("audit")) -> None:
    """Audit a round: its contributions and the aggregate G_{r+1}.

    Example: opentrain audit round 1 0
    """
    auditor = _auditor()
    rounds = _require_job(auditor, job_id)
    if not 0 <= round_number < rounds:
        _missing(f"job {job_id} has rounds 0..{rounds - 1}, not {round_number}")
    finish(auditor.round(job_id, round_number), folder)


@audit_app.command()
def job(job_id: int, folder: OutOpt = Path("audit")) -> None:
    """Audit a whole job: every round, then its money (escrow, payouts, refunds, each
    settlement against the job's terms) and the vault holding every job's escrow (its total
    against JobMarket's books, every escrow movement matched, who may move it).

    Example: opentrain audit job 1 --out audit/
    """
    auditor = _auditor()
    _require_job(auditor, job_id)
    finish(auditor.job(job_id), folder)


def _missing(message: str) -> NoReturn:
    """A missing id is an error (exit 1), not a finding (exit 2)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _require_job(auditor: Auditor, job_id: int) -> int:
    """The job's round count; exit 1 when there is no such job."""
    count = int(auditor.chain.market.functions.jobCount().call())
    if not 1 <= job_id <= count:
        _missing(f"job {job_id} does not exist ({count} posted so far)")
    return int(auditor.chain.market.functions.jobParams(job_id).call()[2])
