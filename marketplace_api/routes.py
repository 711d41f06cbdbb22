"""JSON routes: validate input, call a query or service, shape the response. Nothing else.

Most routes are plain ``def`` (FastAPI runs them in its thread pool). The two hottest reads,
the bounty list and a proof bundle, are ``async def`` and query inline: each is one
indexed statement well under a millisecond, the process is CPU-bound under the GIL anyway, and
the thread-pool hop cost more than the work (bench/api_load.py: about twice the requests/s).
Anything that may wait on the network or the disk for long (the chain, the content store)
stays in the pool."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import AfterValidator
from sqlalchemy import text
from web3 import Web3

from marketplace_api import encode, queries, specs
from marketplace_api.bounties import BountyRejected, RelayFailed
from marketplace_api.deps import (
    MetricsDep,
    ReadDep,
    RelayDep,
    RelayEnabledDep,
    SessionDep,
    StoreDep,
)
from marketplace_api.metrics import CONTENT_TYPE
from marketplace_api.models import ContributionStatus, Job, JobStatus
from marketplace_api.proof import proof_bundle_json
from marketplace_api.schemas import (
    BountyIn,
    BountyOut,
    ContributionPage,
    ContributionSummary,
    Health,
    JobDetail,
    JobPage,
    Leaderboard,
    LeaderboardEntry,
    ParticipantOut,
    ParticipantPage,
    ProofBundle,
    RoundOut,
    RoundProgressOut,
    SlotOut,
    SlotPage,
    StatsOut,
)

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Offset = Annotated[int, Query(ge=0, le=2**31, description="items to skip")]
# Chain ids are uint256 but the contracts keep them far below 2^63 (the database's BIGINT).
RowId = Annotated[int, Path(ge=0, le=2**63 - 1)]
RowIdFilter = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
RoundFilter = Annotated[int | None, Query(ge=0, le=2**31 - 1, description="only this round")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not indexed"}}


ADDRESS_PATTERN = "^0x[0-9a-fA-F]{40}$"


def _checksummed(value: str | None) -> str | None:
    """Addresses are stored checksummed; accept any case from clients (a wrong mixed-case
    checksum included: the schema promises any case)."""
    if value is None:
        return None
    return str(Web3.to_checksum_address(value.lower()))


AddressFilter = Annotated[
    str | None,
    Query(description="an address, any case", pattern=ADDRESS_PATTERN),
    AfterValidator(_checksummed),
]
AddressPath = Annotated[
    str,
    Path(description="an address, any case", pattern=ADDRESS_PATTERN),
    AfterValidator(_checksummed),
]
ModelFilter = Annotated[
    str | None, Query(max_length=32, description="model architecture from the spec, e.g. gpt")
]


def _job_or_404(session: SessionDep, job_id: int) -> Job:
    job = queries.get_job(session, job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id} not found")
    return job


# -- service ----------------------------------------------------------------------------------


@router.get("/health", tags=["service"])
def health(session: SessionDep, relay_enabled: RelayEnabledDep) -> Health:
    """Liveness plus the database round trip and how far the indexer got."""
    session.execute(text("SELECT 1"))
    return Health(indexed_block=queries.indexed_block(session), writes=relay_enabled)


@router.get(
    "/metrics",
    tags=["service"],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
def metrics(session: SessionDep, registry: MetricsDep) -> Response:
    """Request counters and latency histograms, plus market gauges (Prometheus text)."""
    body = registry.render(queries.market_stats(session))
    return Response(content=body, media_type=CONTENT_TYPE)


@router.get("/stats", tags=["market"])
def stats(session: SessionDep) -> StatsOut:
    """Market totals: jobs, escrow, contributions by outcome, payouts, slashes."""
    return StatsOut.model_validate(queries.market_stats(session))


# -- jobs -------------------------------------------------------------------------------------


JSON = "application/json"
# The two hottest reads answer with bodies written straight from their rows (``encode``):
# returning a model would have FastAPI validate and serialize it again, and building one per
# row costs more than the query. The decorators' ``response_model`` still documents them.


@router.get("/jobs", tags=["jobs"], response_model=JobPage)
async def list_jobs(
    connection: ReadDep,
    limit: Limit = 20,
    offset: Offset = 0,
    status: Annotated[JobStatus | None, Query()] = None,
    sponsor: AddressFilter = None,
    model: ModelFilter = None,
) -> Response:
    """Jobs, newest first, optionally only one status, one sponsor's or one model's."""
    total, rows = queries.job_summaries(
        connection, limit=limit, offset=offset, status=status, sponsor=sponsor, model=model
    )
    return Response(encode.job_page(total, limit, offset, rows), media_type=JSON)


@router.get("/jobs/{job_id}", tags=["jobs"], responses=NOT_FOUND)
def get_job(job_id: RowId, session: SessionDep, store: StoreDep) -> JobDetail:
    """One job with its round aggregates, the ids of its contributions and its spec."""
    job = _job_or_404(session, job_id)
    if job.spec is None and store is not None:
        specs.resolve(session, store, job.spec_digest, job.spec_cid)
        session.commit()
        session.refresh(job)
    return JobDetail.from_row(job)


@router.get("/jobs/{job_id}/rounds", tags=["jobs"], responses=NOT_FOUND)
def get_job_rounds(job_id: RowId, session: SessionDep) -> list[RoundProgressOut]:
    """Every round of the job: status, contributions by outcome, and the aggregate's loss."""
    job = _job_or_404(session, job_id)
    return [
        RoundProgressOut(
            round=r.round,
            status=r.status,  # type: ignore[arg-type]
            submitted=r.submitted,
            accepted=r.accepted,
            rejected=r.rejected,
            validation_loss=None if r.record is None else r.record.validation_loss,
            aggregate=None if r.record is None else RoundOut.model_validate(r.record),
        )
        for r in queries.job_rounds(session, job)
    ]


@router.get("/jobs/{job_id}/slots", tags=["jobs"], responses=NOT_FOUND)
def get_job_slots(
    job_id: RowId,
    session: SessionDep,
    round: RoundFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SlotPage:
    """Slots that were ever claimed, by round and index: holder, deadline, latest work."""
    _job_or_404(session, job_id)
    total, rows = queries.job_slots(session, job_id, round_=round, limit=limit, offset=offset)
    items = [SlotOut.model_validate(s) for s in rows]
    return SlotPage(total=total, limit=limit, offset=offset, items=items)


@router.post(
    "/bounties",
    tags=["jobs"],
    status_code=202,
    responses={
        413: {"description": "body too large"},
        422: {"description": "spec or transaction inconsistent"},
        429: {"description": "rate limited"},
        502: {"description": "chain refused or unreachable"},
        503: {"description": "writes disabled"},
    },
)
def post_bounty(bounty: BountyIn, session: SessionDep, relay: RelayDep) -> BountyOut:
    """Relay a sponsor's signed ``createJob`` transaction after checking that the spec's
    sha256 is the ``specDigest`` it commits to; the spec is stored in the content store.
    The job appears in ``/jobs`` once the transaction is mined and indexed."""
    try:
        receipt = relay.submit(session, bounty.raw_transaction, bounty.spec)
    except BountyRejected as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except RelayFailed as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from None
    return BountyOut(
        tx_hash=receipt.tx_hash,
        sponsor=receipt.sponsor,
        spec_digest=receipt.spec_digest,
        spec_cid=receipt.spec_cid,
    )


# -- contributions ----------------------------------------------------------------------------


@router.get("/contributions", tags=["contributions"])
def list_contributions(
    session: SessionDep,
    limit: Limit = 20,
    offset: Offset = 0,
    job_id: RowIdFilter = None,
    node: AddressFilter = None,
    verifier: AddressFilter = None,
    status: Annotated[ContributionStatus | None, Query()] = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="only ids below this (keyset paging)")
    ] = None,
) -> ContributionPage:
    """Contributions, newest first, filtered by job, node, verifier or status. Page with
    ``before`` = the previous page's ``next_before`` (keyset: as fast at the ten-thousandth row
    as at the first, and stable while new contributions are indexed) or with ``offset``."""
    total, rows = queries.list_contributions(
        session,
        limit=limit,
        offset=offset,
        job_id=job_id,
        node=node,
        verifier=verifier,
        status=status,
        before=before,
        peek=True,
    )
    items = [ContributionSummary.model_validate(c) for c in rows[:limit]]
    last = rows[limit - 1].id if len(rows) > limit else None  # a row beyond the page exists
    return ContributionPage(total=total, limit=limit, offset=offset, items=items, next_before=last)


@router.get(
    "/contributions/{contribution_id}",
    tags=["contributions"],
    responses=NOT_FOUND,
    response_model=ProofBundle,
)
async def get_contribution(contribution_id: RowId, connection: ReadDep) -> Response:
    """The proof bundle of one contribution: every CID, digest and Merkle root, the seed and
    the segments it samples, attestations, disputes, payouts, the transactions, and the
    ``opentrain audit`` command that re-checks it."""
    body = proof_bundle_json(connection, contribution_id)
    if body is None:
        raise HTTPException(status_code=404, detail=f"contribution {contribution_id} not found")
    return Response(body, media_type=JSON)


# -- participants -----------------------------------------------------------------------------


@router.get("/nodes", tags=["participants"])
def list_nodes(session: SessionDep, limit: Limit = 20, offset: Offset = 0) -> ParticipantPage:
    """GPU owners that claimed or submitted work, highest earnings first."""
    total, rows = queries.list_nodes(session, limit=limit, offset=offset)
    items = [ParticipantOut.model_validate(p) for p in rows]
    return ParticipantPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/nodes/{address}", tags=["participants"], responses=NOT_FOUND)
def get_node(address: AddressPath, session: SessionDep) -> ParticipantOut:
    """One address's stake, earnings, accepted and rejected work, slashes and attestations."""
    row = queries.get_participant(session, address)
    if row is None:
        raise HTTPException(status_code=404, detail=f"address {address} not found")
    return ParticipantOut.model_validate(row)


@router.get("/verifiers", tags=["participants"])
def list_verifiers(session: SessionDep, limit: Limit = 20, offset: Offset = 0) -> ParticipantPage:
    """Registered verifiers and anyone who attested, most attestations first."""
    total, rows = queries.list_verifiers(session, limit=limit, offset=offset)
    items = [ParticipantOut.model_validate(p) for p in rows]
    return ParticipantPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/leaderboard", tags=["participants"])
def leaderboard(session: SessionDep, limit: Limit = 20, offset: Offset = 0) -> Leaderboard:
    """Nodes ranked by earnings, then by accepted contributions."""
    total, rows = queries.leaderboard(session, limit=limit, offset=offset)
    items = [
        LeaderboardEntry(
            rank=offset + i + 1,
            address=p.address,
            node_earnings=p.node_earnings,
            accepted=p.accepted,
            rejected=p.rejected,
            slashed=p.slashed,
            acceptance_rate=p.accepted / max(1, p.accepted + p.rejected),
        )
        for i, p in enumerate(rows)
    ]
    return Leaderboard(total=total, limit=limit, offset=offset, items=items)
