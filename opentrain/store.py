"""Content-addressed storage producing the same CIDs as kubo.

Checkpoints, manifests and reports are referenced on chain by CID, so the embedded
store must compute exactly what `ipfs add --cid-version 1 --raw-leaves` computes:
CIDv1 (base32), sha2-256, raw leaves of 256 KiB fixed-size chunks, and a balanced
DAG of dag-pb UnixFS File nodes with at most 174 links per node. Content that fits
in one chunk (the empty file included) is a single raw block.

Every block read back is re-hashed and compared with its CID, so a corrupted or
substituted block is an error, never silently wrong content. The same reader walks
blocks from disk (EmbeddedStore), from a trustless gateway (opentrain.gateway) and from
kubo (opentrain.kubo): only the block source differs, never the checks.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from multiformats import CID

if TYPE_CHECKING:
    from opentrain.settings import Settings

CHUNK_SIZE = 262_144
"""kubo's default fixed-size chunker (`size-262144`)."""
MAX_LINKS = 174
"""kubo's balanced-layout fan-out (links per dag-pb node)."""

RAW = 0x55  # multicodec raw
DAG_PB = 0x70  # multicodec dag-pb
_UNIXFS_RAW = 0
_UNIXFS_FILE = 2
_MAX_DEPTH = 32  # 174**32 chunks is far beyond any real file; bounds recursion on bad DAGs.


class ContentError(Exception):
    """Content cannot be stored or returned intact (bad CID, mismatch, missing, too big)."""


class RemoteError(ContentError):
    """A remote backend (kubo, a gateway) is unreachable or answered outside its protocol.

    Kept apart from plain ContentError so `has()` can say "not there" for missing content
    but still raise when it could not ask at all.
    """


class ContentReader(Protocol):
    """The read side of a content store: every byte returned is verified against the CID."""

    def get_bytes(self, cid: str, expected_sha256: bytes | None = None) -> bytes: ...

    def iter_content(self, cid: str, expected_sha256: bytes | None = None) -> Iterator[bytes]: ...

    def has(self, cid: str) -> bool: ...

    def get_to_file(self, cid: str, path: Path, expected_sha256: bytes | None = None) -> None: ...


class ContentStore(ContentReader, Protocol):
    """What the rest of OpenTrain needs from IPFS; embedded or kubo-backed.

    A put pins what it stored (as `ipfs add` does); pin, unpin and pins manage those roots.
    """

    def put_bytes(self, data: bytes) -> str: ...

    def put_file(self, path: Path) -> str: ...

    def pin(self, cid: str) -> None: ...

    def unpin(self, cid: str) -> None: ...

    def pins(self) -> list[str]: ...


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
    """Re-hash a block: the CID is the only thing we trust, never the disk or the network."""
    if hashlib.sha256(block).digest() != cid.digest:
        raise ContentError(f"content mismatch: block {cid} does not hash to its CID")


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
class _Link:
    """A child as its parent records it."""

    cid: BlockCid
    tsize: int  # dag-pb Tsize: bytes of every block in the subtree
    filesize: int  # UnixFS blocksize: content bytes in the subtree


def _encode_file_node(links: list[_Link]) -> bytes:
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


def _depth_guard(cid: BlockCid, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ContentError(f"malformed DAG: deeper than {_MAX_DEPTH} levels at {cid}")


def _file_node(cid: BlockCid, block: bytes) -> FileNode:
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
    _depth_guard(cid, depth)
    if cid.codec == RAW:
        yield get_block(cid)
        return
    node = _file_node(cid, get_block(cid))
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
        _depth_guard(cid, depth)
        if not dups and cid in seen:
            return
        seen.add(cid)
        block = get_block(cid)
        yield cid, block
        for child in dag_links(cid, block):
            yield from walk(child, depth + 1)

    return walk(root, 0)


def check_size(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise ContentError(f"size limit exceeded: content is over {max_bytes} bytes")


def _sha256_checked(pieces: Iterator[bytes], expected: bytes, cid: str) -> Iterator[bytes]:
    """Pass pieces through, holding the last one back until the whole sha256 matched.

    A consumer therefore never receives the complete content of a mismatching object.
    The digest runs in a helper thread (hashlib releases the GIL), one piece behind, so
    it overlaps the per-block verification and the caller's writes.
    """
    digest = hashlib.sha256()
    held: bytes | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="opentrain-sha256") as hasher:
        hashing: Future[None] | None = None
        for piece in pieces:
            if hashing is not None:
                hashing.result()
            hashing = hasher.submit(digest.update, piece)
            if held is not None:
                yield held
            held = piece
        if hashing is not None:
            hashing.result()
    if digest.digest() != expected:
        raise ContentError(f"content mismatch: sha256 of {cid} is not the expected one")
    if held is not None:
        yield held


def _remove(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def write_atomically(path: Path, pieces: Iterable[bytes], durable: bool = False) -> None:
    """Write pieces to path: complete, or (on any error) not there at all / left unchanged.

    ``durable`` also flushes the file to the disk before it takes the name, so a power cut
    cannot leave the name on an empty file (the node's checkpoints: they count once named)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; content is not secret
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                out.write(piece)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


class ReaderBase(ABC):
    """The verified read side shared by every backend; subclasses only supply `_content`."""

    max_bytes: int | None = None

    @abstractmethod
    def _content(self, cid: BlockCid) -> Iterator[bytes]:
        """Verified content pieces of a UnixFS file (may be lazy: called on first next())."""

    def iter_content(self, cid: str, expected_sha256: bytes | None = None) -> Iterator[bytes]:
        """Content in order, streamed; each block is verified before any of it is yielded.

        The CID is parsed now, so a bad CID string fails here, not on the first next().
        With expected_sha256 the last piece is withheld until the whole digest matched.
        """
        pieces = self._content(parse_cid(cid))
        return pieces if expected_sha256 is None else _sha256_checked(pieces, expected_sha256, cid)

    def get_bytes(self, cid: str, expected_sha256: bytes | None = None) -> bytes:
        """Whole content, every block verified; also its sha256 when one is expected."""
        return b"".join(self.iter_content(cid, expected_sha256))

    def get_to_file(self, cid: str, path: Path, expected_sha256: bytes | None = None) -> None:
        """Write content to path atomically: complete and verified, or not there at all."""
        write_atomically(Path(path), self.iter_content(cid, expected_sha256))


# ---------------------------------------------------------------------------
# DAG builder (the one code path behind compute_cid and every put)

BlockSink = Callable[[BlockCid, bytes], None]


class DagBuilder:
    """Streaming balanced layout, equal to kubo's / ipfs-unixfs-importer's `balanced`.

    Those batch all leaves by 174 into parents, then the parents by 174, and so on until
    one root is left. Flushing a level as soon as it holds 174 entries gives the same
    tree while keeping only O(174 * depth) links in memory.
    """

    def __init__(self, sink: BlockSink) -> None:
        self._sink = sink
        self._levels: list[list[_Link]] = [[]]

    def add_chunk(self, chunk: bytes) -> None:
        self._push(0, self._emit(RAW, chunk, len(chunk), len(chunk)))

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
        return self._emit(DAG_PB, block, tsize, sum(link.filesize for link in links))

    def _emit(self, codec: int, block: bytes, tsize: int, filesize: int) -> _Link:
        cid = BlockCid.of(codec, block)
        self._sink(cid, block)
        return _Link(cid, tsize, filesize)


def _build(chunks: Iterable[bytes], sink: BlockSink, max_bytes: int | None = None) -> str:
    builder = DagBuilder(sink)
    total = 0
    for chunk in chunks:
        total += len(chunk)
        check_size(total, max_bytes)
        builder.add_chunk(chunk)
    return builder.finish()


def split_chunks(data: bytes) -> Iterator[bytes]:
    """kubo's fixed-size chunks of in-memory content."""
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start : start + CHUNK_SIZE]


def read_chunks(stream: BinaryIO) -> Iterator[bytes]:
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


def _discard(cid: BlockCid, block: bytes) -> None:
    """Block sink of compute_cid: same builder as a put, nothing kept."""


def compute_cid(data: bytes) -> str:
    """CID that `ipfs add --cid-version 1 --raw-leaves` would print, storing nothing."""
    return _build(split_chunks(data), _discard)


def compute_file_cid(path: Path) -> str:
    """compute_cid for a file, streamed chunk by chunk."""
    with open(path, "rb") as stream:
        return _build(read_chunks(stream), _discard)


# ---------------------------------------------------------------------------
# embedded store


WRITERS = 1
"""Helper threads writing a put's block files; also the most blocks waiting for them."""


def _write_new(path: str, block: bytes) -> None:
    with open(path, "xb") as out:
        out.write(block)


class BlockBatch:
    """New blocks kept aside (under root/tmp) until the caller commits them all.

    A put or CAR import that fails (size limit, bad block, I/O error) therefore leaves
    nothing in the store; `commit` publishes the given roots last, so `has(root)` never
    sees half a DAG. Block files are written by WRITERS helper threads while the caller
    hashes the next chunk (file I/O and hashlib both release the GIL); at most WRITERS
    blocks wait for them, so a put holds only a few chunks in memory.
    """

    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store
        self._dir = os.path.join(store.root, "tmp", f"batch-{uuid.uuid4().hex}")
        os.makedirs(self._dir)
        self._staged: dict[str, str] = {}
        self._writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="opentrain-store")
        self._pending: deque[Future[None]] = deque()

    def add(self, cid: BlockCid, block: bytes) -> None:
        """Stage one block, already verified by the caller (a put made it from its bytes)."""
        key = cid.text
        if key in self._staged or os.path.exists(self._store.block_file(key)):
            return  # idempotent: identical content, identical block
        path = os.path.join(self._dir, key)
        while len(self._pending) >= WRITERS:
            self._pending.popleft().result()
        self._pending.append(self._writers.submit(_write_new, path, block))
        self._staged[key] = path

    def commit(self, last: Iterable[str] = ()) -> None:
        """Move staged blocks into place (in staging order, `last` ones at the end)."""
        self._wait()
        tail = [key for key in last if key in self._staged]
        tail_set = set(tail)
        order = [key for key in self._staged if key not in tail_set] + tail
        for key in order:
            final = self._store.block_file(key)
            self._store.ensure_shard(final)
            os.replace(self._staged[key], final)
        self.abort()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._wait()
        self._writers.shutdown()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _wait(self) -> None:
        """Let every write finish; the first failure (if any) is raised here."""
        failure: BaseException | None = None
        while self._pending:
            try:
                self._pending.popleft().result()
            except BaseException as exc:  # keep draining: no thread may outlive the batch
                failure = failure or exc
        if failure is not None:
            raise failure


class EmbeddedStore(ReaderBase):
    """ContentStore on a local folder: root/blocks/<2 chars>/<cid>, one file per block.

    The shard folder is the next-to-last two characters of the CID (as kubo's flatfs
    does): every CIDv1 starts with "baf", so a prefix would put all blocks in one folder.
    Pins are empty files root/pins/<cid>. `max_bytes` bounds what a put accepts and what a
    read returns (None: no limit).
    """

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        (self.root / "blocks").mkdir(parents=True, exist_ok=True)
        (self.root / "pins").mkdir(exist_ok=True)
        self._blocks = str(self.root / "blocks")
        self._shards: set[str] = set()  # shard folders known to exist

    def block_path(self, cid: str) -> Path:
        """File of one block; `cid` is the canonical CIDv1 base32 text of that block."""
        return Path(self.block_file(cid))

    def block_file(self, cid: str) -> str:
        """block_path as a string: the hot paths skip pathlib's per-call parsing."""
        return f"{self._blocks}/{cid[-3:-1]}/{cid}"

    def ensure_shard(self, block_file: str) -> None:
        shard = os.path.dirname(block_file)
        if shard not in self._shards:
            os.makedirs(shard, exist_ok=True)
            self._shards.add(shard)

    # -- writes ---------------------------------------------------------------

    def put_bytes(self, data: bytes) -> str:
        """Store and pin content, return its CID; storing the same content twice is a no-op."""
        check_size(len(data), self.max_bytes)
        return self._put(split_chunks(data))

    def put_file(self, path: Path) -> str:
        """Store a file chunk by chunk, never holding more than one chunk of it in memory."""
        check_size(os.stat(path).st_size, self.max_bytes)
        with open(path, "rb") as stream:
            return self._put(read_chunks(stream))

    def batch(self) -> BlockBatch:
        """Stage blocks for an all-or-nothing write (the CAR importer uses it)."""
        return BlockBatch(self)

    # -- pins -------------------------------------------------------------------

    def pin(self, cid: str) -> None:
        """Pin a DAG that is entirely here (a pin never refers to half a DAG)."""
        parsed = parse_cid(cid)
        if not self.has_dag(parsed):
            raise ContentError(f"missing block: {cid} is not (entirely) in the store")
        self.add_pin(parsed)

    def add_pin(self, cid: BlockCid) -> None:
        """Record a pin for a DAG the caller has just checked or written whole."""
        (self.root / "pins" / cid.text).touch()

    def unpin(self, cid: str) -> None:
        """Remove a pin; as kubo, unpinning what is not pinned is an error."""
        path = self.root / "pins" / parse_cid(cid).text
        try:
            path.unlink()
        except FileNotFoundError:
            raise ContentError(f"not pinned: {cid}") from None

    def pins(self) -> list[str]:
        """Pinned root CIDs (CIDv1 base32), sorted."""
        return sorted(p.name for p in (self.root / "pins").iterdir() if not p.name.startswith("."))

    # -- reads ----------------------------------------------------------------

    def has(self, cid: str) -> bool:
        """True when every block of the file is here (leaves checked for presence only)."""
        return self._has(parse_cid(cid))

    def get_block(self, cid: str) -> bytes:
        """One block, verified against its CID."""
        return self.read_block(parse_cid(cid))

    def has_block(self, cid: BlockCid) -> bool:
        return os.path.exists(self.block_file(cid.text))

    def has_dag(self, cid: BlockCid) -> bool:
        """Every block reachable from cid is here, whatever the DAG (file, directory)."""
        try:
            return self._has_dag(cid, 0)
        except ContentError:
            return False

    def iter_dag(self, cid: str, dups: bool = False) -> Iterator[tuple[BlockCid, bytes]]:
        """All blocks under cid in DFS pre-order, verified (what a CAR export contains)."""
        return walk_dag(parse_cid(cid), self.read_block, dups)

    def read_block(self, cid: BlockCid) -> bytes:
        """The BlockGetter of this store: read from disk, re-hash, compare."""
        try:
            with open(self.block_file(cid.text), "rb") as stream:
                block = stream.read()
        except FileNotFoundError:
            raise ContentError(f"missing block {cid}") from None
        verify_block(cid, block)
        return block

    # -- internals ----------------------------------------------------------

    def _content(self, cid: BlockCid) -> Iterator[bytes]:
        return iter_file(cid, self.read_block, self.max_bytes)

    def _put(self, chunks: Iterable[bytes]) -> str:
        batch = self.batch()
        try:
            root = _build(chunks, batch.add, self.max_bytes)
        except BaseException:
            batch.abort()
            raise
        batch.commit(last=[root])
        (self.root / "pins" / root).touch()  # add_pin without re-parsing the root
        return root

    def _has(self, cid: BlockCid) -> bool:
        try:
            return self._has_file(cid, 0)
        except ContentError:
            return False  # a corrupt or malformed inner node: the content is not servable

    def _has_file(self, cid: BlockCid, depth: int) -> bool:
        _depth_guard(cid, depth)
        if not self.has_block(cid):
            return False
        if cid.codec == RAW:
            return True
        node = _file_node(cid, self.read_block(cid))
        return all(self._has_file(child, depth + 1) for child in node.links)

    def _has_dag(self, cid: BlockCid, depth: int) -> bool:
        _depth_guard(cid, depth)
        if not self.has_block(cid):
            return False
        if cid.codec == RAW:
            return True
        links = dag_links(cid, self.read_block(cid))
        return all(self._has_dag(child, depth + 1) for child in links)


def open_store(root: Path, max_bytes: int | None = None) -> ContentStore:
    """The embedded content store under ``root``."""
    return EmbeddedStore(root, max_bytes=max_bytes)


def store_from_settings(settings: Settings) -> ContentStore:
    """kubo over its RPC when `ipfs_api` is set (kubo finds content on the IPFS network
    itself), else the embedded store under `store_dir`, reading what it lacks from the
    `gateways` when any are set."""
    if settings.ipfs_api:
        from opentrain.kubo import KuboStore  # kubo.py imports this module

        return KuboStore(settings.ipfs_api, max_bytes=settings.max_content_bytes)
    local = EmbeddedStore(settings.resolved_store_dir, max_bytes=settings.max_content_bytes)
    urls = [u.strip() for u in settings.gateways.split(",") if u.strip()]
    if not urls:
        return local
    from opentrain.gateway import GatewayClient, GatewayFallbackStore  # imports this module

    clients = [GatewayClient(u, max_bytes=settings.max_content_bytes) for u in urls]
    return GatewayFallbackStore(local, clients)
