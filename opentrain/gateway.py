"""A trustless gateway over the embedded store, and a verifying client for any such gateway.

The IPFS HTTP Trustless Gateway spec serves only what a client can check itself: single
blocks (`application/vnd.ipld.raw`) and CAR streams (`application/vnd.ipld.car`). A
verifier or auditor can therefore fetch a node's checkpoints over plain HTTP from any
gateway, this one, kubo's or a public one, and trust nothing but the CID: the client
re-hashes every block and follows the DAG itself.

Served: GET and HEAD /ipfs/{cid} with ?format=raw|car or the Accept header, CAR
parameters version=1, order=dfs|unk, dups=y|n (as Accept parameters or car-* query
parameters), dag-scope=block|entity|all, ETag / If-None-Match, and the bafkqaaa probe.
Not served (400): content paths below a CID and entity-bytes ranges; this gateway holds
files, and verifiers fetch whole checkpoints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from multiformats import CID

from opentrain.car import CAR_MEDIA_TYPE, MAX_BLOCK, CarFeed, CarReader, car_chunks, encode_header
from opentrain.store import (
    RAW,
    BlockCid,
    BlockGetter,
    ContentError,
    EmbeddedStore,
    ReaderBase,
    RemoteError,
    decode_file_node,
    iter_file,
    parse_cid,
    verify_block,
    walk_dag,
)

RAW_MEDIA_TYPE = "application/vnd.ipld.raw"
_IMMUTABLE = "public, max-age=29030400, immutable"
_IDENTITY = 0x00  # multihash code of an identity "hash" (the data itself)
T = TypeVar("T")
# what the client asks for: a CAR it can check as it streams (DFS, repeats re-sent)
_CAR_PARAMS = {"format": "car", "dag-scope": "all", "car-order": "dfs", "car-dups": "y"}
_CAR_HEADERS = {"Accept": f"{CAR_MEDIA_TYPE}; version=1; order=dfs; dups=y"}


# ---------------------------------------------------------------------------
# request negotiation


class _Reject(Exception):
    """An HTTP error answer: status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class _Want:
    """What the client asked for, after negotiation."""

    kind: str  # "raw" or "car"
    dups: bool = False
    scope: str = "all"

    @property
    def content_type(self) -> str:
        if self.kind == "raw":
            return RAW_MEDIA_TYPE
        return f"{CAR_MEDIA_TYPE}; version=1; order=dfs; dups={'y' if self.dups else 'n'}"


def _media_ranges(accept: str) -> list[tuple[float, str, dict[str, str]]]:
    """Accept header entries as (q, type, params), best first (stable for equal q)."""
    out = []
    for entry in accept.split(","):
        parts = [part.strip() for part in entry.split(";")]
        params = dict(
            (key.strip().lower(), value.strip().strip('"'))
            for key, _, value in (part.partition("=") for part in parts[1:])
        )
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if parts[0] and q > 0:
            out.append((q, parts[0].lower(), params))
    return sorted(out, key=lambda item: -item[0])


def _negotiate(request: Request) -> _Want:
    """Pick raw or CAR from ?format= (which wins) or Accept; reject what is not trustless."""
    query = request.query_params
    fmt = query.get("format")
    params: dict[str, str] = {}
    if fmt is None:
        ranges = _media_ranges(request.headers.get("accept", ""))
        kinds = {RAW_MEDIA_TYPE: "raw", CAR_MEDIA_TYPE: "car"}
        chosen = next(((kinds[t], p) for _, t, p in ranges if t in kinds), None)
        if chosen is None:
            raise _unnegotiable(ranges)
        fmt, params = chosen
    if fmt == "raw":
        return _Want("raw")
    if fmt != "car":
        raise _Reject(400, f"unsupported format {fmt!r}: this trustless gateway serves raw and car")
    return _car_want(query, params)


def _unnegotiable(ranges: list[tuple[float, str, dict[str, str]]]) -> _Reject:
    """No Accept (or only wildcards, as curl sends): 400 with the how-to; else 406."""
    if all(kind in ("*/*", "application/*") for _, kind, _ in ranges):
        return _Reject(
            400,
            "trustless gateway: ask for ?format=raw|car or "
            f"Accept: {RAW_MEDIA_TYPE} | {CAR_MEDIA_TYPE}",
        )
    return _Reject(406, f"not acceptable: only {RAW_MEDIA_TYPE} and {CAR_MEDIA_TYPE} are served")


def _car_want(query: Mapping[str, str], accept: dict[str, str]) -> _Want:
    get = query.get
    version = get("car-version", accept.get("version", "1"))
    order = get("car-order", accept.get("order", "dfs"))
    dups = get("car-dups", accept.get("dups", "n"))
    scope = get("dag-scope", "all")
    if version != "1":
        raise _Reject(400, f"unsupported CAR version {version!r}: this gateway writes CARv1")
    if order not in ("dfs", "unk", ""):
        raise _Reject(400, f"unsupported CAR order {order!r}: this gateway sends dfs")
    if dups not in ("y", "n"):
        raise _Reject(400, f"bad CAR dups {dups!r}: use y or n")
    if scope not in ("block", "entity", "all"):
        raise _Reject(400, f"bad dag-scope {scope!r}: use block, entity or all")
    if get("entity-bytes") is not None:
        raise _Reject(400, "entity-bytes ranges are not supported by this gateway")
    return _Want("car", dups=dups == "y", scope=scope)


# ---------------------------------------------------------------------------
# the server


def _headers(cid: str, want: _Want, request: Request) -> dict[str, str]:
    suffix = "bin" if want.kind == "raw" else "car"
    headers = {
        "Content-Type": want.content_type,
        "Content-Disposition": f'attachment; filename="{cid}.{suffix}"',
        "Cache-Control": _IMMUTABLE,
        "ETag": _etag(cid, want),
        "X-Content-Type-Options": "nosniff",
        "X-Ipfs-Path": f"/ipfs/{cid}",
        "Vary": "Accept",
    }
    if "format" not in request.query_params:
        headers["Content-Location"] = f"/ipfs/{cid}?format={want.kind}"
    return headers


def _etag(cid: str, want: _Want) -> str:
    """Raw: the block's own name. CAR: weak, and distinct per scope and dups choice."""
    if want.kind == "raw":
        return f'"{cid}.raw"'
    variant = hashlib.sha256(f"{want.scope}|dfs|{want.dups}".encode()).hexdigest()[:12]
    return f'W/"{cid}.car.{variant}"'


def _not_modified(request: Request, etag: str) -> bool:
    tags = [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]
    return etag in tags or "*" in tags


def _identity(cid: str) -> bytes | None:
    """The data of an identity CID (e.g. the bafkqaaa probe), None for any other CID."""
    try:
        parsed = CID.decode(cid)
    except (ValueError, KeyError, TypeError):
        return None
    return bytes(parsed.raw_digest) if parsed.hashfun.code == _IDENTITY else None


def _scope_blocks(
    store: EmbeddedStore, root: BlockCid, want: _Want
) -> Iterator[tuple[BlockCid, bytes]]:
    """Blocks of the requested dag-scope; for a UnixFS file, entity is the whole file."""
    if want.scope == "block" or (want.scope == "entity" and not _is_file(store, root)):
        return iter([(root, store.read_block(root))])
    return walk_dag(root, store.read_block, want.dups)


def _is_file(store: EmbeddedStore, root: BlockCid) -> bool:
    if root.codec == RAW:
        return True
    try:
        decode_file_node(store.read_block(root))
        return True
    except ValueError:
        return False


def _serve(store: EmbeddedStore, request: Request, cid: str, path: str) -> Response:
    want = _negotiate(request)
    if path:
        raise _Reject(400, "content paths are not supported: request the CID itself")
    headers = _headers(cid, want, request)
    if _not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    head = request.method == "HEAD"
    inline = _identity(cid)
    if inline is not None:
        return _identity_response(cid, inline, want, headers, head)
    try:
        root = parse_cid(cid)
    except ContentError as exc:
        raise _Reject(400, str(exc)) from None
    if not store.has_block(root):
        raise _Reject(404, f"not found: block {cid} is not in this gateway's store")
    if want.kind == "raw":
        return _raw_response(store, root, headers, head)
    if want.scope == "all" and not store.has_dag(root):
        raise _Reject(404, f"not found: some blocks under {cid} are not in this gateway's store")
    if head:
        return Response(headers=headers)
    blocks = _scope_blocks(store, root, want)
    return StreamingResponse(car_chunks([root], blocks), headers=headers)


def _raw_response(
    store: EmbeddedStore, root: BlockCid, headers: dict[str, str], head: bool
) -> Response:
    try:
        block = store.read_block(root)
    except ContentError as exc:  # the file vanished or rotted on our disk: our fault
        raise _Reject(500, f"storage error: {exc}") from None
    headers["Content-Length"] = str(len(block))
    return Response(content=b"" if head else block, headers=headers)


def _identity_response(
    cid: str, data: bytes, want: _Want, headers: dict[str, str], head: bool
) -> Response:
    """Identity CIDs carry their data: raw is the data, a CAR is a header with no blocks."""
    body = data if want.kind == "raw" else encode_header([bytes(CID.decode(cid))])
    headers["Content-Length"] = str(len(body))
    return Response(content=b"" if head else body, headers=headers)


def create_gateway_app(store: EmbeddedStore) -> FastAPI:
    """FastAPI app serving `store` as a trustless gateway (read-only, no paths, no IPNS)."""
    app = FastAPI(
        title="OpenTrain trustless gateway",
        description="IPFS HTTP Trustless Gateway (raw blocks and CARs) over the embedded store.",
    )

    def answer(request: Request, cid: str, path: str) -> Response:
        try:
            return _serve(store, request, cid, path)
        except _Reject as exc:
            return PlainTextResponse(exc.reason + "\n", status_code=exc.status)

    @app.api_route("/ipfs/{cid}", methods=["GET", "HEAD"])
    def ipfs(request: Request, cid: str) -> Response:
        """A raw block or a CAR of the DAG under cid (choose with ?format= or Accept)."""
        return answer(request, cid, "")

    @app.api_route("/ipfs/{cid}/{path:path}", methods=["GET", "HEAD"])
    def ipfs_path(request: Request, cid: str, path: str) -> Response:
        """Paths below a CID are not served (400); kept so the answer says why."""
        return answer(request, cid, path)

    return app


# ---------------------------------------------------------------------------
# the client


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _content_type_params(value: str) -> tuple[str, dict[str, str]]:
    kind, *rest = [part.strip() for part in value.split(";")]
    params = dict(
        (key.strip().lower(), val.strip()) for key, _, val in (p.partition("=") for p in rest)
    )
    return kind.lower(), params


class GatewayClient(ReaderBase):
    """Read-only ContentReader over any trustless gateway; the gateway is never trusted.

    Content comes as one `order=dfs; dups=y` CAR per request, checked block by block as
    it streams: each section must be the block the DAG walk needs next and must hash to
    its CID. A gateway that sends CARs in no stated order is read block by block
    (`?format=raw`) instead, which is slower but just as safe.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        max_bytes: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.max_bytes = max_bytes
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- ContentReader -----------------------------------------------------------

    def has(self, cid: str) -> bool:
        """True when the gateway serves the whole file and every block of it verifies.

        A gateway's HEAD only vouches for the root block, so this fetches (and discards)
        the content; an unreachable gateway is an error, not a False.
        """
        pieces = self.iter_content(cid)  # a bad CID string raises here, as everywhere
        try:
            for _ in pieces:
                pass
        except RemoteError:
            raise
        except ContentError:
            return False
        return True

    def get_block(self, cid: str) -> bytes:
        """One block (`?format=raw`), verified against its CID."""
        return self._raw_block(parse_cid(cid))

    def iter_dag(self, cid: str, dups: bool = False) -> Iterator[tuple[BlockCid, bytes]]:
        """Every block under cid, DFS pre-order, verified: re-export a remote DAG as a CAR."""
        root = parse_cid(cid)
        return self._walk(root, lambda get: walk_dag(root, get, dups))

    def _content(self, cid: BlockCid) -> Iterator[bytes]:
        return self._walk(cid, lambda get: iter_file(cid, get, self.max_bytes))

    # -- internals -----------------------------------------------------------------

    def _walk(self, root: BlockCid, walker: Callable[[BlockGetter], Iterator[T]]) -> Iterator[T]:
        """Run a DAG walk fed by one streamed CAR; the response closes with the generator."""
        try:
            with self._http.stream(
                "GET", f"/ipfs/{root}", params=_CAR_PARAMS, headers=_CAR_HEADERS
            ) as response:
                self._check(response, root, CAR_MEDIA_TYPE)
                _, params = _content_type_params(response.headers.get("content-type", ""))
                if params.get("order") != "dfs":
                    response.close()  # no stated order: verify block by block instead
                    yield from walker(self._raw_block)
                    return
                reader = CarReader(response.iter_bytes())
                yield from walker(CarFeed(reader, self._raw_block).get)
        except httpx.HTTPError as exc:
            raise RemoteError(f"gateway {self.url}: {type(exc).__name__}: {exc}") from None

    def _raw_block(self, cid: BlockCid) -> bytes:
        try:
            response = self._http.get(
                f"/ipfs/{cid}", params={"format": "raw"}, headers={"Accept": RAW_MEDIA_TYPE}
            )
        except httpx.HTTPError as exc:
            raise RemoteError(f"gateway {self.url}: {type(exc).__name__}: {exc}") from None
        self._check(response, cid, RAW_MEDIA_TYPE)
        if len(response.content) > MAX_BLOCK:
            raise ContentError(
                f"content mismatch: gateway sent {len(response.content)} bytes for block {cid}"
            )
        verify_block(cid, response.content)
        return response.content

    def _check(self, response: httpx.Response, cid: BlockCid, expected: str) -> None:
        if response.status_code == 200:
            kind, _ = _content_type_params(response.headers.get("content-type", ""))
            if kind != expected:
                raise RemoteError(
                    f"gateway {self.url} answered {kind or 'no type'} for {cid}, "
                    f"not {expected}: is it a trustless gateway?"
                )
            return
        response.read()
        if response.status_code in (404, 410):
            raise ContentError(f"missing block {cid}: not on gateway {self.url}")
        raise RemoteError(
            f"gateway {self.url}: HTTP {response.status_code} for {cid}: "
            f"{_first_line(response.text)}"
        )


# ---------------------------------------------------------------------------
# a local store that fetches what it lacks from gateways


class GatewayFallbackStore:
    """The local content store, plus trustless gateways for what it does not hold yet.

    A verifier or auditor usually lacks the node's checkpoints: it reads them from the node's
    own gateway (`opentrain store serve`) or any IPFS gateway, verifying every block against
    its CID (:class:`GatewayClient`), and keeps the verified DAG locally, block for block, so
    the copy has the very same CID and the next read is local. Writes and pins go to the local
    store. Gateways are tried in order; all of them failing is one ContentError.
    """

    def __init__(self, local: EmbeddedStore, gateways: list[GatewayClient]) -> None:
        self.local = local
        self.gateways = gateways

    def _fetch(self, cid: str) -> None:
        if self.local.has(cid):
            return
        errors = []
        for gateway in self.gateways:
            batch = self.local.batch()
            try:
                for block_cid, block in gateway.iter_dag(cid):
                    batch.add(block_cid, block)
            except ContentError as exc:
                batch.abort()
                errors.append(f"{gateway.url}: {_first_line(str(exc))}")
                continue
            batch.commit(last=[parse_cid(cid).text])
            return
        tried = "; ".join(errors) or "no gateway configured"
        raise ContentError(f"{cid} is not in the local store and no gateway served it ({tried})")

    def iter_content(self, cid: str, expected_sha256: bytes | None = None) -> Iterator[bytes]:
        self._fetch(cid)
        return self.local.iter_content(cid, expected_sha256)

    def get_bytes(self, cid: str, expected_sha256: bytes | None = None) -> bytes:
        self._fetch(cid)
        return self.local.get_bytes(cid, expected_sha256)

    def get_to_file(self, cid: str, path: Path, expected_sha256: bytes | None = None) -> None:
        self._fetch(cid)
        self.local.get_to_file(cid, path, expected_sha256)

    def has(self, cid: str) -> bool:
        try:
            self._fetch(cid)
        except ContentError:
            return False
        return True

    def put_bytes(self, data: bytes) -> str:
        return self.local.put_bytes(data)

    def put_file(self, path: Path) -> str:
        return self.local.put_file(path)

    def pin(self, cid: str) -> None:
        self._fetch(cid)
        self.local.pin(cid)

    def unpin(self, cid: str) -> None:
        self.local.unpin(cid)

    def pins(self) -> list[str]:
        return self.local.pins()
