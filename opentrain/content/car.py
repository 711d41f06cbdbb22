"""CAR (Content Addressable aRchive) files: how content moves between IPFS nodes.

`export_car` streams CARv1 (`order=dfs`) from any block source, so a checkpoint can go
to `ipfs dag import`, a pinning service or a trustless-gateway client. `import_car`
accepts CARv1 and CARv2 from anyone, and trusts nothing in them: every block is
re-hashed against its CID, the CAR must hold exactly the blocks reachable from its
roots (a missing or an extra block is an error), and nothing reaches the store until all
of that held. No maintained Python CAR library exists on PyPI, and CARv1 is small: a
varint-framed dag-cbor header and varint-framed (CID, block) sections.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol

from opentrain.content.embedded import EmbeddedStore
from opentrain.content.errors import ContentError, check_size
from opentrain.content.unixfs import (
    DAG_PB,
    BlockCid,
    BlockGetter,
    dag_links,
    parse_cid,
    varint,
    verify_block,
)

CAR_MEDIA_TYPE = "application/vnd.ipld.car"
MAX_BLOCK = 2 << 20
"""Largest block accepted (bitswap's limit); also caps what one bad length can allocate."""
_MAX_HEADER = 1 << 20
_V2_HEADER = 40  # characteristics (16), data offset, data size, index offset (u64 LE each)
_V2_PRAGMA_LEN = 11  # the v1-style header {"version": 2} that opens every CARv2


class CarError(ContentError):
    """A CAR that is malformed, incomplete, carries extra blocks, or lies about a block."""


# ---------------------------------------------------------------------------
# writing


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | info]) + value.to_bytes(size, "big")
    raise ValueError("CBOR integer too large")


def encode_header(roots: Iterable[bytes]) -> bytes:
    """The varint-framed dag-cbor `{roots, version: 1}` (keys in dag-cbor's canonical order).

    Roots are binary CIDs, any codec or hash (a gateway's identity-CID probe has one).
    """
    cids = [b"\x00" + cid for cid in roots]
    body = b"\xa2" + _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(cids))
    for cid in cids:
        body += b"\xd8\x2a" + _cbor_head(2, len(cid)) + cid  # tag 42: a CID
    body += _cbor_head(3, 7) + b"version" + b"\x01"
    return varint(len(body)) + body


def car_chunks(
    roots: Iterable[BlockCid], blocks: Iterable[tuple[BlockCid, bytes]]
) -> Iterator[bytes]:
    """CARv1 bytes: the header, then per block its frame and the block (never copied)."""
    yield encode_header(root.wire for root in roots)
    for cid, block in blocks:
        wire = cid.wire
        yield varint(len(wire) + len(block)) + wire
        yield block


class DagSource(Protocol):
    """Anything that walks a DAG's verified blocks: the embedded store, kubo, a gateway."""

    def iter_dag(self, cid: str, dups: bool = False) -> Iterator[tuple[BlockCid, bytes]]: ...


def export_car(source: DagSource, cid: str, dups: bool = False) -> Iterator[bytes]:
    """CARv1 of everything under cid, DFS pre-order, each block verified before it is sent.

    The CID is parsed now, so a bad CID string fails before any byte is produced.
    """
    root = parse_cid(cid)
    return car_chunks([root], source.iter_dag(cid, dups))


# ---------------------------------------------------------------------------
# reading


class _Bytes:
    """Exact reads over an iterator of byte chunks (a file or an HTTP body), one pass."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = bytearray()
        self._pos = 0
        self.offset = 0  # bytes consumed so far
        self.limit: int | None = None  # offset at which the stream is considered to end

    def _fill(self, size: int) -> bool:
        while len(self._buf) - self._pos < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += chunk
        return True

    def at_end(self) -> bool:
        if self.limit is not None and self.offset >= self.limit:
            return True
        return not self._fill(1)

    def read(self, size: int, what: str) -> bytes:
        if self.limit is not None and self.offset + size > self.limit:
            raise CarError(f"truncated CAR: {what} runs past the CARv2 data section")
        if not self._fill(size):
            raise CarError(f"truncated CAR: the stream ends inside {what}")
        out = bytes(self._buf[self._pos : self._pos + size])
        self._pos += size
        self.offset += size
        return out

    def varint(self, what: str) -> int:
        result = shift = 0
        while shift <= 63:
            byte = self.read(1, what)[0]
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
        raise CarError(f"not a CAR file: {what} is not a valid varint")


def file_chunks(stream: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    """A binary file as chunks, for CarReader."""
    while chunk := stream.read(size):
        yield chunk


class _Cbor:
    """Just enough CBOR to read a CAR header: ints, strings, arrays, maps, tag 42, simples."""

    def __init__(self, buf: bytes) -> None:
        self._buf = buf
        self._pos = 0

    def item(self, depth: int = 0) -> object:
        if depth > 8:
            raise ValueError("nested too deeply")
        major, value = self._head()
        if major == 0:
            return value
        if major == 1:
            return -1 - value
        if major in (2, 3):
            raw = self._take(value)
            return raw if major == 2 else raw.decode("utf-8")
        if major == 4:
            return [self.item(depth + 1) for _ in range(value)]
        if major == 5:
            pairs = [(self.item(depth + 1), self.item(depth + 1)) for _ in range(value)]
            return {key: val for key, val in pairs if isinstance(key, str)}
        if major == 6:
            inner = self.item(depth + 1)
            if value != 42 or not isinstance(inner, bytes) or inner[:1] != b"\x00":
                raise ValueError(f"unexpected CBOR tag {value}")
            return _CidRef(inner[1:])
        return {20: False, 21: True, 22: None}[value]

    def end(self) -> bool:
        return self._pos == len(self._buf)

    def _take(self, size: int) -> bytes:
        if self._pos + size > len(self._buf):
            raise ValueError("truncated")
        out = self._buf[self._pos : self._pos + size]
        self._pos += size
        return out

    def _head(self) -> tuple[int, int]:
        first = self._take(1)[0]
        major, info = first >> 5, first & 0x1F
        if info < 24:
            return major, info
        if info > 27:
            raise ValueError("indefinite lengths and floats are not dag-cbor headers")
        size = 1 << (info - 24)
        return major, int.from_bytes(self._take(size), "big")


class _CidRef(bytes):
    """A CID found in CBOR (tag 42), binary form."""


def _decode_header(raw: bytes) -> tuple[int, list[BlockCid]]:
    try:
        cbor = _Cbor(raw)
        header = cbor.item()
        if not isinstance(header, dict) or not cbor.end():
            raise ValueError("header is not one map")
        version, roots = header.get("version"), header.get("roots", [])
        if not isinstance(version, int) or not isinstance(roots, list):
            raise ValueError("header lacks an integer version or a roots list")
        if not all(isinstance(root, _CidRef) for root in roots):
            raise ValueError("a root is not a CID")
        return version, [BlockCid.from_binary(bytes(root)) for root in roots]
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise CarError(f"not a CAR file: bad header ({exc})") from None


class CarReader:
    """Sections of a CARv1 or CARv2 stream, each block verified against its CID.

    The header is read on construction (a non-CAR fails at once); iterating yields
    (cid, block) pairs in file order and holds at most one block in memory.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._src = _Bytes(chunks)
        self.version, self.roots = self._header()
        if self.version == 2:
            self._enter_v2()
        if self.version != 1:
            raise CarError(f"not a CAR file: unsupported CAR version {self.version}")

    def _header(self) -> tuple[int, list[BlockCid]]:
        if self._src.at_end():
            raise CarError("not a CAR file: it is empty")
        size = self._src.varint("the header length")
        if not 0 < size <= _MAX_HEADER:
            raise CarError(f"not a CAR file: header length {size}")
        return _decode_header(self._src.read(size, "the header"))

    def _enter_v2(self) -> None:
        """Skip the CARv2 wrapper: its data section is a plain CARv1."""
        fixed = self._src.read(_V2_HEADER, "the CARv2 header")
        data_offset, data_size = struct.unpack_from("<QQ", fixed, 16)
        if data_offset < _V2_PRAGMA_LEN + _V2_HEADER:
            raise CarError("not a CAR file: CARv2 data offset points into its header")
        self._src.read(data_offset - self._src.offset, "the CARv2 padding")
        self._src.limit = data_offset + data_size
        self.version, self.roots = self._header()
        if self.version != 1:
            raise CarError("not a CAR file: a CARv2 must wrap a CARv1")

    def __iter__(self) -> Iterator[tuple[BlockCid, bytes]]:
        index = 0
        while not self._src.at_end():
            index += 1
            yield self._section(index)

    def _section(self, index: int) -> tuple[BlockCid, bytes]:
        what = f"block {index}"
        size = self._src.varint(f"the length of {what}")
        if size > MAX_BLOCK + 64:
            raise CarError(f"bad CAR: {what} is {size} bytes, over the {MAX_BLOCK}-byte limit")
        section = self._src.read(size, what)
        cid, block = _split_section(section, what)
        try:
            verify_block(cid, block)
        except ContentError:
            raise CarError(f"content mismatch: CAR {what} does not hash to its CID {cid}") from None
        return cid, block


def _split_section(section: bytes, what: str) -> tuple[BlockCid, bytes]:
    """A section is a binary CID (v0: 34 bytes; v1 here: 36) followed by the block."""
    for length in (34, 36):
        try:
            return BlockCid.from_binary(section[:length]), section[length:]
        except ValueError:
            continue
    raise CarError(f"bad CAR: {what} has a CID this store cannot verify (raw/dag-pb sha2-256)")


class CarCheck:
    """Collects what a CAR holds; `finish` says whether it is exactly one complete DAG set."""

    def __init__(self, roots: list[BlockCid], max_bytes: int | None = None) -> None:
        if not roots:
            raise CarError("bad CAR: it names no root")
        self.roots = list(dict.fromkeys(roots))
        self._max_bytes = max_bytes
        self._total = 0
        self._links: dict[BlockCid, list[BlockCid]] = {}

    def add(self, cid: BlockCid, block: bytes) -> None:
        self._total += len(block)
        check_size(self._total, self._max_bytes)
        if cid not in self._links:
            self._links[cid] = dag_links(cid, block) if cid.codec == DAG_PB else []

    def finish(self) -> None:
        """Raise CarError for a block the roots need but the CAR lacks, or one they don't."""
        reached: set[BlockCid] = set()
        stack: list[tuple[BlockCid, BlockCid | None]] = [(root, None) for root in self.roots]
        while stack:
            cid, parent = stack.pop()
            if cid in reached:
                continue
            if cid not in self._links:
                where = f"linked from {parent}" if parent else "a root"
                raise CarError(f"incomplete CAR: missing block {cid} ({where})")
            reached.add(cid)
            stack.extend((child, cid) for child in self._links[cid])
        extra = [cid for cid in self._links if cid not in reached]
        if extra:
            raise CarError(
                f"bad CAR: {len(extra)} block(s) not reachable from its roots, e.g. {extra[0]}"
            )


def check_car(chunks: Iterable[bytes], max_bytes: int | None = None) -> list[str]:
    """Validate a CAR completely without storing anything; returns its roots."""
    reader = CarReader(chunks)
    check = CarCheck(reader.roots, max_bytes)
    for cid, block in reader:
        check.add(cid, block)
    check.finish()
    return [root.text for root in check.roots]


def import_car(store: EmbeddedStore, chunks: Iterable[bytes]) -> list[str]:
    """Store and pin the DAGs of a CAR; all of it, or (on any error) nothing.

    Returns the roots as CIDv1 text. A block already in the store is not rewritten, but
    the CAR must still carry it: a CAR is judged on its own, not on what we hold.
    """
    reader = CarReader(chunks)
    check = CarCheck(reader.roots, store.max_bytes)
    batch = store.batch()
    try:
        for cid, block in reader:
            check.add(cid, block)
            batch.add(cid, block)
        check.finish()
    except BaseException:
        batch.abort()
        raise
    roots = [root.text for root in check.roots]
    batch.commit(last=roots)
    for root in check.roots:
        store.add_pin(root)
    return roots


# ---------------------------------------------------------------------------
# a streamed CAR as the block source of a DAG walk


class CarFeed:
    """Feeds a DFS walk (store.iter_file / walk_dag) from a streamed `order=dfs` CAR.

    The walk asks for blocks in exactly the order such a CAR sends them, so each request
    is answered by the next section, and nothing is buffered. A block the sender skipped
    because it already sent it (`dups=n`) is fetched alone through `fetch`, a re-sent one
    the walk does not want (`dups=y` under a `dups=False` walk) is skipped; any other
    surprise (a different block, an early end) is an error, never a guess.
    """

    def __init__(self, blocks: Iterable[tuple[BlockCid, bytes]], fetch: BlockGetter) -> None:
        self._blocks = iter(blocks)
        self._fetch = fetch
        self._pending: tuple[BlockCid, bytes] | None = None
        self._seen: set[BlockCid] = set()

    def get(self, cid: BlockCid) -> bytes:
        if self._pending is None:
            self._pending = next(self._blocks, None)
        while (
            self._pending is not None and self._pending[0] != cid and self._pending[0] in self._seen
        ):
            self._pending = next(self._blocks, None)  # a re-sent block (dups=y) the walk skips
        if self._pending is not None and self._pending[0] == cid:
            block = self._pending[1]
            self._pending = None
            self._seen.add(cid)
            return block
        if cid in self._seen:
            return self._fetch(cid)
        if self._pending is None:
            raise CarError(f"incomplete CAR: missing block {cid} (the stream ended before it)")
        raise CarError(f"bad CAR: got block {self._pending[0]} where {cid} was expected")
