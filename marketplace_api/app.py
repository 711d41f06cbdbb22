"""The marketplace web application: ``create_app`` wires settings, database, services, routes,
dashboard and middleware.

Run it with ``uvicorn --factory marketplace_api.app:create_app`` (the CLI wraps this). The app
refuses to start on a database that is not migrated, with one line saying what to run.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException

from marketplace_api import dashboard, earnings
from marketplace_api.bounties import BountyRelay
from marketplace_api.cache import IndexVersion, ResponseCache
from marketplace_api.config import ApiConfig
from marketplace_api.db import check_migrated, make_engine, make_session_factory
from marketplace_api.metrics import Metrics
from marketplace_api.middleware import BodySizeLimit, RateLimit, RequestMetrics
from marketplace_api.routes import router
from opentrain.content.store import ContentStore
from opentrain.settings import Settings

__all__ = ["create_app"]

# JSON read routes whose answers depend only on the database (not /health, not /metrics).
CACHED_PREFIXES = (
    "/jobs",
    "/contributions",
    "/nodes",
    "/verifiers",
    "/leaderboard",
    "/stats",
    "/accounts",
)


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    relay: BountyRelay | None = None,
    store: ContentStore | None = None,
    config: ApiConfig | None = None,
) -> FastAPI:
    """Build the app on ``session_factory``, or on the database named by ``settings``
    (default: ``Settings()`` from the environment).

    ``relay`` enables ``POST /bounties`` (without it the route answers 503); ``store`` lets
    job pages show specs found in the content store (default: the relay's store)."""
    if session_factory is None:
        url = (settings or Settings()).resolved_database_url
        session_factory = make_session_factory(make_engine(url))
    with session_factory() as session:
        check_migrated(session.connection())
    config = config or ApiConfig()
    app = FastAPI(
        title="OpenTrain marketplace",
        summary="Jobs, contributions and payouts indexed from the OpenTrain contracts.",
        description=(
            "Everything here is read from the contracts' events. Token amounts are decimal "
            "strings of base units (1 TRAIN = 10^18). Lists take `limit` and `offset`. The one "
            "write, `POST /bounties`, relays a sponsor's own signed transaction."
        ),
        version="0.2.0",
    )
    app.state.session_factory = session_factory
    app.state.relay = relay
    app.state.store = store if store is not None else (relay.store if relay else None)
    app.state.metrics = Metrics()
    app.state.index_version = IndexVersion(session_factory, config.cache_refresh_seconds)
    app.include_router(router)
    app.include_router(earnings.router)
    app.include_router(dashboard.router)
    app.include_router(earnings.page_router)
    app.add_exception_handler(HTTPException, _http_error)
    # Added last = outermost: metrics see every answer, the size limit runs before the body
    # is read, the rate limit before any work, the cache before routing.
    if config.cache_entries > 0:
        app.add_middleware(
            ResponseCache,
            version=app.state.index_version,
            prefixes=CACHED_PREFIXES,
            max_entries=config.cache_entries,
        )
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(RateLimit, reads=config.reads, writes=config.writes)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """JSON errors for the API; a page for browsers that asked for a dashboard URL."""
    assert isinstance(exc, HTTPException)
    page = request.url.path == "/" or request.url.path.startswith("/ui/")
    if page and exc.status_code == 404:
        return dashboard.not_found(request, "No such page.")
    headers = getattr(exc, "headers", None)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
