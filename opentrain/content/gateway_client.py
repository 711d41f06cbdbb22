"""A verifying client for any trustless gateway, and a store that falls back to gateways."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx

from opentrain.content.car import (
    CAR_MEDIA_TYPE,
    MAX_BLOCK,
    CarFeed,
    CarReader,
)
from opentrain.content.embedded import EmbeddedStore
from opentrain.content.errors import ContentError, ContentUnavailable, RemoteError
from opentrain.content.gateway_server import RAW_MEDIA_TYPE
from opentrain.content.store import ReaderBase
from opentrain.content.unixfs import (
    BlockCid,
    BlockGetter,
    iter_file,
    parse_cid,
    verify_block,
    walk_dag,
)

T = TypeVar("T")
# what the client asks for: a CAR it can check as it streams (DFS, repeats re-sent)
_CAR_PARAMS = {"format": "car", "dag-scope": "all", "car-order": "dfs", "car-dups": "y"}
_CAR_HEADERS = {"Accept": f"{CAR_MEDIA_TYPE}; version=1; order=dfs; dups=y"}


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
            raise ContentUnavailable(f"missing block {cid}: not on gateway {self.url}")
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
        errors, flawed = [], False
        for gateway in self.gateways:
            batch = self.local.batch()
            try:
                for block_cid, block in gateway.iter_dag(cid):
                    batch.add(block_cid, block)
            except ContentError as exc:
                batch.abort()
                errors.append(f"{gateway.url}: {_first_line(str(exc))}")
                # verified blocks that are malformed or too big: a flaw of the CID itself
                flawed = flawed or not isinstance(exc, ContentUnavailable)
                continue
            batch.commit(last=[parse_cid(cid).text])
            return
        tried = "; ".join(errors) or "no gateway configured"
        error = ContentError if flawed else ContentUnavailable
        raise error(f"{cid} is not in the local store and no gateway served it ({tried})")

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
