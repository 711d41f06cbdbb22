"""Responses cached per index version.

Everything the JSON API returns is a function of the database, and the database changes only
when the indexer commits a batch or rolls one back, which always moves its cursor (block
number and hash). So a GET answered once can be answered again from memory until the cursor
moves. The cursor is read at most every ``refresh_seconds`` (answers may trail the indexer
by that much, as a read replica would); responses carry an ETag of the version, and a client
that sends it back gets 304 Not Modified.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace_api.models import IndexerCursor

CURSOR = "main"  # marketplace_api.indexer.CURSOR (not imported: keeps web3 out of this layer)


@dataclass(frozen=True)
class Version:
    block: int | None
    block_hash: str | None
    halted: str | None

    @property
    def etag(self) -> str:
        return f'W/"{self.block}-{(self.block_hash or "")[2:14]}"'


class IndexVersion:
    """The indexer cursor, re-read at most every ``refresh_seconds``."""

    def __init__(self, factory: sessionmaker[Session], refresh_seconds: float = 0.5) -> None:
        self.factory = factory
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._version = Version(None, None, None)

    def current(self) -> Version:
        now = time.monotonic()
        if now - self._read_at < self.refresh_seconds:
            return self._version
        with self._lock:
            if now - self._read_at >= self.refresh_seconds:
                with self.factory() as session:
                    cursor = session.get(IndexerCursor, CURSOR)
                    self._version = (
                        Version(None, None, None)
                        if cursor is None
                        else Version(cursor.block_number, cursor.block_hash, cursor.halted)
                    )
                self._read_at = now
        return self._version


@dataclass(frozen=True)
class _Entry:
    version: Version
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class ResponseCache:
    """Serves repeated GETs of ``prefixes`` from memory while the index version holds."""

    def __init__(
        self,
        app: ASGIApp,
        version: IndexVersion,
        prefixes: tuple[str, ...],
        max_entries: int = 4096,
        max_body: int = 256 * 1024,
    ) -> None:
        self.app = app
        self.version = version
        self.prefixes = prefixes
        self.max_entries = max_entries
        self.max_body = max_body
        self._entries: OrderedDict[tuple[str, bytes], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _cacheable(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(self.prefixes)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._cacheable(scope):
            await self.app(scope, receive, send)
            return
        version = self.version.current()
        if version.halted is not None:
            await self.app(scope, receive, send)  # the app explains with a 503
            return
        key = (scope["path"], scope["query_string"])
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is not None and entry.version == version:
            await self._replay(scope, send, entry)
            return
        await self._fill(scope, receive, send, key, version)

    async def _replay(self, scope: Scope, send: Send, entry: _Entry) -> None:
        etag = entry.version.etag.encode()
        if (b"if-none-match", etag) in scope["headers"]:
            await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", etag)]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {"type": "http.response.start", "status": entry.status, "headers": entry.headers}
        )
        await send({"type": "http.response.body", "body": entry.body})

    async def _fill(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: tuple[str, bytes],
        version: Version,
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0

        async def capture(message: Message) -> None:
            nonlocal start, size
            if message["type"] == "http.response.start":
                if message["status"] == 200:
                    headers = [*message.get("headers", []), (b"etag", version.etag.encode())]
                    message = {**message, "headers": headers}
                start = message
            elif message["type"] == "http.response.body" and size <= self.max_body:
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
            await send(message)

        await self.app(scope, receive, capture)
        if start is None or start["status"] != 200 or size > self.max_body:
            return
        entry = _Entry(version, 200, list(start["headers"]), b"".join(chunks))
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
