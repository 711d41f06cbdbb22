"""The embedded content store: blocks on disk, kubo-identical CIDs, pins."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
from opentrain.content.builder import build_dag, read_chunks, split_chunks
from opentrain.content.errors import ContentError, ContentUnavailable, check_size
from opentrain.content.store import ContentStore, ReaderBase
from opentrain.content.unixfs import (
    RAW,
    BlockCid,
    dag_links,
    depth_guard,
    file_node_of,
    iter_file,
    parse_cid,
    verify_block,
    walk_dag,
)

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
            raise ContentUnavailable(f"missing block {cid}") from None
        verify_block(cid, block)
        return block

    # -- internals ----------------------------------------------------------

    def _content(self, cid: BlockCid) -> Iterator[bytes]:
        return iter_file(cid, self.read_block, self.max_bytes)

    def _put(self, chunks: Iterable[bytes]) -> str:
        batch = self.batch()
        try:
            root = build_dag(chunks, batch.add, self.max_bytes)
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
        depth_guard(cid, depth)
        if not self.has_block(cid):
            return False
        if cid.codec == RAW:
            return True
        node = file_node_of(cid, self.read_block(cid))
        return all(self._has_file(child, depth + 1) for child in node.links)

    def _has_dag(self, cid: BlockCid, depth: int) -> bool:
        depth_guard(cid, depth)
        if not self.has_block(cid):
            return False
        if cid.codec == RAW:
            return True
        links = dag_links(cid, self.read_block(cid))
        return all(self._has_dag(child, depth + 1) for child in links)


def open_store(root: Path, max_bytes: int | None = None) -> ContentStore:
    """The embedded content store under ``root``."""
    return EmbeddedStore(root, max_bytes=max_bytes)
