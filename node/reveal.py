"""Availability on demand, the node's half: once the seed of a contribution fixes its sample,
publish checkpoint 0 and the start and end checkpoints of each sampled segment from the slot's
local folder and call ``Settlement.reveal`` before the reveal deadline. Only then can the
verifier attest; a node that misses the deadline is failed and slashed (``failUnrevealed``), so
the node's after-care reveals as soon as the seed is recorded, and again after a restart (the
slot folder is kept until the contribution is settled, ``node.retention``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from node.retention import checkpoint_path, slot_folder
from opentrain.chain.account import ChainAccount
from opentrain.chain.types import ChainError, Phase
from opentrain.chain.views import contribution_info, verification_info
from opentrain.content.errors import ContentError
from opentrain.content.store import ContentStore
from opentrain.protocol.jobs import load_job
from opentrain.protocol.manifest import ManifestError, TraceManifest
from opentrain.protocol.sampling import sample_indices
from opentrain.protocol.sampling import sampled_checkpoints as revealed_indices
from opentrain.training.checkpoint import digest

__all__ = ["RevealError", "publish_sampled", "reveal_if_due", "revealed_indices"]

log = logging.getLogger("opentrain.node")


class RevealError(ValueError):
    """The local slot folder cannot back the manifest the node committed to."""


def publish_sampled(
    store: ContentStore, folder: Path, manifest: TraceManifest, sampled: list[int]
) -> int:
    """Publish the checkpoints ``sampled`` needs from ``folder``, each checked against the
    manifest's digest and CID first; returns the bytes published."""
    published = 0
    for index in revealed_indices(sampled):
        ref = manifest.checkpoints[index]
        path = checkpoint_path(folder, index)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RevealError(f"checkpoint {index} is not on local disk: {exc.strerror}") from None
        if digest(data) != ref.sha256:
            raise RevealError(f"local checkpoint {index} does not match the manifest's digest")
        if store.put_bytes(data) != ref.cid:
            raise RevealError(f"local checkpoint {index} has another CID than the manifest's")
        published += len(data)
    return published


def reveal_if_due(
    account: ChainAccount, store: ContentStore, workdir: Path, contribution_id: int
) -> int:
    """Publish and reveal the contribution's sampled checkpoints if its job reveals on demand,
    the seed is recorded and nothing is revealed yet; returns the transactions sent (0 or 1)."""
    chain = account.chain
    info = verification_info(chain, contribution_id)
    if not info.awaits_reveal or info.phase not in (Phase.ASSIGNED, Phase.QUEUED):
        return 0
    if chain.now() > info.reveal_deadline:
        log.error("contribution %s: reveal deadline passed, it will be failed", contribution_id)
        return 0
    c = contribution_info(chain, contribution_id)
    job = load_job(chain, store, c.job_id)
    try:
        manifest = TraceManifest.from_json(store.get_bytes(c.manifest_cid))
        sampled = sample_indices(
            info.seed, job.spec.training.num_segments, job.spec.verification.samples
        )
        folder = slot_folder(workdir, c.job_id, c.round, c.slot)
        published = publish_sampled(store, folder, manifest, sampled)
    except (ContentError, ManifestError, RevealError) as exc:
        log.error("contribution %s: cannot reveal: %s", contribution_id, exc)
        return 0
    try:
        account.reveal(contribution_id)
    except ChainError as exc:
        if "SettlementAlreadyRevealed" in str(exc):
            return 0
        raise
    log.info(
        "contribution %s: revealed sampled segments %s (%.1f MiB published)",
        contribution_id,
        sampled,
        published / 2**20,
    )
    return 1
