"""The node's after-care for work it submitted or claimed: contest a fail that re-execution
does not support, see its disputes through (draw the committee, resolve) and release its own
claims that expired (their stake lock) instead of leaving them locked until someone takes over.

Before contesting, the node re-checks its contribution exactly as a verifier would
(:func:`opentrain.contribution_check.check_contribution`, the same shared code and the same
sampled segments): a contest costs a bond, so it only contests what the committee will uphold.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from opentrain.chain import (
    ChainAccount,
    ContributionStatus,
    JobStatus,
    Phase,
    SlotStatus,
    Verdict,
    contribution_info,
    dispute_info,
    verification_info,
)
from opentrain.contribution_check import check_contribution
from opentrain.disputes import advance_dispute
from opentrain.store import ContentStore

__all__ = ["Aftercare"]

log = logging.getLogger("opentrain.node")


class Aftercare:
    """Tracks this node's submissions and disputes from chain events (a cursor on disk)."""

    def __init__(self, account: ChainAccount, store: ContentStore, state_file: Path) -> None:
        self.account = account
        self.store = store
        self.state_file = state_file
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        self.next_block = int(state.get("next_block", account.chain.deployment.block))
        self.submitted: set[int] = set(state.get("submitted", []))
        self.disputes: set[int] = set(state.get("disputes", []))
        self.upheld: set[int] = set(state.get("upheld", []))  # fails re-execution confirmed

    def _save(self) -> None:
        doc = {
            "next_block": self.next_block,
            "submitted": sorted(self.submitted),
            "disputes": sorted(self.disputes),
            "upheld": sorted(self.upheld),
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.state_file)

    def scan(self) -> None:
        chain = self.account.chain
        head = chain.block_number()
        if self.next_block > head:
            return
        me = self.account.address
        window = {"from_block": self.next_block, "to_block": head}
        subs = chain.market.events.ContributionSubmitted.get_logs(
            **window, argument_filters={"node": me}
        )
        self.submitted.update(int(e["args"]["contributionId"]) for e in subs)
        opened = chain.disputes.events.DisputeOpened.get_logs(**window)
        self.disputes.update(
            int(e["args"]["disputeId"])
            for e in opened
            if str(e["args"]["disputer"]).lower() == me.lower()
        )
        self.next_block = head + 1
        self._save()

    def step(self) -> int:
        """One pass; returns the number of transactions sent."""
        self.scan()
        actions = self.expire_dead_claims()
        for contribution_id in sorted(self.submitted):
            actions += self._answer(contribution_id)
        for dispute_id in sorted(self.disputes):
            actions += advance_dispute(self.account, dispute_id)
            if dispute_info(self.account.chain, dispute_id).ruling:
                self.disputes.discard(dispute_id)
        self._save()
        return actions

    def _answer(self, contribution_id: int) -> int:
        """Contest a fail this node's own re-execution does not support."""
        chain = self.account.chain
        info = verification_info(chain, contribution_id)
        if contribution_info(chain, contribution_id).status is not ContributionStatus.SUBMITTED:
            self.submitted.discard(contribution_id)
            return 0
        if (
            info.verdict is not Verdict.FAIL
            or info.phase is not Phase.ASSIGNED
            or chain.block_number() >= info.challenge_deadline  # our contest lands next block
            or contribution_id in self.upheld
        ):
            return 0
        report = check_contribution(chain, self.store, contribution_id)
        if not report.passed:
            log.warning(
                "contribution %s failed and re-execution agrees: %s", contribution_id, report.reason
            )
            self.upheld.add(contribution_id)
            return 0
        dispute_id = self.account.contest(contribution_id)
        self.disputes.add(dispute_id)
        log.warning(
            "contribution %s was failed but re-executes correctly: contested (dispute %s)",
            contribution_id,
            dispute_id,
        )
        return 1

    def expire_dead_claims(self) -> int:
        """Release this node's claims whose deadline passed (their stake lock comes back)."""
        chain = self.account.chain
        market = chain.market.functions
        me = self.account.address.lower()
        block = chain.block_number()
        sent = 0
        for job_id in range(1, int(market.jobCount().call()) + 1):
            _, status, round_, *_ = market.jobState(job_id).call()
            if status not in (JobStatus.OPEN, JobStatus.CANCELLED):
                continue
            for slot in range(int(market.jobParams(job_id).call()[3])):
                node, deadline, slot_status, _ = market.slotState(job_id, round_, slot).call()
                if node.lower() == me and slot_status == SlotStatus.CLAIMED and block > deadline:
                    self.account.expire_claim(job_id, round_, slot)
                    log.info(
                        "released expired claim: job %s round %s slot %s", job_id, round_, slot
                    )
                    sent += 1
        return sent
