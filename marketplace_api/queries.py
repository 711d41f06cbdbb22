"""Read queries behind the routes, apart from HTTP so the dashboard and CLI can reuse them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from marketplace_api.indexer import CURSOR
from marketplace_api.models import Contribution, IndexerCursor, Job, JobStatus


def indexed_block(session: Session) -> int | None:
    cursor = session.get(IndexerCursor, CURSOR)
    return None if cursor is None else cursor.block_number


def _job_filter(status: JobStatus | None, sponsor: str | None) -> Select[Job]:
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status.value)
    if sponsor is not None:
        query = query.where(Job.sponsor == sponsor)
    return query


def list_jobs(
    session: Session,
    *,
    limit: int,
    offset: int,
    status: JobStatus | None = None,
    sponsor: str | None = None,
) -> tuple[int, Sequence[Job]]:
    """(total matching, one page of them), newest job first."""
    query = _job_filter(status, sponsor)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Job.id.desc()).limit(limit).offset(offset)).all()
    return total, page


def get_job(session: Session, job_id: int) -> Job | None:
    """A job with its round records and contributions loaded in two extra queries."""
    query = (
        select(Job)
        .where(Job.id == job_id)
        .options(selectinload(Job.round_records), selectinload(Job.contributions))
    )
    return session.scalars(query).one_or_none()


def get_contribution(session: Session, contribution_id: int) -> Contribution | None:
    return session.get(Contribution, contribution_id)
