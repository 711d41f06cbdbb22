"""UnixFS as kubo writes it: block CIDs, dag-pb codec, and reading a DAG from verified blocks."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from multiformats import CID

if TYPE_CHECKING:
    pass
from opentrain.content.errors import ContentError, ContentUnavailable, check_size

RAW = 0x55  # multicodec raw
DAG_PB = 0x70  # multicodec dag-pb
_UNIXFS_RAW = 0
_UNIXFS_FILE = 2
_MAX_DEPTH = 32  # 174**32 chunks is far beyond any real file; bounds recursion on bad DAGs.


# ---------------------------------------------------------------------------
# CIDs
#
# Block CIDs are encoded here, not with multiformats: every multiformats call leaves
# reference cycles (argument validation) that pin the caller's frames, chunk included,
# until the garbage collector runs. multiformats still parses every untrusted CID string.

_SHA256_PREFIX = b"\x12\x20"  # multihash: sha2-256, 32-byte digest


@dataclass(frozen=True)
class BlockCid:
    """CIDv1 of a raw or dag-pb block with a sha2-256 multihash: all this store makes or reads."""

    codec: int  # RAW or DAG_PB (multicodec codes, one-byte varints)
    digest: bytes
    v0: bool = field(default=False, compare=False)  # written as CIDv0; same block, same key

    @classmethod
    def of(cls, codec: int, block: bytes) -> BlockCid:
        return cls(codec, hashlib.sha256(block).digest())

    @classmethod
    def from_binary(cls, raw: bytes) -> BlockCid:
        """Binary CIDv1, or CIDv0 (a bare sha2-256 multihash: dag-pb, same block)."""
        if len(raw) == 34 and raw[:2] == _SHA256_PREFIX:
            return cls(DAG_PB, bytes(raw[2:]), v0=True)
        v1_ok = len(raw) == 36 and raw[0] == 1 and raw[1] in (RAW, DAG_PB)
        if v1_ok and raw[2:4] == _SHA256_PREFIX:
            return cls(raw[1], bytes(raw[4:]))
        raise ValueError("only raw or dag-pb CIDs with a sha2-256 hash are supported")

    @cached_property
    def binary(self) -> bytes:
        return bytes([1, self.codec]) + _SHA256_PREFIX + self.digest

    @cached_property
    def wire(self) -> bytes:
        """The binary CID as its writer wrote it (CIDv0 stays v0 in CARs and links)."""
        return _SHA256_PREFIX + self.digest if self.v0 else self.binary

    @cached_property
    def text(self) -> str:
        """Multibase base32 (lowercase, unpadded), as kubo prints CIDv1."""
        return "b" + base64.b32encode(self.binary).decode("ascii").lower().rstrip("=")

    def __str__(self) -> str:
        return self.text


def parse_cid(cid: str) -> BlockCid:
    """Parse an untrusted CID string (any multibase, CIDv0 or CIDv1) into the block key."""
    try:
        return BlockCid.from_binary(bytes(CID.decode(cid)))
    except (ValueError, KeyError, TypeError) as exc:
        raise ContentError(f"bad CID string {cid!r}: {exc}") from None


def verify_block(cid: BlockCid, block: bytes) -> None:
    """Re-hash a block: the CID is the only thing we trust, never the disk or the network.
    Bytes that do not hash to the CID are not that block: it was not obtained (unavailable),
    whoever sent them."""
    if hashlib.sha256(block).digest() != cid.digest:
        raise ContentUnavailable(f"content mismatch: block {cid} does not hash to its CID")


# ---------------------------------------------------------------------------
# protobuf (dag-pb PBNode/PBLink and UnixFS Data), just the fields kubo writes


def varint(value: int) -> bytes:
    """Unsigned LEB128, as protobuf, multiformats and CAR files use it."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + varint(len(payload)) + payload


@dataclass(frozen=True)
class Link:
    """A child as its parent records it."""

    cid: BlockCid
    tsize: int  # dag-pb Tsize: bytes of every block in the subtree
    filesize: int  # UnixFS blocksize: content bytes in the subtree


def encode_file_node(links: list[Link]) -> bytes:
    """dag-pb node in canonical order (Links before Data), byte-identical to kubo/js-ipfs.

    Links carry an empty Name, as kubo and ipfs-unixfs-importer write it.
    """
    unixfs = b"\x08" + varint(_UNIXFS_FILE)
    unixfs += b"\x18" + varint(sum(link.filesize for link in links))
    unixfs += b"".join(b"\x20" + varint(link.filesize) for link in links)
    out = bytearray()
    for link in links:
        pb_link = _len_field(0x0A, link.cid.binary) + b"\x12\x00" + b"\x18" + varint(link.tsize)
        out += _len_field(0x12, pb_link)
    out += _len_field(0x0A, unixfs)
    return bytes(out)


class _Malformed(ValueError):
    pass


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned varint at pos; returns (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) of a protobuf message; only varint and bytes wire types."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        wire = key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
            yield key >> 3, value
        elif wire == 2:
            size, pos = read_varint(buf, pos)
            if pos + size > len(buf):
                raise _Malformed("truncated field")
            yield key >> 3, buf[pos : pos + size]
            pos += size
        else:
            raise _Malformed(f"unsupported wire type {wire}")


def _as_bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise _Malformed("expected a bytes field")
    return value


def _as_int(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise _Malformed("expected a varint field")
    return value


def _packed_ints(value: int | bytes) -> list[int]:
    """A repeated uint64 field: one varint, or (packed encoding) bytes holding several."""
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        number, pos = read_varint(value, pos)
        out.append(number)
    return out


def _pb_node(block: bytes) -> tuple[bytes | None, list[BlockCid]]:
    """(Data, link CIDs in order) of any dag-pb node, directory or file."""
    links: list[BlockCid] = []
    data: bytes | None = None
    for num, value in _fields(block):
        if num == 2:
            hashes = [_as_bytes(v) for f, v in _fields(_as_bytes(value)) if f == 1]
            if len(hashes) != 1:
                raise _Malformed("link without exactly one Hash")
            links.append(BlockCid.from_binary(hashes[0]))
        elif num == 1:
            data = _as_bytes(value)
    return data, links


@dataclass(frozen=True)
class FileNode:
    """A dag-pb UnixFS File (or Raw) node: inline bytes, then the children's bytes in order."""

    data: bytes
    links: list[BlockCid]
    blocksizes: list[int]  # content bytes under each link (UnixFS blocksizes)
    filesize: int | None  # content bytes of the whole node, when the encoder wrote it


def decode_file_node(block: bytes) -> FileNode:
    """Parse a dag-pb UnixFS File/Raw node; anything else is a ValueError."""
    data, links = _pb_node(block)
    if data is None:
        raise _Malformed("node has no UnixFS Data")
    kind, inline, filesize, blocksizes = None, b"", None, []
    for num, value in _fields(data):
        if num == 1:
            kind = _as_int(value)
        elif num == 2:
            inline = _as_bytes(value)
        elif num == 3:
            filesize = _as_int(value)
        elif num == 4:
            blocksizes += _packed_ints(value)
    if kind not in (_UNIXFS_RAW, _UNIXFS_FILE):
        raise _Malformed(f"UnixFS type {kind} is not a file")
    return FileNode(inline, links, blocksizes, filesize)


def dag_links(cid: BlockCid, block: bytes) -> list[BlockCid]:
    """Children of a block in link order: none for raw, the PBLinks of any dag-pb node."""
    if cid.codec == RAW:
        return []
    try:
        return _pb_node(block)[1]
    except ValueError as exc:
        raise ContentError(f"malformed dag-pb block {cid}: {exc}") from None


# ---------------------------------------------------------------------------
# reading a DAG from any verified block source

BlockGetter = Callable[[BlockCid], bytes]
"""Returns the block of a CID, already verified against it, or raises ContentError."""


def depth_guard(cid: BlockCid, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ContentError(f"malformed DAG: deeper than {_MAX_DEPTH} levels at {cid}")


def file_node_of(cid: BlockCid, block: bytes) -> FileNode:
    try:
        return decode_file_node(block)
    except ValueError as exc:
        raise ContentError(f"malformed dag-pb block {cid}: {exc}") from None


def iter_file(
    root: BlockCid, get_block: BlockGetter, max_bytes: int | None = None
) -> Iterator[bytes]:
    """Bytes of a UnixFS file in order, each block pulled (and verified) in DFS pre-order.

    Pre-order is also the order of a trustless gateway's `order=dfs` CAR and of kubo's
    `dag export`, so a streamed CAR feeds this walk block by block. The size limit is
    checked against the root's declared size first, so an oversized file fails before
    any of it is fetched, and against the bytes actually seen, so a lying root cannot pass.
    """
    total = 0
    for piece in _walk_file(root, get_block, 0, max_bytes):
        total += len(piece)
        check_size(total, max_bytes)
        if piece:
            yield piece


def _walk_file(
    cid: BlockCid, get_block: BlockGetter, depth: int, max_bytes: int | None
) -> Iterator[bytes]:
    depth_guard(cid, depth)
    if cid.codec == RAW:
        yield get_block(cid)
        return
    node = file_node_of(cid, get_block(cid))
    if depth == 0 and node.filesize is not None:
        check_size(node.filesize, max_bytes)
    yield node.data
    for child in node.links:
        yield from _walk_file(child, get_block, depth + 1, max_bytes)


def walk_dag(
    root: BlockCid, get_block: BlockGetter, dups: bool = False
) -> Iterator[tuple[BlockCid, bytes]]:
    """Every block of a DAG in DFS pre-order (a CAR's `order=dfs`), each verified.

    With dups=False a block met again is skipped, as kubo's `dag export` and a gateway's
    `dups=n` do; the set of seen CIDs is the only state kept.
    """
    seen: set[BlockCid] = set()

    def walk(cid: BlockCid, depth: int) -> Iterator[tuple[BlockCid, bytes]]:
        depth_guard(cid, depth)
        if not dups and cid in seen:
            return
        seen.add(cid)
        block = get_block(cid)
        yield cid, block
        for child in dag_links(cid, block):
            yield from walk(child, depth + 1)

    return walk(root, 0)
