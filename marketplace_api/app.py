"""The marketplace web application: ``create_app`` wires settings, database and routes.

Run it with ``uvicorn --factory marketplace_api.app:create_app`` (the CLI wraps this). The app
refuses to start on a database that is not migrated, with one line saying what to run.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from marketplace_api.db import check_migrated, make_engine, make_session_factory
from marketplace_api.routes import router
from opentrain.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
) -> FastAPI:
    """Build the app on ``session_factory``, or on the database named by ``settings``
    (default: ``Settings()`` from the environment)."""
    if session_factory is None:
        url = (settings or Settings()).resolved_database_url
        session_factory = make_session_factory(make_engine(url))
    with session_factory() as session:
        check_migrated(session.connection())
    app = FastAPI(
        title="OpenTrain marketplace",
        summary="Jobs, contributions and payouts indexed from the OpenTrain contracts.",
        version="0.1.0",
    )
    app.state.session_factory = session_factory
    app.include_router(router)
    return app
