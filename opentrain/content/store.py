"""The ContentStore interface and what every backend shares: size limits, sha256-checked reads,
atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    pass
from opentrain.content.errors import ContentError
from opentrain.content.unixfs import BlockCid, parse_cid


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
