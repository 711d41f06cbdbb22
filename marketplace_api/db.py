"""Engine, sessions and schema migrations (Alembic) for the marketplace database.

The URL decides the backend: SQLite by default (one file under the state folder), PostgreSQL
in production. The schema is owned by the migrations in ``marketplace_api/migrations``; nothing
calls ``create_all``, so a database is either at head or refused with one clear line.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from opentrain.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class NotMigratedError(RuntimeError):
    """The database schema is not at the migrations' head; the message says what to run."""


def database_url(settings: Settings | None = None) -> str:
    """The configured URL (``OPENTRAIN_DATABASE_URL``), else the SQLite file in the home."""
    return (settings or Settings()).resolved_database_url


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite, creates the file's folder and enforces foreign keys
    (off by default there) and allows use from the API's worker threads."""
    parsed = make_url(url)
    # Up to 40 requests run at once in the server's thread pool: enough connections for them
    # (an in-memory SQLite database uses a single shared connection instead).
    kwargs: dict[str, Any] = {"pool_size": 20, "max_overflow": 20}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            del kwargs["pool_size"], kwargs["max_overflow"]
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_foreign_keys)
    return engine


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys on; for files, write-ahead logging so the API reads while the indexer
    writes, and a busy timeout instead of an immediate "database is locked"."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    if mode != "memory":
        if mode != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (responses are built after it)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations; no ``alembic.ini`` needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@cache
def _head_revisions() -> tuple[str, ...]:
    return tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def migrate(url: str | Engine) -> None:
    """Upgrade the database at ``url`` to the newest schema (creating it if empty)."""
    engine = make_engine(url) if isinstance(url, str) else url
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if isinstance(url, str):
            engine.dispose()


def migrate_if_embedded(url: str) -> bool:
    """Migrate an embedded SQLite database on start, so the default setup just works; any
    other database (PostgreSQL) is left to ``opentrain api migrate``. True when migrated."""
    if make_url(url).get_backend_name() != "sqlite":
        return False
    migrate(url)
    return True


def current_revisions(bind: Engine | Connection) -> tuple[str, ...]:
    """The revisions the database is stamped with (empty when it was never migrated)."""
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return current_revisions(connection)
    return tuple(sorted(MigrationContext.configure(bind).get_current_heads()))


def check_migrated(bind: Engine | Connection) -> None:
    """Refuse to run against a schema this code does not expect, before any query fails
    with an obscure SQL error halfway through a request or a batch."""
    if current_revisions(bind) != _head_revisions():
        where = bind.engine.url.render_as_string(hide_password=True)
        raise NotMigratedError(f"database at {where} is not migrated: run `opentrain api migrate`")
