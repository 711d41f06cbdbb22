"""Read queries behind the routes and pages, apart from HTTP so both (and the CLI) reuse them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    bindparam,
    case,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, contains_eager, joinedload, selectinload

from marketplace_api.indexer import CURSOR
from marketplace_api.models import (
    ChainEvent,
    Contribution,
    ContributionStatus,
    IndexerCursor,
    Job,
    JobSpecRecord,
    JobStatus,
    Participant,
    RoundRecord,
    Slot,
)


def indexed_block(session: Session) -> int | None:
    cursor = session.get(IndexerCursor, CURSOR)
    return None if cursor is None else cursor.block_number


def _page(session: Session, query: Select[Any], limit: int, offset: int) -> tuple[int, list[Any]]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return total or 0, list(session.scalars(query.limit(limit).offset(offset)).all())


def _uint_desc(session: Session, column: Any) -> list[ColumnElement[Any]]:
    """Order a ``Uint256`` column numerically, largest first: on SQLite it is a decimal string,
    so shorter strings are smaller numbers (no leading zeros) and equal lengths compare as text."""
    if session.get_bind().dialect.name == "sqlite":
        return [func.length(column).desc(), column.desc()]
    return [column.desc()]


# -- jobs -------------------------------------------------------------------------------------


def _job_filters(
    query: Select[Any], status: JobStatus | None, sponsor: str | None, model: str | None
) -> Select[Any]:
    """Filters on ``query``, which must already join ``JobSpecRecord`` if ``model`` is set."""
    if status is not None:
        query = query.where(Job.status == status.value)
    if sponsor is not None:
        query = query.where(Job.sponsor == sponsor)
    if model is not None:
        query = query.where(JobSpecRecord.model == model)
    return query


def _spec_join(query: Select[Any]) -> Select[Any]:
    return query.outerjoin(JobSpecRecord, JobSpecRecord.spec_digest == Job.spec_digest)


def list_jobs(
    session: Session,
    *,
    limit: int,
    offset: int,
    status: JobStatus | None = None,
    sponsor: str | None = None,
    model: str | None = None,
) -> tuple[int, Sequence[Job]]:
    """(total matching, one page of them), newest job first, specs loaded (dashboard)."""
    query = _job_filters(_spec_join(select(Job)), status, sponsor, model)
    page = query.order_by(Job.id.desc()).options(contains_eager(Job.spec))
    return _page(session, page, limit, offset)


def read_only(session: Session) -> None:
    """Run the session's statements in autocommit (server databases): a read that is one
    statement needs no transaction, and without one it costs no BEGIN and no ROLLBACK round
    trip (on PostgreSQL each wakes its backend, which on a busy host costs more than the
    query). Only before the session's first statement; a no-op after it, and on SQLite."""
    if not session.in_transaction() and session.get_bind().dialect.name != "sqlite":
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def core_connection(bind: Session | Connection) -> Connection:
    """A Core connection to run a plain select on: rows as tuples, no ORM result layer."""
    if isinstance(bind, Session):
        read_only(bind)
        return bind.connection()
    return bind


@cache
def _summary_statement(status: bool, sponsor: bool, model: bool) -> Select[Any]:
    """One statement for one combination of filters, built once (values are bound per call,
    so SQLAlchemy's compiled cache is hit): the count of matching jobs LEFT JOINed to the
    page of them, so total and page come in one round trip and from one snapshot. A page past
    the end is one row of the total and nulls."""
    where: list[ColumnElement[bool]] = []
    if status:
        where.append(Job.status == bindparam("status"))
    if sponsor:
        where.append(Job.sponsor == bindparam("sponsor"))
    if model:
        where.append(JobSpecRecord.model == bindparam("model"))
    columns = select(
        *Job.__table__.columns,
        JobSpecRecord.name.label("spec_name"),
        JobSpecRecord.model.label("spec_model"),
    )
    page = (
        _spec_join(columns)
        .where(*where)
        .order_by(Job.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
        .subquery("page")
    )
    counted = _spec_join(select(Job.id)) if model else select(Job.id)
    count = select(func.count().label("total")).select_from(counted.where(*where).subquery())
    total = count.subquery("counted")
    return (
        select(total.c.total, *page.c)
        .select_from(total.outerjoin(page, true()))
        .order_by(page.c.id.desc())
    )


def job_summaries(
    bind: Session | Connection,
    *,
    limit: int,
    offset: int,
    status: JobStatus | None = None,
    sponsor: str | None = None,
    model: str | None = None,
) -> tuple[int, list[RowMapping]]:
    """``list_jobs`` as plain rows, with the spec's name and model (``spec_name``,
    ``spec_model``): the bounty list is the API's most requested page. One statement."""
    statement = _summary_statement(status is not None, sponsor is not None, model is not None)
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if status is not None:
        params["status"] = status.value
    if sponsor is not None:
        params["sponsor"] = sponsor
    if model is not None:
        params["model"] = model
    rows = list(core_connection(bind).execute(statement, params).mappings())
    total = int(rows[0]["total"]) if rows else 0
    return total, [row for row in rows if row["id"] is not None]


def get_job(session: Session, job_id: int) -> Job | None:
    """A job with its round records and contributions loaded in two extra queries."""
    query = (
        select(Job)
        .where(Job.id == job_id)
        .options(
            joinedload(Job.spec),
            selectinload(Job.round_records),
            selectinload(Job.contributions),
        )
    )
    return session.scalars(query).one_or_none()


@dataclass(frozen=True)
class RoundProgress:
    """One round of a job: its aggregate (if posted) and how its contributions fared."""

    round: int
    status: str  # aggregated | open | pending | abandoned
    submitted: int
    accepted: int
    rejected: int
    record: RoundRecord | None


def job_rounds(session: Session, job: Job) -> list[RoundProgress]:
    counts: dict[int, dict[str, int]] = {}
    query = (
        select(Contribution.round, Contribution.status, func.count())
        .where(Contribution.job_id == job.id)
        .group_by(Contribution.round, Contribution.status)
    )
    for round_, status, count in session.execute(query):
        counts.setdefault(round_, {})[status] = count
    records = {
        r.round: r for r in session.scalars(select(RoundRecord).where(RoundRecord.job_id == job.id))
    }
    out = []
    for round_ in range(job.rounds):
        c = counts.get(round_, {})
        if round_ in records:
            status = "aggregated"
        elif job.status == JobStatus.OPEN and round_ == job.current_round:
            status = "open"
        else:
            status = "pending" if job.status == JobStatus.OPEN else "abandoned"
        out.append(
            RoundProgress(
                round=round_,
                status=status,
                submitted=sum(c.values()),
                accepted=c.get(ContributionStatus.ACCEPTED, 0),
                rejected=c.get(ContributionStatus.REJECTED, 0),
                record=records.get(round_),
            )
        )
    return out


def job_slots(
    session: Session, job_id: int, *, round_: int | None, limit: int, offset: int
) -> tuple[int, list[Slot]]:
    query = select(Slot).where(Slot.job_id == job_id)
    if round_ is not None:
        query = query.where(Slot.round == round_)
    return _page(session, query.order_by(Slot.round, Slot.slot), limit, offset)


# -- contributions ----------------------------------------------------------------------------


def list_contributions(
    session: Session,
    *,
    limit: int,
    offset: int,
    job_id: int | None = None,
    node: str | None = None,
    verifier: str | None = None,
    status: ContributionStatus | None = None,
    before: int | None = None,
    peek: bool = False,
) -> tuple[int, list[Contribution]]:
    """Contributions, newest first, filtered by job, node, verifier or status. ``before``
    pages by key (ids below it, read from the primary key's index, however deep the page);
    ``total`` counts the filtered set without it. ``peek``: one row more than ``limit``, so
    the caller knows whether another page follows."""
    query = select(Contribution)
    if job_id is not None:
        query = query.where(Contribution.job_id == job_id)
    if node is not None:
        query = query.where(Contribution.node == node)
    if verifier is not None:
        query = query.where(Contribution.verifier == verifier)
    if status is not None:
        query = query.where(Contribution.status == status.value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if before is not None:
        query = query.where(Contribution.id < before)
    page = query.order_by(Contribution.id.desc()).limit(limit + peek).offset(offset)
    return total, list(session.scalars(page).all())


def get_contribution(session: Session, contribution_id: int) -> Contribution | None:
    query = (
        select(Contribution)
        .where(Contribution.id == contribution_id)
        .options(joinedload(Contribution.job).joinedload(Job.spec))
    )
    return session.scalars(query).one_or_none()


def contribution_events(session: Session, contribution_id: int) -> list[ChainEvent]:
    """Every stored event naming the contribution, in chain order (projected or not: disputes
    and committee votes appear here as soon as the contracts emit them)."""
    query = (
        select(ChainEvent)
        .where(ChainEvent.contribution_id == contribution_id)
        .order_by(ChainEvent.block_number, ChainEvent.tx_index, ChainEvent.log_index)
    )
    return list(session.scalars(query))


# -- participants -----------------------------------------------------------------------------


def get_participant(session: Session, address: str) -> Participant | None:
    return session.get(Participant, address)


def list_nodes(session: Session, *, limit: int, offset: int) -> tuple[int, list[Participant]]:
    """Addresses that claimed a slot or submitted work, highest earnings first."""
    query = select(Participant).where(
        or_(
            Participant.submitted > 0,
            Participant.address.in_(select(Slot.node).where(Slot.node.is_not(None))),
        )
    )
    order = [*_uint_desc(session, Participant.node_earnings), Participant.address]
    return _page(session, query.order_by(*order), limit, offset)


def list_verifiers(session: Session, *, limit: int, offset: int) -> tuple[int, list[Participant]]:
    """Registered verifiers and anyone who attested, most attestations first."""
    query = select(Participant).where(
        or_(Participant.is_verifier.is_(True), Participant.attestations > 0)
    )
    order = [Participant.attestations.desc(), Participant.address]
    return _page(session, query.order_by(*order), limit, offset)


def leaderboard(session: Session, *, limit: int, offset: int) -> tuple[int, list[Participant]]:
    """Nodes by earnings, then accepted contributions; only those with settled work."""
    query = select(Participant).where((Participant.accepted + Participant.rejected) > 0)
    order = [
        *_uint_desc(session, Participant.node_earnings),
        Participant.accepted.desc(),
        Participant.address,
    ]
    return _page(session, query.order_by(*order), limit, offset)


# -- market -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketStats:
    jobs: int
    open_jobs: int
    completed_jobs: int
    open_escrow: int
    contributions: int
    accepted: int
    rejected: int
    pending: int
    paid_to_nodes: int
    paid_to_verifiers: int
    slashed: int
    nodes: int
    verifiers: int
    events: int
    indexed_block: int | None


def _sum_uint(session: Session, column: Any, *where: ColumnElement[bool]) -> int:
    """Exact sum of a ``Uint256`` column (SQLite stores text; PostgreSQL sums NUMERIC)."""
    if session.get_bind().dialect.name == "postgresql":
        return int(session.scalar(select(func.coalesce(func.sum(column), 0)).where(*where)) or 0)
    return sum(int(v) for v in session.scalars(select(column).where(*where)) if v is not None)


def market_stats(session: Session) -> MarketStats:
    jobs = session.execute(
        select(
            func.count(),
            func.count(case((Job.status == JobStatus.OPEN.value, 1))),
            func.count(case((Job.status == JobStatus.COMPLETED.value, 1))),
        ).select_from(Job)
    ).one()
    contributions = session.execute(
        select(
            func.count(),
            func.count(case((Contribution.status == ContributionStatus.ACCEPTED.value, 1))),
            func.count(case((Contribution.status == ContributionStatus.REJECTED.value, 1))),
        ).select_from(Contribution)
    ).one()
    nodes, verifiers = session.execute(
        select(
            func.count(case((Participant.submitted > 0, 1))),
            func.count(case((Participant.is_verifier.is_(True), 1))),
        ).select_from(Participant)
    ).one()
    return MarketStats(
        jobs=jobs[0],
        open_jobs=jobs[1],
        completed_jobs=jobs[2],
        open_escrow=_sum_uint(session, Job.escrow, Job.status == JobStatus.OPEN.value),
        contributions=contributions[0],
        accepted=contributions[1],
        rejected=contributions[2],
        pending=contributions[0] - contributions[1] - contributions[2],
        paid_to_nodes=_sum_uint(session, Participant.node_earnings),
        paid_to_verifiers=_sum_uint(session, Participant.verifier_earnings),
        slashed=_sum_uint(session, Participant.slashed),
        nodes=nodes,
        verifiers=verifiers,
        events=session.scalar(select(func.count()).select_from(ChainEvent)) or 0,
        indexed_block=indexed_block(session),
    )
