"""The DAG builder: the one code path behind compute_cid and every put (kubo-identical CIDs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    pass
from opentrain.content.errors import check_size
from opentrain.content.unixfs import DAG_PB, RAW, BlockCid, Link, encode_file_node

CHUNK_SIZE = 262_144
"""kubo's default fixed-size chunker (`size-262144`)."""
MAX_LINKS = 174
"""kubo's balanced-layout fan-out (links per dag-pb node)."""


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
        self._levels: list[list[Link]] = [[]]

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

    def _push(self, level: int, link: Link) -> None:
        if level == len(self._levels):
            self._levels.append([])
        self._levels[level].append(link)
        if len(self._levels[level]) == MAX_LINKS:
            self._push(level + 1, self._reduce(level))

    def _reduce(self, level: int) -> Link:
        links, self._levels[level] = self._levels[level], []
        block = encode_file_node(links)
        tsize = len(block) + sum(link.tsize for link in links)
        return self._emit(DAG_PB, block, tsize, sum(link.filesize for link in links))

    def _emit(self, codec: int, block: bytes, tsize: int, filesize: int) -> Link:
        cid = BlockCid.of(codec, block)
        self._sink(cid, block)
        return Link(cid, tsize, filesize)


def build_dag(chunks: Iterable[bytes], sink: BlockSink, max_bytes: int | None = None) -> str:
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
    return build_dag(split_chunks(data), _discard)


def compute_file_cid(path: Path) -> str:
    """compute_cid for a file, streamed chunk by chunk."""
    with open(path, "rb") as stream:
        return build_dag(read_chunks(stream), _discard)
