"""Local retention of a slot's checkpoints: how much disk each slot holds, and when it may go.

The node keeps every checkpoint of a slot on local disk (``<workdir>/job-J/round-R/slot-S/``)
until its contribution is final and nothing can still ask for them: the contribution is
accepted or rejected on chain, its verification is finalized, it is not under dispute and its
challenge window has closed. Then :func:`prune_slot` removes the folder (``node run
--keep-checkpoints`` keeps it). Copies already published to the content store are not touched
here: what stays published is the availability protocol's business, not local retention's.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from opentrain.chain.client import Chain
from opentrain.chain.types import ContributionStatus, Phase
from opentrain.chain.views import contribution_info, verification_info

__all__ = [
    "SlotDisk",
    "contribution_settled",
    "prune_slot",
    "slot_folder",
    "slot_usage",
]

_SLOT_PATH = re.compile(r"^job-(\d+)/round-(\d+)/slot-(\d+)$")


@dataclass(frozen=True)
class SlotDisk:
    """One slot folder under a node's workdir and what it holds."""

    job_id: int
    round: int
    slot: int
    path: Path
    checkpoints: int
    bytes: int


def slot_folder(workdir: Path, job_id: int, round_: int, slot: int) -> Path:
    """Where a slot's checkpoints live (the layout ``worker.SlotTrainer`` writes)."""
    return workdir / f"job-{job_id}" / f"round-{round_}" / f"slot-{slot}"


def checkpoint_path(folder: Path, index: int) -> Path:
    """Checkpoint ``index`` of a slot folder (written by the trainer, read by the reveal)."""
    return folder / f"ckpt-{index}.safetensors"


def slot_usage(workdir: Path) -> list[SlotDisk]:
    """Every slot folder under ``workdir`` with its checkpoint count and bytes, sorted."""
    found = []
    for path in sorted(workdir.glob("job-*/round-*/slot-*")):
        match = _SLOT_PATH.match(path.relative_to(workdir).as_posix())
        if match is None or not path.is_dir():
            continue
        files = [f for f in path.rglob("*") if f.is_file()]
        found.append(
            SlotDisk(
                job_id=int(match[1]),
                round=int(match[2]),
                slot=int(match[3]),
                path=path,
                checkpoints=sum(1 for f in files if f.suffix == ".safetensors"),
                bytes=sum(f.stat().st_size for f in files),
            )
        )
    return sorted(found, key=lambda s: (s.job_id, s.round, s.slot))


def contribution_settled(chain: Chain, contribution_id: int) -> bool:
    """True once nothing on chain can still need the contribution's checkpoints: it is
    accepted or rejected, its verification finalized, no dispute open and the challenge
    window closed."""
    if contribution_info(chain, contribution_id).status not in (
        ContributionStatus.ACCEPTED,
        ContributionStatus.REJECTED,
    ):
        return False
    info = verification_info(chain, contribution_id)
    if not info.finalized or info.phase is Phase.DISPUTED:
        return False
    return chain.now() > info.challenge_deadline  # a unix time


def prune_slot(folder: Path) -> int:
    """Remove a slot folder; returns the bytes freed (0 if it is already gone)."""
    if not folder.is_dir():
        return 0
    freed = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    shutil.rmtree(folder)
    return freed
