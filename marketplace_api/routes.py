"""HTTP routes: validate input, call a query, shape the response. Nothing else lives here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AfterValidator
from sqlalchemy import text
from web3 import Web3

from marketplace_api import queries
from marketplace_api.deps import SessionDep
from marketplace_api.models import JobStatus
from marketplace_api.schemas import ContributionOut, Health, JobDetail, JobPage, JobSummary

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Offset = Annotated[int, Query(ge=0, le=2**31, description="items to skip")]
# Chain ids are uint256 but the contracts keep them far below 2^63 (the database's BIGINT).
RowId = Annotated[int, Path(ge=0, le=2**63 - 1)]


def _checksummed(value: str | None) -> str | None:
    """Addresses are stored checksummed; accept any case from clients, reject non-addresses."""
    if value is None:
        return None
    if not Web3.is_address(value):
        raise ValueError("not an address")
    return str(Web3.to_checksum_address(value))


SponsorFilter = Annotated[
    str | None,
    Query(description="only this sponsor's jobs (address, any case)"),
    AfterValidator(_checksummed),
]


@router.get("/health", tags=["meta"])
def health(session: SessionDep) -> Health:
    """Liveness plus the database round trip and how far the indexer has got."""
    session.execute(text("SELECT 1"))
    return Health(indexed_block=queries.indexed_block(session))


@router.get("/jobs", tags=["jobs"])
def list_jobs(
    session: SessionDep,
    limit: Limit = 20,
    offset: Offset = 0,
    status: Annotated[JobStatus | None, Query()] = None,
    sponsor: SponsorFilter = None,
) -> JobPage:
    """Jobs, newest first, optionally only one status or one sponsor's."""
    total, jobs = queries.list_jobs(
        session, limit=limit, offset=offset, status=status, sponsor=sponsor
    )
    items = [JobSummary.model_validate(job) for job in jobs]
    return JobPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/jobs/{job_id}", tags=["jobs"], responses={404: {"description": "unknown job"}})
def get_job(job_id: RowId, session: SessionDep) -> JobDetail:
    """One job with its round aggregates and the ids of its contributions."""
    job = queries.get_job(session, job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id} not found")
    return JobDetail.from_row(job)


@router.get(
    "/contributions/{contribution_id}",
    tags=["contributions"],
    responses={404: {"description": "unknown contribution"}},
)
def get_contribution(contribution_id: RowId, session: SessionDep) -> ContributionOut:
    """The proof bundle of one contribution: CIDs, digests, seed, verdict, payouts, txs."""
    contribution = queries.get_contribution(session, contribution_id)
    if contribution is None:
        raise HTTPException(status_code=404, detail=f"contribution {contribution_id} not found")
    return ContributionOut.from_row(contribution)
