"""A ContentStore on a kubo daemon, over kubo's HTTP RPC (`/api/v0`), with httpx.

Why not ipfshttpclient: its last release (0.7, 2021) refuses every kubo since 0.8
(VersionMismatch) and it is unmaintained. The RPC is plain HTTP POSTs, so a small
client is easier to keep correct than a fork.

Nothing kubo returns is taken on trust. `put_*` computes the kubo-default CID locally
while uploading and rejects a different answer (a node with other Import settings would
silently publish different CIDs). Reads go through `dag/export`, a CAR walked and
re-hashed block by block as it streams, exactly as from a trustless gateway; `cat` is
offered too and re-chunks the bytes to check the CID. Transport failures and 429/502/
503/504 answers are retried with exponential backoff (tenacity); every failure ends as
one line naming the call.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from opentrain.content.builder import CHUNK_SIZE, DagBuilder, read_chunks, split_chunks
from opentrain.content.car import CarFeed, CarReader, check_car, file_chunks
from opentrain.content.errors import ContentError, ContentUnavailable, RemoteError, check_size
from opentrain.content.store import ReaderBase
from opentrain.content.unixfs import (
    BlockCid,
    BlockGetter,
    iter_file,
    parse_cid,
    verify_block,
    walk_dag,
)

ADD_PARAMS = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "trickle": "false",
    "pin": "true",
    "quieter": "true",
}
"""`ipfs add --cid-version 1` spelled out, so a node's Import config cannot change CIDs."""
RETRY_STATUS = frozenset({429, 502, 503, 504})
T = TypeVar("T")


class KuboError(RemoteError):
    """kubo is unreachable, timed out, or refused a call for a reason not about content."""


class _Transient(Exception):
    """An HTTP status worth retrying (overload, proxy in front of a restarting daemon)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | _Transient)


def api_base(api: str) -> str:
    """`http://host:5001`, `.../api/v0` or kubo's own `/ip4/HOST/tcp/PORT` → the RPC base URL."""
    match = re.fullmatch(r"/(?:ip4|ip6|dns4|dns6|dns)/([^/]+)/tcp/(\d+)(?:/http)?/?", api)
    if match:
        host = f"[{match[1]}]" if ":" in match[1] else match[1]
        api = f"http://{host}:{match[2]}"
    api = api.rstrip("/")
    return api if api.endswith("/api/v0") else api + "/api/v0"


def _message(response: httpx.Response) -> str:
    """kubo's error text: JSON {"Message": ...}, else the first line of whatever came."""
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("Message"), str):
            return str(body["Message"])
    except ValueError:
        pass
    text = response.text.strip()
    return text.splitlines()[0][:200] if text else "(empty answer)"


def _multipart(boundary: str, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """One `file` form part, streamed: kubo's add and dag/import take their input so."""
    yield (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from chunks
    yield f"\r\n--{boundary}--\r\n".encode()


def _ndjson(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class KuboStore(ReaderBase):
    """ContentStore backed by kubo's RPC API (default http://127.0.0.1:5001).

    `offline=True` adds kubo's `offline` flag to reads and pins, so a missing block is an
    immediate error instead of a network search that lasts until the timeout.
    """

    def __init__(
        self,
        api: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_bytes: int | None = None,
        offline: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = api_base(api)
        self.max_bytes = max_bytes
        self.offline = offline
        self.timeout = timeout
        self._attempts = retries + 1
        self._backoff = backoff
        self._http = httpx.Client(
            base_url=self.base,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KuboStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- ContentStore --------------------------------------------------------------

    def version(self) -> str:
        """kubo's version string, e.g. "0.32.1" (also a cheap reachability check)."""
        return str(self._call("version").json()["Version"])

    def put_bytes(self, data: bytes) -> str:
        """`ipfs add --cid-version 1 --raw-leaves --pin`, checked against the local CID."""
        check_size(len(data), self.max_bytes)
        return self._add(lambda: split_chunks(data), "data")

    def put_file(self, path: Path) -> str:
        """Upload a file streamed (one chunk in memory); its CID is computed on the way."""
        path = Path(path)
        check_size(os.stat(path).st_size, self.max_bytes)

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as stream:
                yield from read_chunks(stream)

        return self._add(chunks, path.name)

    def has(self, cid: str) -> bool:
        """Every block under cid is in kubo's repo (`files stat --with-local`, offline).

        One JSON answer, not a stream: a streamed kubo error (an HTTP trailer) would be
        invisible here and read as success.
        """
        path = "/ipfs/" + parse_cid(cid).text
        try:
            answer = self._call(
                "files/stat", {"arg": path, "with-local": "true", "offline": "true"}
            ).json()
        except ContentError as exc:
            if isinstance(exc, RemoteError):
                raise
            return False
        return bool(answer.get("Local"))

    def pin(self, cid: str) -> None:
        """Pin recursively (kubo fetches what it lacks unless offline)."""
        self._call("pin/add", self._read_params(cid, recursive="true"))

    def unpin(self, cid: str) -> None:
        self._call("pin/rm", {"arg": parse_cid(cid).text, "recursive": "true"})

    def pins(self) -> list[str]:
        """Recursive pins (what add and import pin), as CIDv1 base32, sorted."""
        keys = self._call("pin/ls", {"type": "recursive"}).json().get("Keys") or {}
        return sorted(parse_cid(key).text for key in keys)

    # -- reads ------------------------------------------------------------------------

    def get_block(self, cid: str) -> bytes:
        """`block/get`, verified against the CID."""
        return self._block(parse_cid(cid))

    def iter_dag(self, cid: str, dups: bool = False) -> Iterator[tuple[BlockCid, bytes]]:
        """Every block under cid (DFS pre-order) from `dag/export`, each verified."""
        root = parse_cid(cid)
        return self._export_walk(root, lambda get: walk_dag(root, get, dups))

    def cat(self, cid: str) -> Iterator[bytes]:
        """`ipfs cat`, streamed, for content added with kubo's CIDv1 defaults.

        The bytes are re-chunked and the DAG rebuilt as they pass; the last piece is held
        until the rebuilt root equals cid. Content added with other settings fails that
        check: read it with iter_content, which verifies any DAG block by block.
        """
        root = parse_cid(cid)
        return self._cat(root)

    def import_car(self, path: Path) -> list[str]:
        """`dag import --pin-roots` of a CAR that first passed the full local check.

        kubo accepts partial CARs; checking first keeps the rule of the embedded store:
        a CAR with a missing, extra or lying block is refused and nothing is written.
        """
        with open(path, "rb") as stream:
            roots = check_car(file_chunks(stream), self.max_bytes)

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as stream:
                yield from file_chunks(stream)

        boundary = uuid.uuid4().hex
        answer = self._call(
            "dag/import",
            {"pin-roots": "true"},
            body=lambda: _multipart(boundary, Path(path).name, chunks()),
            content_type=f"multipart/form-data; boundary={boundary}",
        )
        for line in _ndjson(answer.text):
            root = line.get("Root")
            if isinstance(root, dict) and root.get("PinErrorMsg"):
                raise KuboError(f"kubo dag/import: pinning failed: {root['PinErrorMsg']}")
        return roots

    # -- internals ----------------------------------------------------------------------

    def _content(self, cid: BlockCid) -> Iterator[bytes]:
        return self._export_walk(cid, lambda get: iter_file(cid, get, self.max_bytes))

    def _read_params(self, cid: str, **extra: str) -> dict[str, str]:
        params = {"arg": parse_cid(cid).text, **extra}
        if self.offline:
            params["offline"] = "true"
        return params

    def _add(self, open_chunks: Callable[[], Iterator[bytes]], name: str) -> str:
        local: list[str] = []
        boundary = uuid.uuid4().hex

        def counted() -> Iterator[bytes]:
            builder, total = DagBuilder(lambda cid, block: None), 0
            for chunk in open_chunks():
                total += len(chunk)
                check_size(total, self.max_bytes)
                builder.add_chunk(chunk)
                yield chunk
            local.append(builder.finish())

        answer = self._call(
            "add",
            ADD_PARAMS,
            body=lambda: _multipart(boundary, name, counted()),
            content_type=f"multipart/form-data; boundary={boundary}",
        )
        lines = _ndjson(answer.text)
        remote = str(lines[-1].get("Hash", "")) if lines else ""
        if not local or remote != local[-1]:
            raise ContentError(
                f"content mismatch: kubo answered CID {remote or '(none)'} but the content's "
                f"CIDv1 is {local[-1] if local else '(not computed)'}; check kubo's Import settings"
            )
        return remote

    def _block(self, cid: BlockCid) -> bytes:
        block = self._call("block/get", self._read_params(cid.text)).content
        verify_block(cid, block)
        return block

    def _export_walk(
        self, root: BlockCid, walker: Callable[[BlockGetter], Iterator[T]]
    ) -> Iterator[T]:
        """Run a DAG walk fed by `dag/export`'s streamed CAR (kubo sends DFS, no dups)."""
        response = self._call("dag/export", self._read_params(root.text), stream=True)
        try:
            yield from walker(CarFeed(CarReader(response.iter_bytes()), self._block).get)
        except httpx.HTTPError as exc:
            raise KuboError(f"kubo dag/export {root}: stream broke: {exc}") from None
        finally:
            response.close()

    def _cat(self, root: BlockCid) -> Iterator[bytes]:
        response = self._call("cat", self._read_params(root.text), stream=True)
        builder, total, held = DagBuilder(lambda cid, block: None), 0, b""
        try:
            buffer = bytearray()
            for piece in response.iter_bytes():
                buffer += piece
                while len(buffer) >= CHUNK_SIZE:
                    chunk, buffer = bytes(buffer[:CHUNK_SIZE]), buffer[CHUNK_SIZE:]
                    total += len(chunk)
                    check_size(total, self.max_bytes)
                    builder.add_chunk(chunk)
                    if held:
                        yield held
                    held = chunk
            if buffer:
                builder.add_chunk(bytes(buffer))
                if held:
                    yield held
                held = bytes(buffer)
        except httpx.HTTPError as exc:
            raise KuboError(f"kubo cat {root}: stream broke: {exc}") from None
        finally:
            response.close()
        if builder.finish() != root.text:
            raise ContentUnavailable(
                f"content mismatch: bytes kubo sent for {root} do not rebuild it"
            )
        if held:
            yield held

    def _call(
        self,
        path: str,
        params: dict[str, str] | None = None,
        *,
        body: Callable[[], Iterator[bytes]] | None = None,
        content_type: str | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """POST /api/v0/{path}, retried on transport errors and busy answers.

        Returns the response (open when stream=True); a kubo error becomes ContentError
        (content missing, not pinned) or KuboError (anything else), in one line.
        """
        headers = {"Content-Type": content_type} if content_type else {}

        def attempt() -> httpx.Response:
            request = self._http.build_request(
                "POST",
                path,
                params=params,
                headers=headers,
                content=body() if body is not None else None,
            )
            response = self._http.send(request, stream=True)
            if response.status_code in RETRY_STATUS:
                response.close()
                raise _Transient(response.status_code)
            if response.status_code != 200 or not stream:
                response.read()
                response.close()
            if response.status_code != 200:
                raise self._error(path, params or {}, response)
            return response

        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=10),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as exc:
            raise KuboError(f"kubo {path}: {exc} after {self._attempts} attempts") from None
        except httpx.TimeoutException:
            raise KuboError(
                f"kubo {path}: no answer from {self.base} within {self.timeout:g}s "
                f"({self._attempts} attempts)"
            ) from None
        except httpx.TransportError as exc:
            raise KuboError(
                f"kubo {path}: cannot reach {self.base} ({type(exc).__name__}: {exc}; "
                f"{self._attempts} attempts)"
            ) from None

    def _error(self, path: str, params: dict[str, str], response: httpx.Response) -> ContentError:
        message = _message(response)
        arg = params.get("arg", "")
        lowered = message.lower()
        if "not pinned" in lowered:
            return ContentError(f"not pinned: {arg}")
        if "not found" in lowered or "could not find" in lowered:
            return ContentError(f"missing block {arg}: kubo: {message}")
        hint = "" if response.status_code == 500 else " (is this kubo's RPC port, 5001?)"
        return KuboError(f"kubo {path}: HTTP {response.status_code}: {message}{hint}")
