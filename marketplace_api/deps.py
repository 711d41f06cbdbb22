"""FastAPI dependencies: a database session per request, and the services the app was built
with (kept on ``app.state`` so several apps — tests, workers — never share a global)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from marketplace_api.bounties import BountyRelay
from marketplace_api.cache import IndexVersion
from marketplace_api.metrics import Metrics
from opentrain.content.store import ContentStore


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session; 503 while the indexer is halted (the chain replaced blocks it could not roll
    back), since every table may then say what the chain no longer does.

    ``async`` although sessions are synchronous: opening one does no I/O (it connects on first
    use, in the route's worker thread), and FastAPI would otherwise spend two thread-pool hops
    per request on this dependency alone."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        halted = _halted(request)
        if halted is not None:
            raise HTTPException(status_code=503, detail=f"indexer halted: {halted}")
        yield session


async def get_read_connection(request: Request) -> AsyncIterator[Connection]:
    """A bare connection for the hottest reads, each one statement (the bounty list, a proof
    bundle): no ORM session to set up and tear down, and on a server database autocommit, so
    no BEGIN and ROLLBACK round trips either. 503 while the indexer is halted, as above."""
    halted = _halted(request)
    if halted is not None:
        raise HTTPException(status_code=503, detail=f"indexer halted: {halted}")
    with _read_engine(request).connect() as connection:
        yield connection


def _read_engine(request: Request) -> Engine:
    """The session factory's engine, in autocommit except on SQLite (whose driver begins no
    transaction for a SELECT anyway); made once per app."""
    engine: Engine | None = getattr(request.app.state, "read_engine", None)
    if engine is None:
        factory: sessionmaker[Session] = request.app.state.session_factory
        engine = factory.kw["bind"]
        assert isinstance(engine, Engine)
        if engine.dialect.name != "sqlite":
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        request.app.state.read_engine = engine
    return engine


def _halted(request: Request) -> str | None:
    """The cursor's halt reason (re-read at most twice a second, shared with the cache)."""
    version: IndexVersion = request.app.state.index_version
    return version.current().halted


async def get_relay(request: Request) -> BountyRelay:
    relay: BountyRelay | None = request.app.state.relay
    if relay is None:
        raise HTTPException(
            status_code=503, detail="this instance relays no transactions (no chain configured)"
        )
    return relay


async def get_store(request: Request) -> ContentStore | None:
    store: ContentStore | None = request.app.state.store
    return store


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SessionDep = Annotated[Session, Depends(get_session)]
ReadDep = Annotated[Connection, Depends(get_read_connection)]
RelayDep = Annotated[BountyRelay, Depends(get_relay)]
StoreDep = Annotated[ContentStore | None, Depends(get_store)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def relay_enabled(request: Request) -> bool:
    return request.app.state.relay is not None


RelayEnabledDep = Annotated[bool, Depends(relay_enabled)]
