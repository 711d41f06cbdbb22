"""A verifier's duties beyond its own attestations: sit on committees (re-execute what is
disputed and vote), and check aggregates other parties post, challenging a wrong one with the
aggregate it computes itself.

Every vote is backed by a JSON report in the content store (what was recomputed), its CID on
chain with the vote, so auditors can hold committee members to the same standard as verifiers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from opentrain.chain.account import ChainAccount
from opentrain.chain.types import AggregateStatus, DisputeKind, DisputeStatus
from opentrain.chain.views import DisputeInfo, aggregate_info
from opentrain.content.errors import ContentUnavailable
from opentrain.content.store import ContentStore
from opentrain.protocol.assignment import out_of_patience
from opentrain.protocol.disputes import advance_dispute, has_voted
from opentrain.training.checkpoint import digest
from verifier.worker import RoundAggregator, VerifierWorker

__all__ = ["AggregateWatch", "CommitteeDuty"]

log = logging.getLogger("opentrain.verifier")


def _put_json(store: ContentStore, doc: dict[str, Any]) -> str:
    return store.put_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


class CommitteeDuty:
    """Moves disputes along and votes where this verifier was drawn."""

    def __init__(
        self,
        account: ChainAccount,
        store: ContentStore,
        worker: VerifierWorker,
        aggregator: RoundAggregator,
    ) -> None:
        self.account = account
        self.store = store
        self.worker = worker
        self.aggregator = aggregator
        self.vote_window: int | None = None  # read from the chain when first needed

    def is_member(self, info: DisputeInfo) -> bool:
        me = self.account.address.lower()
        return any(m.lower() == me for m in info.members)

    def advance(self, dispute_id: int) -> tuple[int, DisputeInfo]:
        """Draw, vote or resolve as due; returns the number of transactions sent and the
        dispute as it stood after drawing or resolving."""
        actions, info = advance_dispute(self.account, dispute_id)
        chain = self.account.chain
        if (
            info.status is DisputeStatus.VOTING
            and chain.now() <= info.vote_deadline  # the time our vote lands at
            and self.is_member(info)
            and not has_voted(chain, dispute_id, self.account.address)
        ):
            give_up = out_of_patience(chain.now(), info.vote_deadline, self._vote_window())
            try:
                valid, report_cid = self.judge(info, give_up)
            except ContentUnavailable as exc:
                log.warning("dispute %s: content unavailable, retrying: %s", dispute_id, exc)
                return actions, info
            self.account.vote(dispute_id, valid, report_cid)
            log.info("dispute %s: voted %s", dispute_id, "valid" if valid else "invalid")
            actions += 1
        return actions, info

    def _vote_window(self) -> int:
        if self.vote_window is None:
            # immutable in Disputes: one call for the duty's life
            self.vote_window = int(self.account.chain.disputes.functions.voteWindow().call())
        return self.vote_window

    def judge(self, info: DisputeInfo, fail_unavailable: bool = False) -> tuple[bool, str]:
        """Re-execute what the dispute is about; returns (valid, CID of the report). A
        contribution whose content cannot be obtained raises ``ContentUnavailable`` unless
        ``fail_unavailable`` (then it is judged invalid, as withheld)."""
        if info.kind is DisputeKind.AGGREGATE:
            return self._judge_aggregate(info)
        report = self.worker.verify(info.contribution_id, fail_unavailable=fail_unavailable)
        return report.passed, _put_json(
            self.store, {**report.to_dict(), "dispute_id": info.dispute_id}
        )

    def _judge_aggregate(self, info: DisputeInfo) -> tuple[bool, str]:
        model, cid, loss = self.aggregator.compute(info.job_id, info.round)
        posted = aggregate_info(self.account.chain, info.job_id, info.round)
        ours = digest(model)
        valid = ours == posted.model_digest
        doc = {
            "version": 1,
            "dispute_id": info.dispute_id,
            "job_id": info.job_id,
            "round": info.round,
            "posted_digest": "0x" + posted.model_digest.hex(),
            "recomputed_digest": "0x" + ours.hex(),
            "recomputed_cid": cid,
            "recomputed_loss": loss,
            "valid": valid,
        }
        return valid, _put_json(self.store, doc)


class AggregateWatch:
    """Recomputes aggregates posted by others inside their window and challenges wrong ones."""

    def __init__(self, account: ChainAccount, aggregator: RoundAggregator) -> None:
        self.account = account
        self.aggregator = aggregator
        self.checked: set[tuple[int, int, bytes]] = set()

    def check(self, job_id: int, round_: int) -> int:
        """Returns 1 when a challenge was sent."""
        chain = self.account.chain
        posted = aggregate_info(chain, job_id, round_)
        key = (job_id, round_, posted.model_digest)
        if (
            posted.status is not AggregateStatus.PENDING
            or posted.poster.lower() == self.account.address.lower()
            or chain.now() > posted.challenge_deadline
            or key in self.checked
        ):
            return 0
        job, model = self.aggregator.model(job_id, round_)
        self.checked.add(key)
        ours = digest(model)
        if ours == posted.model_digest:
            return 0  # right: nothing to store or evaluate
        cid, loss = self.aggregator.publish(job, model)
        dispute_id = self.account.challenge_aggregate(job_id, round_, ours, cid, loss)
        log.warning(
            "job %s round %s: posted aggregate %s is wrong, challenged (dispute %s) with %s",
            job_id,
            round_,
            posted.model_digest.hex()[:12],
            dispute_id,
            cid,
        )
        return 1
