"""Text corpora as content: training shards and a held-out validation shard under one manifest.

``publish_corpus`` cuts a file (or the builtin corpus) into shards, puts each in the content
store and then a JSON manifest listing them by CID and sha256; the job spec names the manifest
by CID and sha256 (``CorpusDataSpec``). ``CorpusSource`` fetches it back through the store,
checking every byte, and serves batches of byte windows for the ``gpt`` model.

The builtin corpus needs no download: CPython ships its English reference documentation as
``pydoc_data.topics`` (about 0.5 MB of text). Its manifest CID is computed locally, so a spec
naming it can be written before anything is published.

Splitting deals fixed-size chunks round-robin (every ``VALIDATION_EVERY``-th chunk to the
validation shard), so every shard and the validation set sample the whole corpus rather than
one stretch of it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from opentrain.content.builder import compute_cid
from opentrain.spec import CorpusDataSpec

__all__ = [
    "CHUNK_BYTES",
    "DEFAULT_NUM_SHARDS",
    "VALIDATION_EVERY",
    "BlobStore",
    "ContentRef",
    "CorpusError",
    "CorpusManifest",
    "CorpusSource",
    "LoadedCorpus",
    "build_corpus",
    "builtin_corpus",
    "builtin_corpus_spec",
    "corpus_data_spec",
    "load_corpus",
    "publish_corpus",
]

MANIFEST_KIND = "opentrain/corpus"
MANIFEST_VERSION = 1
CHUNK_BYTES = 4096
VALIDATION_EVERY = 20  # 5 % of the chunks are held out
DEFAULT_NUM_SHARDS = 8
MAX_MANIFEST_BYTES = 1 << 20

Pair = tuple[torch.Tensor, torch.Tensor]


class CorpusError(ValueError):
    """A corpus that cannot be built, published or loaded; the message is one line."""


class BlobStore(Protocol):
    """The two content-store calls a corpus needs (``opentrain.store.ContentStore`` has them)."""

    def put_bytes(self, data: bytes) -> str: ...

    def get_bytes(self, cid: str, expected_sha256: bytes | None = None) -> bytes: ...


@dataclass(frozen=True)
class ContentRef:
    """One stored blob: where to fetch it and what its bytes must hash to."""

    cid: str
    sha256: str
    size: int

    def to_doc(self) -> dict[str, str | int]:
        return {"cid": self.cid, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_doc(cls, doc: dict[str, object]) -> ContentRef:
        cid, sha, size = doc["cid"], doc["sha256"], doc["size"]
        if not isinstance(cid, str) or not isinstance(sha, str) or not isinstance(size, int):
            raise CorpusError("corpus manifest: malformed content reference")
        if len(sha) != 64:
            raise CorpusError("corpus manifest: sha256 is not 64 hex digits")
        return cls(cid, sha, size)


@dataclass(frozen=True)
class CorpusManifest:
    """The corpus's table of contents; its canonical JSON is what the spec pins."""

    name: str
    shards: tuple[ContentRef, ...]
    validation: ContentRef
    chunk_bytes: int = CHUNK_BYTES
    validation_every: int = VALIDATION_EVERY

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, no whitespace, so the CID is reproducible."""
        doc = {
            "kind": MANIFEST_KIND,
            "version": MANIFEST_VERSION,
            "name": self.name,
            "chunk_bytes": self.chunk_bytes,
            "validation_every": self.validation_every,
            "shards": [s.to_doc() for s in self.shards],
            "validation": self.validation.to_doc(),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> CorpusManifest:
        try:
            doc = json.loads(data)
            if doc["kind"] != MANIFEST_KIND or doc["version"] != MANIFEST_VERSION:
                raise CorpusError("corpus manifest: unknown kind or version")
            return cls(
                name=str(doc["name"]),
                shards=tuple(ContentRef.from_doc(s) for s in doc["shards"]),
                validation=ContentRef.from_doc(doc["validation"]),
                chunk_bytes=int(doc["chunk_bytes"]),
                validation_every=int(doc["validation_every"]),
            )
        except CorpusError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise CorpusError(f"corpus manifest: malformed ({type(exc).__name__}: {exc})") from None


def builtin_corpus() -> bytes:
    """CPython's English docs (``pydoc_data.topics``), values joined in sorted-key order."""
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics)).encode("utf-8")


def _split(data: bytes, num_shards: int) -> tuple[list[bytes], bytes]:
    """Deal ``CHUNK_BYTES`` chunks round-robin: every ``VALIDATION_EVERY``-th chunk to the
    validation shard, the others to training shard ``k mod num_shards`` in turn."""
    chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    held = [c for i, c in enumerate(chunks) if i % VALIDATION_EVERY == VALIDATION_EVERY - 1]
    train = [c for i, c in enumerate(chunks) if i % VALIDATION_EVERY != VALIDATION_EVERY - 1]
    if len(train) < num_shards or not held:
        raise CorpusError(
            f"corpus of {len(data)} bytes is too small for {num_shards} shards and a "
            f"validation shard ({CHUNK_BYTES}-byte chunks)"
        )
    return [b"".join(train[k::num_shards]) for k in range(num_shards)], b"".join(held)


def _ref(data: bytes, cid: str) -> ContentRef:
    return ContentRef(cid, hashlib.sha256(data).hexdigest(), len(data))


def build_corpus(
    data: bytes, num_shards: int = DEFAULT_NUM_SHARDS, name: str = "corpus"
) -> tuple[CorpusManifest, list[bytes]]:
    """The manifest and the blobs to store (shards, then validation); nothing is stored.

    CIDs come from ``compute_cid``, the same function the store uses, so a later publish of
    these blobs yields exactly these CIDs."""
    if num_shards < 1:
        raise CorpusError("a corpus needs at least one shard")
    shards, held = _split(data, num_shards)
    manifest = CorpusManifest(
        name=name,
        shards=tuple(_ref(s, compute_cid(s)) for s in shards),
        validation=_ref(held, compute_cid(held)),
    )
    return manifest, [*shards, held]


def publish_corpus(
    store: BlobStore,
    path: str | Path | None = None,
    num_shards: int = DEFAULT_NUM_SHARDS,
) -> str:
    """Store a corpus file (``None``: the builtin corpus) as shards + manifest; returns the
    manifest's CID. Publishing the same bytes twice gives the same CID."""
    if path is None:
        data, name = builtin_corpus(), "pydoc_data.topics"
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CorpusError(f"cannot read corpus {path}: {exc.strerror}") from None
        name = Path(path).name
    manifest, blobs = build_corpus(data, num_shards, name)
    refs = [*manifest.shards, manifest.validation]
    for blob, ref in zip(blobs, refs, strict=True):
        cid = store.put_bytes(blob)
        if cid != ref.cid:
            raise CorpusError(f"store returned CID {cid} for a blob whose CID is {ref.cid}")
    return store.put_bytes(manifest.to_json())


def corpus_data_spec(
    store: BlobStore, manifest_cid: str, validation_size: int = 64
) -> CorpusDataSpec:
    """The ``data`` part of a job spec for a published corpus (reads its manifest)."""
    raw = store.get_bytes(manifest_cid)
    manifest = CorpusManifest.from_json(raw)
    return CorpusDataSpec(
        manifest_cid=manifest_cid,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        num_shards=len(manifest.shards),
        validation_size=validation_size,
    )


@functools.lru_cache(maxsize=4)
def builtin_corpus_spec(
    num_shards: int = DEFAULT_NUM_SHARDS, validation_size: int = 64
) -> CorpusDataSpec:
    """The ``data`` part naming the builtin corpus, computed without a store (cached)."""
    manifest, _ = build_corpus(builtin_corpus(), num_shards, "pydoc_data.topics")
    raw = manifest.to_json()
    return CorpusDataSpec(
        manifest_cid=compute_cid(raw),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        num_shards=num_shards,
        validation_size=validation_size,
    )


@dataclass(frozen=True)
class LoadedCorpus:
    """A corpus's bytes, fetched and checked: one uint8 tensor per shard, plus validation."""

    manifest: CorpusManifest
    shards: tuple[torch.Tensor, ...]
    validation: torch.Tensor


def _as_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def load_corpus(data: CorpusDataSpec, store: BlobStore) -> LoadedCorpus:
    """Fetch the manifest and every shard through ``store``, each checked by sha256."""
    raw = store.get_bytes(data.manifest_cid, expected_sha256=bytes.fromhex(data.manifest_sha256))
    if len(raw) > MAX_MANIFEST_BYTES:
        raise CorpusError(f"corpus manifest is {len(raw)} bytes, over {MAX_MANIFEST_BYTES}")
    manifest = CorpusManifest.from_json(raw)
    if len(manifest.shards) != data.num_shards:
        raise CorpusError(
            f"corpus manifest lists {len(manifest.shards)} shards, the spec says {data.num_shards}"
        )

    def fetch(ref: ContentRef) -> torch.Tensor:
        blob = store.get_bytes(ref.cid, expected_sha256=bytes.fromhex(ref.sha256))
        if len(blob) != ref.size:
            raise CorpusError(f"corpus blob {ref.cid} is {len(blob)} bytes, not {ref.size}")
        return _as_tensor(blob)

    return LoadedCorpus(
        manifest, tuple(fetch(ref) for ref in manifest.shards), fetch(manifest.validation)
    )


class CorpusSource:
    """Byte windows of a loaded corpus: the ``DataSource`` of a ``gpt`` job.

    An example is ``block_size + 1`` consecutive bytes: input = the first ``block_size``,
    target = the same shifted by one (next-byte prediction)."""

    def __init__(self, corpus: LoadedCorpus, block_size: int, validation_size: int) -> None:
        self.corpus = corpus
        self.block_size = block_size
        self.validation_size = validation_size
        window = block_size + 1
        short = [i for i, s in enumerate(corpus.shards) if s.numel() <= window]
        if short:
            raise CorpusError(f"corpus shard {short[0]} is shorter than a {window}-byte window")
        if corpus.validation.numel() < window:
            raise CorpusError(f"corpus validation shard is shorter than a {window}-byte window")
        self._offsets = torch.arange(window, dtype=torch.int64)

    def _windows(
        self, text: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = text[starts[:, None] + self._offsets[None, :]].to(torch.int64)
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()

    def batch(self, shard: int, seed: int, size: int) -> Pair:
        """``size`` windows at uniform random starts in the shard, drawn from ``seed``
        (``torch.randint`` on a CPU generator: a serial kernel, same on every CPU)."""
        text = self.corpus.shards[shard]
        gen = torch.Generator().manual_seed(seed)
        high = text.numel() - self.block_size  # last start leaves room for block_size + 1
        starts = torch.randint(0, high, (size,), generator=gen, dtype=torch.int64)
        return self._windows(text, starts)

    def validation(self) -> Pair:
        """``validation_size`` windows evenly spread over the validation shard (fixed)."""
        text = self.corpus.validation
        last = text.numel() - self.block_size - 1
        n = self.validation_size
        starts = torch.tensor([(i * last) // max(n - 1, 1) for i in range(n)], dtype=torch.int64)
        return self._windows(text, starts)
