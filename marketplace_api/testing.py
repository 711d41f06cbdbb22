"""Helpers for the marketplace's tests and benchmarks (not used by the service itself):
a throwaway Hardhat node, a fresh PostgreSQL schema, and a comparable dump of a database."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from marketplace_api.models import (
    PROJECTED_MODELS,
    Base,
    ChainEvent,
    IndexedBlock,
    IndexerCursor,
    ProjectionUndo,
)

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "OPENTRAIN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hardhat_executable() -> Path | None:
    """``node_modules/.bin/hardhat`` with the Node 22 the project installs beside it."""
    hardhat = REPO / "node_modules" / ".bin" / "hardhat"
    node = REPO / "node_modules" / ".bin" / "node"
    return hardhat if hardhat.exists() and node.exists() else None


@contextmanager
def hardhat_node(port: int | None = None, timeout: float = 60.0) -> Iterator[str]:
    """A Hardhat node on 127.0.0.1 for the duration of the block; yields its RPC URL."""
    hardhat = hardhat_executable()
    if hardhat is None:
        raise RuntimeError("no Hardhat in node_modules: run `make setup`")
    port = port or free_port()
    env = dict(os.environ)
    env["PATH"] = f"{hardhat.parent}{os.pathsep}{env.get('PATH', '')}"  # its Node 22 first
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(hardhat), "node", "--hostname", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"hardhat node exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"hardhat node not listening after {timeout} s") from None
                time.sleep(0.2)
        yield url
    finally:
        stop_process(process)
        log.close()


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def postgres_reachable(url: str = POSTGRES_URL) -> str | None:
    """None when PostgreSQL answers at ``url``, else why not (one line)."""
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL not reachable at {url}: {type(exc).__name__}: {exc}".splitlines()[0]
    return None


@contextmanager
def postgres_schema(url: str = POSTGRES_URL) -> Iterator[str]:
    """A fresh, empty schema for the block; yields a URL whose connections use only it."""
    schema = f"ot_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def has_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# -- comparing databases ----------------------------------------------------------------------

# Row ids depend on insertion history; ``final_block`` never goes down, so after a reorg that
# shortened the chain it may stay above what a fresh index of the shorter chain computes.
_SKIP_COLUMNS = {
    "chain_events": {"id"},
    "projection_undo": {"id"},
    "indexer_cursor": {"final_block"},
}


def _rows(session: Session, model: type[Base]) -> list[tuple[Any, ...]]:
    mapper = inspect(model)
    skip = _SKIP_COLUMNS.get(model.__tablename__, set())
    names = [a.key for a in mapper.column_attrs if a.key not in skip]
    columns = [getattr(model, n) for n in names]
    rows = [tuple(_plain(v) for v in row) for row in session.execute(select(*columns))]
    return sorted(rows, key=repr)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def dump(factory: sessionmaker[Session], *, journal: bool = True) -> dict[str, Any]:
    """Everything the indexer wrote, row ids aside, in a form ``==`` can compare."""
    models: list[type[Base]] = [ChainEvent, IndexerCursor, IndexedBlock, *PROJECTED_MODELS]
    if journal:
        models.append(ProjectionUndo)
    with factory() as session:
        return {m.__tablename__: _rows(session, m) for m in models}
