"""Dashboard pages, rendered on the server from the same queries as the JSON routes: open
bounties, a job with its rounds and loss curve, a contribution's proof, a node, the
leaderboard. Plain HTML and inline SVG; no JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from web3 import Web3

from marketplace_api import queries, specs
from marketplace_api.deps import SessionDep, StoreDep
from marketplace_api.models import Job, JobStatus
from marketplace_api.proof import proof_bundle
from marketplace_api.svg import loss_curve
from opentrain.chain.types import TOKEN

PAGE_SIZE = 25
TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")


def _train(amount: int | None) -> str:
    """Base units as TRAIN, exact, without trailing zeros: 1500000000000000000 -> 1.5."""
    if amount is None:
        return "—"
    value = Decimal(int(amount)) / Decimal(TOKEN)
    text = f"{value:,.18f}".rstrip("0").rstrip(".")
    return text


def _short(address: str | None) -> str:
    return "—" if not address else f"{address[:8]}…{address[-6:]}"


TEMPLATES.env.filters["train"] = _train
TEMPLATES.env.filters["short"] = _short

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
Page = Annotated[int, Query(ge=1, le=1_000_000)]


def _render(request: Request, session: SessionDep, name: str, **context: Any) -> HTMLResponse:
    context.setdefault("indexed_block", queries.indexed_block(session))
    return TEMPLATES.TemplateResponse(request, name, context)


render = _render  # for pages kept in their own modules (marketplace_api.earnings)


def not_found(request: Request, message: str) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status": "Not found", "message": message, "indexed_block": None},
        status_code=404,
    )


def _with_specs(session: SessionDep, store: StoreDep, jobs: Sequence[Job]) -> None:
    """Look up specs not known yet in the content store (at most once per job and page)."""
    missing = [job for job in jobs if job.spec is None]
    if store is None or not missing:
        return
    found = [specs.resolve(session, store, j.spec_digest, j.spec_cid) for j in missing]
    if any(found):
        session.commit()
        for job in missing:
            session.refresh(job)


@router.get("/")
def bounties(
    request: Request, session: SessionDep, store: StoreDep, page: Page = 1
) -> HTMLResponse:
    offset = (page - 1) * PAGE_SIZE
    open_total, open_jobs = queries.list_jobs(
        session, limit=PAGE_SIZE, offset=offset, status=JobStatus.OPEN
    )
    _, done = queries.list_jobs(session, limit=10, offset=0, status=JobStatus.COMPLETED)
    _with_specs(session, store, [*open_jobs, *done])
    return _render(
        request,
        session,
        "index.html",
        stats=queries.market_stats(session),
        open_jobs=open_jobs,
        open_total=open_total,
        done_jobs=done,
        offset=offset,
        page=page,
    )


@router.get("/ui/jobs")
def all_jobs(
    request: Request, session: SessionDep, store: StoreDep, page: Page = 1
) -> HTMLResponse:
    offset = (page - 1) * PAGE_SIZE
    total, jobs = queries.list_jobs(session, limit=PAGE_SIZE, offset=offset)
    _with_specs(session, store, jobs)
    return _render(request, session, "jobs.html", jobs=jobs, total=total, offset=offset, page=page)


@router.get("/ui/jobs/{job_id}")
def job_page(request: Request, job_id: int, session: SessionDep, store: StoreDep) -> HTMLResponse:
    job = queries.get_job(session, job_id) if 0 <= job_id < 2**63 else None
    if job is None:
        return not_found(request, f"Job {job_id} is not indexed.")
    _with_specs(session, store, [job])
    rounds = queries.job_rounds(session, job)
    _, slots = queries.job_slots(session, job.id, round_=None, limit=500, offset=0)
    points = [(r.round, r.record.validation_loss) for r in rounds if r.record is not None]
    return _render(
        request,
        session,
        "job.html",
        job=job,
        rounds=rounds,
        slots=slots,
        loss_svg=loss_curve(points),
    )


@router.get("/ui/contributions/{contribution_id}")
def contribution_page(request: Request, contribution_id: int, session: SessionDep) -> HTMLResponse:
    bundle = proof_bundle(session, contribution_id) if 0 <= contribution_id < 2**63 else None
    if bundle is None:
        return not_found(request, f"Contribution {contribution_id} is not indexed.")
    return _render(request, session, "contribution.html", c=bundle)


@router.get("/ui/nodes/{address}")
def node_page(request: Request, address: str, session: SessionDep) -> HTMLResponse:
    if not Web3.is_address(address):
        return not_found(request, f"{address} is not an address.")
    checked = Web3.to_checksum_address(address)
    participant = queries.get_participant(session, checked)
    if participant is None:
        return not_found(request, f"Address {checked} has no indexed activity.")
    _, contributions = queries.list_contributions(session, limit=100, offset=0, node=checked)
    return _render(request, session, "node.html", p=participant, contributions=contributions)


@router.get("/ui/leaderboard")
def leaderboard_page(request: Request, session: SessionDep, page: Page = 1) -> HTMLResponse:
    offset = (page - 1) * PAGE_SIZE
    _, rows = queries.leaderboard(session, limit=PAGE_SIZE, offset=offset)
    return _render(request, session, "leaderboard.html", rows=rows, offset=offset)
