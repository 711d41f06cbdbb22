"""A trustless gateway (IPFS HTTP Trustless Gateway spec) over the embedded store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from multiformats import CID

from opentrain.content.car import (
    CAR_MEDIA_TYPE,
    car_chunks,
    encode_header,
)
from opentrain.content.embedded import EmbeddedStore
from opentrain.content.errors import ContentError
from opentrain.content.unixfs import (
    RAW,
    BlockCid,
    decode_file_node,
    parse_cid,
    walk_dag,
)

RAW_MEDIA_TYPE = "application/vnd.ipld.raw"
_IMMUTABLE = "public, max-age=29030400, immutable"
_IDENTITY = 0x00  # multihash code of an identity "hash" (the data itself)


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
