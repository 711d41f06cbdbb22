"""The trace manifest: a JSON document on IPFS listing every checkpoint of a slot by CID and
sha256, and the trace's seal. Its CID goes on-chain with the contribution; the trace root
commits to the digests and the seal (``opentrain.protocol.commitments``). Node writes it,
verifier and auditor read it: one format, here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from opentrain.protocol.commitments import TraceTree, build_trace_tree

MANIFEST_VERSION = 2  # 2: the trace root is sealed (the manifest lists the seal)


class ManifestError(ValueError):
    """A manifest that is malformed or disagrees with what is on-chain."""


@dataclass(frozen=True)
class CheckpointRef:
    index: int
    cid: str
    sha256: bytes


@dataclass(frozen=True)
class ContentRef:
    """An object in the content store, pinned by sha256."""

    cid: str
    sha256: bytes

    def to_doc(self) -> dict[str, str]:
        return {"cid": self.cid, "sha256": self.sha256.hex()}

    @classmethod
    def from_doc(cls, doc: dict[str, str]) -> ContentRef:
        ref = cls(str(doc["cid"]), bytes.fromhex(doc["sha256"]))
        if len(ref.sha256) != 32:
            raise ManifestError("manifest digest is not 32 bytes")
        return ref


@dataclass(frozen=True)
class TraceManifest:
    """``update`` and ``residual`` are there only under a codec with error feedback
    (``opentrain.protocol.codecs``): the encoded pseudo-gradient the aggregator uses and the
    residual the slot's next round starts from, both recomputable from the output.

    ``seal`` is the 32 bytes the trace root is sealed with: random for an honest node, a
    canary's fault commitment for a canary (nobody can tell which before the reveal)."""

    job_id: int
    round: int
    slot: int
    spec_digest: bytes
    checkpoints: tuple[CheckpointRef, ...]
    seal: bytes
    update: ContentRef | None = None
    residual: ContentRef | None = None

    @property
    def digests(self) -> list[bytes]:
        return [c.sha256 for c in self.checkpoints]

    def trace_tree(self) -> TraceTree:
        return build_trace_tree(self.digests, self.seal)

    @property
    def trace_root(self) -> bytes:
        return self.trace_tree().root

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, no whitespace, so the CID is reproducible."""
        doc: dict[str, object] = {
            "version": MANIFEST_VERSION,
            "job_id": self.job_id,
            "round": self.round,
            "slot": self.slot,
            "spec_digest": self.spec_digest.hex(),
            "trace_root": self.trace_root.hex(),
            "seal": self.seal.hex(),
            "checkpoints": [
                {"index": c.index, "cid": c.cid, "sha256": c.sha256.hex()} for c in self.checkpoints
            ],
        }
        if self.update is not None:
            doc["update"] = self.update.to_doc()
        if self.residual is not None:
            doc["residual"] = self.residual.to_doc()
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TraceManifest:
        try:
            doc = json.loads(data)
            if doc["version"] != MANIFEST_VERSION:
                raise ManifestError(f"manifest version {doc['version']} is not supported")
            refs = tuple(
                CheckpointRef(int(c["index"]), str(c["cid"]), bytes.fromhex(c["sha256"]))
                for c in doc["checkpoints"]
            )
            manifest = cls(
                job_id=int(doc["job_id"]),
                round=int(doc["round"]),
                slot=int(doc["slot"]),
                spec_digest=bytes.fromhex(doc["spec_digest"]),
                checkpoints=refs,
                seal=bytes.fromhex(doc["seal"]),
                update=ContentRef.from_doc(doc["update"]) if "update" in doc else None,
                residual=ContentRef.from_doc(doc["residual"]) if "residual" in doc else None,
            )
        except ManifestError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"malformed trace manifest: {type(exc).__name__}: {exc}") from None
        if [c.index for c in refs] != list(range(len(refs))):
            raise ManifestError("manifest checkpoints are not numbered 0..n in order")
        if any(len(c.sha256) != 32 for c in refs):
            raise ManifestError("manifest digest is not 32 bytes")
        if len(manifest.seal) != 32:
            raise ManifestError("manifest seal is not 32 bytes")
        if bytes.fromhex(doc["trace_root"]) != manifest.trace_root:
            raise ManifestError("manifest trace_root does not match its checkpoint digests")
        return manifest
