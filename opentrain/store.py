"""Content-addressed storage producing the same CIDs as kubo.

Checkpoints, manifests and reports are referenced on chain by CID, so the embedded
store must compute exactly what `ipfs add --cid-version 1 --raw-leaves` computes:
CIDv1 (base32), sha2-256, raw leaves of 256 KiB fixed-size chunks, and a balanced
DAG of dag-pb UnixFS File nodes with at most 174 links per node. Content that fits
in one chunk (the empty file included) is a single raw block.

Every block read back is re-hashed and compared with its CID, so a corrupted or
substituted block is an error, never silently wrong content.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO, Protocol

from multiformats import CID

CHUNK_SIZE = 262_144
"""kubo's default fixed-size chunker (`size-262144`)."""
MAX_LINKS = 174
"""kubo's balanced-layout fan-out (links per dag-pb node)."""

_RAW = 0x55  # multicodec raw
_DAG_PB = 0x70  # multicodec dag-pb
_UNIXFS_RAW = 0
_UNIXFS_FILE = 2
_MAX_DEPTH = 32  # 174**32 chunks is far beyond any real file; bounds recursion on bad DAGs.


class ContentError(Exception):
    """Content cannot be stored or returned intact (bad CID, mismatch, missing, too big)."""


class ContentStore(Protocol):
    """What the rest of OpenTrain needs from IPFS; embedded or kubo-backed."""

    def put_bytes(self, data: bytes) -> str: ...

    def put_file(self, path: Path) -> str: ...

    def get_bytes(self, cid: str, expected_sha256: bytes | None = None) -> bytes: ...

    def iter_content(self, cid: str) -> Iterator[bytes]: ...

    def has(self, cid: str) -> bool: ...

    def get_to_file(self, cid: str, path: Path, expected_sha256: bytes | None = None) -> None: ...


# ---------------------------------------------------------------------------
# CIDs
#
# Block CIDs are encoded here, not with multiformats: every multiformats call leaves
# reference cycles (argument validation) that pin the caller's frames, chunk included,
# until the garbage collector runs. multiformats still parses every untrusted CID string.

_SHA256_PREFIX = b"\x12\x20"  # multihash: sha2-256, 32-byte digest


@dataclass(frozen=True)
class _Cid:
    """CIDv1 of a raw or dag-pb block with a sha2-256 multihash: all this store makes or reads."""

    codec: int  # _RAW or _DAG_PB (multicodec codes, one-byte varints)
    digest: bytes

    @classmethod
    def of(cls, codec: int, block: bytes) -> _Cid:
        return cls(codec, hashlib.sha256(block).digest())

    @classmethod
    def from_binary(cls, raw: bytes) -> _Cid:
        """Binary CIDv1, or CIDv0 (a bare sha2-256 multihash: dag-pb, same block)."""
        if len(raw) == 34 and raw[:2] == _SHA256_PREFIX:
            return cls(_DAG_PB, raw[2:])
        v1_ok = len(raw) == 36 and raw[0] == 1 and raw[1] in (_RAW, _DAG_PB)
        if v1_ok and raw[2:4] == _SHA256_PREFIX:
            return cls(raw[1], raw[4:])
        raise ValueError("only raw or dag-pb CIDs with a sha2-256 hash are supported")

    @cached_property
    def binary(self) -> bytes:
        return bytes([1, self.codec]) + _SHA256_PREFIX + self.digest

    @cached_property
    def text(self) -> str:
        """Multibase base32 (lowercase, unpadded), as kubo prints CIDv1."""
        return "b" + base64.b32encode(self.binary).decode("ascii").lower().rstrip("=")

    def __str__(self) -> str:
        return self.text


def _parse_cid(cid: str) -> _Cid:
    """Parse an untrusted CID string (any multibase, CIDv0 or CIDv1) into the block key."""
    try:
        return _Cid.from_binary(bytes(CID.decode(cid)))
    except (ValueError, KeyError, TypeError) as exc:
        raise ContentError(f"bad CID string {cid!r}: {exc}") from None


def _verify_block(cid: _Cid, block: bytes) -> None:
    """Re-hash a block: the CID is the only thing we trust, never the disk or the network."""
    if hashlib.sha256(block).digest() != cid.digest:
        raise ContentError(f"content mismatch: block {cid} does not hash to its CID")


# ---------------------------------------------------------------------------
# protobuf (dag-pb PBNode/PBLink and UnixFS Data), just the fields kubo writes


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


@dataclass(frozen=True)
class _Link:
    """A child as its parent records it."""

    cid: _Cid
    tsize: int  # dag-pb Tsize: bytes of every block in the subtree
    filesize: int  # UnixFS blocksize: content bytes in the subtree


def _encode_file_node(links: list[_Link]) -> bytes:
    """dag-pb node in canonical order (Links before Data), byte-identical to kubo/js-ipfs.

    Links carry an empty Name, as kubo and ipfs-unixfs-importer write it.
    """
    unixfs = b"\x08" + _varint(_UNIXFS_FILE)
    unixfs += b"\x18" + _varint(sum(link.filesize for link in links))
    unixfs += b"".join(b"\x20" + _varint(link.filesize) for link in links)
    out = bytearray()
    for link in links:
        pb_link = _len_field(0x0A, link.cid.binary) + b"\x12\x00" + b"\x18" + _varint(link.tsize)
        out += _len_field(0x12, pb_link)
    out += _len_field(0x0A, unixfs)
    return bytes(out)


class _Malformed(ValueError):
    pass


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
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
        key, pos = _read_varint(buf, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield key >> 3, value
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
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


def _decode_file_node(block: bytes) -> tuple[bytes, list[_Cid]]:
    """Return (inline data, child CIDs in order) of a dag-pb UnixFS File/Raw node."""
    links: list[_Cid] = []
    data: bytes | None = None
    for field, value in _fields(block):
        if field == 2:
            hashes = [_as_bytes(v) for f, v in _fields(_as_bytes(value)) if f == 1]
            if len(hashes) != 1:
                raise _Malformed("link without exactly one Hash")
            links.append(_Cid.from_binary(hashes[0]))
        elif field == 1:
            data = _as_bytes(value)
    if data is None:
        raise _Malformed("node has no UnixFS Data")
    kind, inline = None, b""
    for field, value in _fields(data):
        if field == 1:
            kind = _as_int(value)
        elif field == 2:
            inline = _as_bytes(value)
    if kind not in (_UNIXFS_RAW, _UNIXFS_FILE):
        raise _Malformed(f"UnixFS type {kind} is not a file")
    return inline, links


# ---------------------------------------------------------------------------
# DAG builder (the one code path behind compute_cid and every put)

_BlockSink = Callable[[_Cid, bytes], None]


class _DagBuilder:
    """Streaming balanced layout, equal to kubo's / ipfs-unixfs-importer's `balanced`.

    Those batch all leaves by 174 into parents, then the parents by 174, and so on until
    one root is left. Flushing a level as soon as it holds 174 entries gives the same
    tree while keeping only O(174 * depth) links in memory.
    """

    def __init__(self, sink: _BlockSink) -> None:
        self._sink = sink
        self._levels: list[list[_Link]] = [[]]

    def add_chunk(self, chunk: bytes) -> None:
        self._push(0, self._emit(_RAW, chunk, len(chunk), len(chunk)))

    def finish(self) -> str:
        """Close every partial level bottom-up and return the root CID."""
        if not any(self._levels):
            self.add_chunk(b"")  # the empty file is one empty raw block
        level = 0
        while True:
            pending = self._levels[level]
            if len(pending) == 1 and not any(self._levels[level + 1 :]):
                return pending[0].cid.text  # a lone leaf is its own root (no wrapper node)
            if pending:
                self._push(level + 1, self._reduce(level))
            level += 1

    def _push(self, level: int, link: _Link) -> None:
        if level == len(self._levels):
            self._levels.append([])
        self._levels[level].append(link)
        if len(self._levels[level]) == MAX_LINKS:
            self._push(level + 1, self._reduce(level))

    def _reduce(self, level: int) -> _Link:
        links, self._levels[level] = self._levels[level], []
        block = _encode_file_node(links)
        tsize = len(block) + sum(link.tsize for link in links)
        return self._emit(_DAG_PB, block, tsize, sum(link.filesize for link in links))

    def _emit(self, codec: int, block: bytes, tsize: int, filesize: int) -> _Link:
        cid = _Cid.of(codec, block)
        self._sink(cid, block)
        return _Link(cid, tsize, filesize)


def _build(chunks: Iterable[bytes], sink: _BlockSink, max_bytes: int | None = None) -> str:
    builder = _DagBuilder(sink)
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if max_bytes is not None and total > max_bytes:
            raise ContentError(f"size limit exceeded: content is over {max_bytes} bytes")
        builder.add_chunk(chunk)
    return builder.finish()


def _split(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start : start + CHUNK_SIZE]


def _read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Full CHUNK_SIZE chunks from a stream (short reads are topped up), then the tail."""
    while True:
        chunk = stream.read(CHUNK_SIZE)
        while chunk and len(chunk) < CHUNK_SIZE:
            more = stream.read(CHUNK_SIZE - len(chunk))
            if not more:
                break
            chunk += more
        if not chunk:
            return
        yield chunk


def _discard(cid: _Cid, block: bytes) -> None:
    """Block sink of compute_cid: same builder as a put, nothing kept."""


def compute_cid(data: bytes) -> str:
    """CID that `ipfs add --cid-version 1 --raw-leaves` would print, storing nothing."""
    return _build(_split(data), _discard)


def compute_file_cid(path: Path) -> str:
    """compute_cid for a file, streamed chunk by chunk."""
    with open(path, "rb") as stream:
        return _build(_read_chunks(stream), _discard)


# ---------------------------------------------------------------------------
# embedded store


def _remove(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class _Staging:
    """New blocks of one put, kept aside until the whole DAG is built.

    A put that fails (size limit, I/O error) therefore leaves nothing in the store, and
    blocks are published leaves first, root last, so `has(root)` never sees half a DAG.
    """

    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store
        self._dir = store.root / "tmp" / f"put-{uuid.uuid4().hex}"
        self._dir.mkdir(parents=True)
        self._staged: dict[str, Path] = {}

    def write(self, cid: _Cid, block: bytes) -> None:
        key = cid.text
        if key in self._staged or self._store.block_path(key).exists():
            return  # idempotent: identical content, identical block
        path = self._dir / key
        path.write_bytes(block)
        self._staged[key] = path

    def commit(self) -> None:
        for key, path in self._staged.items():
            final = self._store.block_path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
        self.abort()

    def abort(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


class EmbeddedStore:
    """ContentStore on a local folder: root/blocks/<2 chars>/<cid>, one file per block.

    The shard folder is the next-to-last two characters of the CID (as kubo's flatfs
    does): every CIDv1 starts with "baf", so a prefix would put all blocks in one folder.
    `max_bytes` bounds what a put accepts and what a read returns (None: no limit).
    """

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        (self.root / "blocks").mkdir(parents=True, exist_ok=True)

    def block_path(self, cid: str) -> Path:
        """File of one block; `cid` is the canonical CIDv1 base32 text of that block."""
        return self.root / "blocks" / cid[-3:-1] / cid

    def put_bytes(self, data: bytes) -> str:
        """Store content and return its CID; storing the same content twice is a no-op."""
        self._check_size(len(data))
        return self._put(_split(data))

    def put_file(self, path: Path) -> str:
        """Store a file chunk by chunk, never holding more than one chunk of it in memory."""
        self._check_size(os.stat(path).st_size)
        with open(path, "rb") as stream:
            return self._put(_read_chunks(stream))

    def get_bytes(self, cid: str, expected_sha256: bytes | None = None) -> bytes:
        """Whole content, every block verified; also its sha256 when one is expected."""
        data = b"".join(self.iter_content(cid))
        if expected_sha256 is not None and hashlib.sha256(data).digest() != expected_sha256:
            raise ContentError(f"content mismatch: sha256 of {cid} is not the expected one")
        return data

    def iter_content(self, cid: str) -> Iterator[bytes]:
        """Content in order, streamed; each block is verified before any of it is yielded.

        The CID is parsed now, so a bad CID string fails here, not on the first next().
        """
        return self._iter(_parse_cid(cid))

    def _iter(self, cid: _Cid) -> Iterator[bytes]:
        total = 0
        for piece in self._walk(cid, 0):
            total += len(piece)
            self._check_size(total)
            if piece:
                yield piece

    def has(self, cid: str) -> bool:
        """True when every block of the DAG is here (leaves checked for presence only)."""
        parsed = _parse_cid(cid)
        try:
            return self._has(parsed, 0)
        except ContentError:
            return False  # a corrupt or malformed inner node: the content is not servable

    def get_to_file(self, cid: str, path: Path, expected_sha256: bytes | None = None) -> None:
        """Write content to path atomically: complete and verified, or not there at all."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            digest = hashlib.sha256()
            os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; content is not secret
            with os.fdopen(fd, "wb") as out:
                for piece in self.iter_content(cid):
                    digest.update(piece)
                    out.write(piece)
            if expected_sha256 is not None and digest.digest() != expected_sha256:
                raise ContentError(f"content mismatch: sha256 of {cid} is not the expected one")
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise

    # -- internals ----------------------------------------------------------

    def _check_size(self, size: int) -> None:
        if self.max_bytes is not None and size > self.max_bytes:
            raise ContentError(f"size limit exceeded: content is over {self.max_bytes} bytes")

    def _put(self, chunks: Iterable[bytes]) -> str:
        staging = _Staging(self)
        try:
            root = _build(chunks, staging.write, self.max_bytes)
        except BaseException:
            staging.abort()
            raise
        staging.commit()
        return root

    def _read_block(self, cid: _Cid) -> bytes:
        try:
            block = self.block_path(cid.text).read_bytes()
        except FileNotFoundError:
            raise ContentError(f"missing block {cid}") from None
        _verify_block(cid, block)
        return block

    def _node(self, cid: _Cid, depth: int) -> tuple[bytes, list[_Cid]]:
        if depth > _MAX_DEPTH:
            raise ContentError(f"malformed DAG: deeper than {_MAX_DEPTH} levels at {cid}")
        try:
            return _decode_file_node(self._read_block(cid))
        except ValueError as exc:
            raise ContentError(f"malformed dag-pb block {cid}: {exc}") from None

    def _walk(self, cid: _Cid, depth: int) -> Iterator[bytes]:
        if cid.codec == _RAW:
            yield self._read_block(cid)
            return
        inline, links = self._node(cid, depth)
        yield inline
        for child in links:
            yield from self._walk(child, depth + 1)

    def _has(self, cid: _Cid, depth: int) -> bool:
        if cid.codec == _RAW:
            return self.block_path(cid.text).exists()
        if not self.block_path(cid.text).exists():
            return False
        _, links = self._node(cid, depth)
        return all(self._has(child, depth + 1) for child in links)


def open_store(root: Path, max_bytes: int | None = None) -> ContentStore:
    """The content store the settings ask for: the embedded store under ``root``."""
    return EmbeddedStore(root, max_bytes=max_bytes)
