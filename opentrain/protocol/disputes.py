"""What any party may do to move a dispute along, and the readers every role needs for it.

Drawing a committee and resolving a dispute are open to anyone (the contracts check timing and
the rest): the node that contested a fail, the verifier that challenged an aggregate and every
committee member all call :func:`advance_dispute` so a dispute never stalls waiting for one
particular party. Voting is committee duty and lives with the verifier.
"""

from __future__ import annotations

import logging

from opentrain.chain.account import ChainAccount
from opentrain.chain.client import Chain
from opentrain.chain.types import ChainError, DisputeStatus, Ruling
from opentrain.chain.views import DisputeInfo, dispute_info

__all__ = ["advance_dispute", "has_voted"]

log = logging.getLogger("opentrain.disputes")


def has_voted(chain: Chain, dispute_id: int, member: str) -> bool:
    voted, _ = chain.disputes.functions.voteOf(dispute_id, member).call()
    return bool(voted)


def advance_dispute(account: ChainAccount, dispute_id: int) -> tuple[int, DisputeInfo]:
    """Draw the committee once the seed block is mined (again after an escalation: too few
    votes send the dispute back for a larger committee), resolve once the vote window (seconds)
    has closed; returns how many transactions were sent (0 when nothing is due or another party
    was faster) and the dispute as it stands afterwards (read again only if it moved)."""
    chain = account.chain
    info = dispute_info(chain, dispute_id)
    block = chain.block_number() + 1  # the block our transaction lands in
    try:
        if info.status is DisputeStatus.AWAITING_COMMITTEE and block > info.seed_block:
            members = account.draw_committee(dispute_id)
            log.info("dispute %s: committee drawn %s", dispute_id, members)
            return 1, dispute_info(chain, dispute_id)
        if info.status is DisputeStatus.VOTING and chain.now() > info.vote_deadline:
            ruling = account.resolve_dispute(dispute_id)
            if ruling is Ruling.NONE:
                log.info("dispute %s: too few votes, escalated to a larger committee", dispute_id)
            else:
                log.info("dispute %s resolved: %s", dispute_id, ruling.name)
            return 1, dispute_info(chain, dispute_id)
    except ChainError as exc:  # someone else drew or resolved it in the same block
        now = dispute_info(chain, dispute_id)
        if now.status is info.status:
            raise
        log.info("dispute %s moved on without us: %s", dispute_id, str(exc).splitlines()[0])
        return 0, now
    return 0, info
