"""What any party may do to get a contribution verified: record its seed, serve a queued draw,
run a takeover's draw, request a takeover when the assigned verifier missed its window, and fail
a contribution whose node did not reveal its sampled checkpoints in time (availability on
demand; a verifier is never taken over while it waits for the reveal).

All of these are open to anyone (the contracts check timing); the node calls
:func:`advance_assignment` for its own contributions (it is the party that wants them settled:
an unrecorded seed fails the contribution), every verifier daemon for all open ones. A queued
draw waits for the drawn verifier: Python mirrors the draw (``opentrain.protocol.draws``) to know
*who* it waits for and calls ``assignVerifier`` only once that verifier has its lock free.
"""

from __future__ import annotations

import logging

from opentrain.chain.account import ChainAccount
from opentrain.chain.client import Chain
from opentrain.chain.types import ChainError, Phase, Verdict
from opentrain.chain.views import VerificationInfo, contribution_info, verification_info
from opentrain.protocol.draws import VERIFIER_TAG, Snapshot, draw_one

__all__ = ["UNAVAILABLE_RETRY_SHARE", "advance_assignment", "awaited_verifier", "out_of_patience"]

# How much of a window a verifier (or a committee member) keeps retrying content it cannot
# obtain before it fails the contribution as withheld: a passing partition on either side must
# not condemn an honest node, and the last quarter is left for re-execution and the transaction.
UNAVAILABLE_RETRY_SHARE = 0.75


def out_of_patience(now: int, deadline: int, window: int) -> bool:
    """Has the share of the window for retrying unavailable content run out (``now`` and
    ``deadline`` in the chain's seconds, ``window`` its length)?"""
    return now >= deadline - window * (1 - UNAVAILABLE_RETRY_SHARE)


log = logging.getLogger("opentrain.assignment")


def awaited_verifier(chain: Chain, info: VerificationInfo) -> str:
    """The verifier a queued draw waits for: the one ticket ``draw_counter`` of the stored
    draw seed lands on (the zero address when the snapshot has no weight)."""
    accounts, weights = chain.stakes.functions.verifierSnapshot(info.snapshot_block).call()
    return draw_one(info.draw_seed, VERIFIER_TAG, info.draw_counter, Snapshot.of(accounts, weights))


def _call_block(chain: Chain) -> int:
    """The block number a simulated call sees: the pending block on the in-process EVM, the
    latest one on a JSON-RPC node (Hardhat simulates at the latest block), so a seed block is
    usable there one block later."""
    return chain.block_number() + (1 if chain.in_process else 0)


def _due(account: ChainAccount, contribution_id: int) -> str:
    """The call that moves the contribution's assignment on now ("" if none is due)."""
    chain = account.chain
    info = verification_info(chain, contribution_id)
    if info.phase is Phase.NONE:
        submit_block = contribution_info(chain, contribution_id).submit_block
        return "record" if _call_block(chain) > submit_block + 1 else ""
    if info.verdict is not Verdict.NONE:
        return ""
    now = chain.now()
    if info.awaits_reveal and info.phase in (Phase.ASSIGNED, Phase.QUEUED):
        # nothing to verify until the node reveals; past the deadline it fails
        return "unrevealed" if now > info.reveal_deadline else ""
    window = int(chain.settlement.functions.attestWindow().call())
    if info.phase is Phase.ASSIGNED:
        return "takeover" if now > info.attest_deadline else ""
    if info.phase is not Phase.QUEUED:
        return ""
    if info.draw_seed == bytes(32):  # a takeover's draw: from the block after the request
        return "assign" if _call_block(chain) > info.snapshot_block + 1 else ""
    if now > info.seed_recorded_at + window:
        return "takeover"  # queued for a whole attest window: a fresh snapshot and seed
    awaited = awaited_verifier(chain, info)
    free = int(chain.stakes.functions.freeStakeOf(awaited).call())
    lock = int(chain.stakes.functions.verifierLock().call())
    return "assign" if free >= lock else ""


def advance_assignment(
    account: ChainAccount, contribution_id: int, *, fail_expired: bool = False
) -> int:
    """Send the one call that is due for the contribution's seed and verifier, if any; returns
    how many transactions were sent (0 when nothing is due or another party was faster).

    With ``fail_expired`` an unrecorded contribution whose seed block can no longer be read is
    failed (``failUnrecorded``), and so is one whose node let its reveal deadline pass
    (``failUnrevealed``): anyone may; the node never does either to itself."""
    chain = account.chain
    action = _due(account, contribution_id)
    if not action or (action == "unrevealed" and not fail_expired):
        return 0
    before = verification_info(chain, contribution_id)
    try:
        if action == "record":
            account.record_seed(contribution_id)
        elif action == "assign":
            account.assign_verifier(contribution_id)
        elif action == "unrevealed":
            account.fail_unrevealed(contribution_id)
            log.warning(
                "contribution %s: sampled checkpoints never revealed, failed", contribution_id
            )
            return 1
        else:
            account.request_takeover(contribution_id)
    except ChainError as exc:
        if action == "record" and "SettlementSeedExpired" in str(exc):
            if not fail_expired:
                raise
            account.fail_unrecorded(contribution_id)
            log.warning("contribution %s: seed never recorded, failed", contribution_id)
            return 1
        now = verification_info(chain, contribution_id)
        if now == before:
            raise
        log.info("contribution %s moved on without us: %s", contribution_id, exc)
        return 0
    after = verification_info(chain, contribution_id)
    log.info(
        "contribution %s: %s -> %s (verifier %s)",
        contribution_id,
        action,
        after.phase.name,
        after.verifier,
    )
    return 1
