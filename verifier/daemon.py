"""The verifier's daemon: watch submissions and assignments (``VerifierAssigned``: first draws,
queued draws served later and takeovers), record seeds, serve queued draws and request takeovers
of missed windows (``opentrain.protocol.assignment``), verify what this verifier was drawn for,
attest with the hash of the recomputed digests, finalize what is due, aggregate rounds whose
slots are all accepted, check the aggregates others post (challenging a wrong one), and take
part in disputes: draw committees (again after an escalation), re-execute and vote where drawn,
resolve when the vote window has closed. Windows are seconds on the chain's clock.

Crash-safe: every decision is re-derived from the chain (is the seed recorded? did I attest?
is it finalized?), so a restart neither loses nor repeats an attestation; only the block cursor
is kept locally, and losing it costs a rescan, never a duplicate.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from opentrain.chain.account import ChainAccount
from opentrain.chain.tx import TRANSIENT, RpcUnavailable
from opentrain.chain.types import AggregateStatus, ChainError, DisputeStatus, Phase
from opentrain.chain.views import aggregate_info, verification_info
from opentrain.content.errors import ContentError, ContentUnavailable
from opentrain.content.store import ContentStore, write_atomically
from opentrain.protocol.assignment import advance_assignment, out_of_patience
from opentrain.protocol.contribution import ProgressFn
from opentrain.protocol.jobs import JobError
from verifier.disputes import AggregateWatch, CommitteeDuty
from verifier.worker import RoundAggregator, VerifierWorker

log = logging.getLogger("opentrain.verifier")

CONTRIBUTION_SUBMITTED = 1
JOB_OPEN = 1
SLOT_ACCEPTED = 3
VERDICT_NONE = 0


class VerifierDaemon:
    """Drives :class:`VerifierWorker` and :class:`RoundAggregator` from chain events."""

    def __init__(
        self,
        account: ChainAccount,
        store: ContentStore,
        state_file: Path,
        aggregate: bool = True,
        progress: ProgressFn | None = None,
    ) -> None:
        self.account = account
        self.progress = progress
        self.worker = VerifierWorker(account, store)
        self.aggregator = RoundAggregator(account, store)
        self.committee = CommitteeDuty(account, store, self.worker, self.aggregator)
        self.aggregate_watch = AggregateWatch(account, self.aggregator)
        self.state_file = state_file
        self.aggregate = aggregate
        state = self._load_state()
        self.open: set[int] = set(_ids(state.get("open")))
        self._next_block = int(state.get("next_block", account.chain.deployment.block))  # type: ignore[arg-type]
        self.disputes: set[int] = set(_ids(state.get("disputes")))
        self.attest_window: int | None = None  # read from the chain when first needed

    def _load_state(self) -> dict[str, list[int] | int]:
        if self.state_file.exists():
            data: dict[str, list[int] | int] = json.loads(self.state_file.read_text())
            return data
        return {}

    def _save_state(self, next_block: int) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "next_block": next_block,
            "open": sorted(self.open),
            "disputes": sorted(self.disputes),
        }
        write_atomically(self.state_file, [json.dumps(doc).encode()])

    def scan(self) -> None:
        """Pick up contributions submitted since the last scan."""
        chain = self.account.chain
        state = self._load_state()
        start = int(state.get("next_block", chain.deployment.block))  # type: ignore[arg-type]
        head = chain.block_number()
        if start > head:
            return
        logs = chain.market.events.ContributionSubmitted.get_logs(from_block=start, to_block=head)
        self.open.update(int(entry["args"]["contributionId"]) for entry in logs)
        mine = chain.settlement.events.VerifierAssigned.get_logs(
            from_block=start, to_block=head, argument_filters={"verifier": self.account.address}
        )
        self.open.update(int(entry["args"]["contributionId"]) for entry in mine)
        opened = chain.disputes.events.DisputeOpened.get_logs(from_block=start, to_block=head)
        self.disputes.update(int(entry["args"]["disputeId"]) for entry in opened)
        self._next_block = head + 1
        self._save_state(self._next_block)

    def step(self) -> int:
        """One pass over the open contributions and jobs; returns how many actions were taken."""
        self.scan()
        actions = 0
        for contribution_id in sorted(self.open):
            actions += self._advance(contribution_id)
        for dispute_id in sorted(self.disputes):
            sent, dispute = self.committee.advance(dispute_id)
            actions += sent
            if dispute.status is DisputeStatus.RESOLVED:
                self.disputes.discard(dispute_id)
        if self.aggregate:
            actions += self._aggregate_ready_rounds()
        # the cursor stays where the scan stopped: blocks mined while this pass worked (other
        # processes submit meanwhile) are scanned next pass, never skipped
        self._save_state(self._next_block)
        return actions

    def _advance(self, contribution_id: int) -> int:
        chain = self.account.chain
        record = chain.market.functions.getContribution(contribution_id).call()
        if record[6] != CONTRIBUTION_SUBMITTED:
            self.open.discard(contribution_id)
            return 0
        actions = advance_assignment(self.account, contribution_id, fail_expired=True)
        info = verification_info(chain, contribution_id)
        if info.verdict == VERDICT_NONE:
            if (
                info.phase is not Phase.ASSIGNED
                or info.awaits_reveal  # availability on demand: the checkpoints come first
                or not self.worker.is_assigned(contribution_id)
                or chain.now() > info.attest_deadline
            ):
                return actions
            give_up = out_of_patience(chain.now(), info.attest_deadline, self._attest_window())
            try:
                report = self.worker.verify_and_attest(contribution_id, self.progress, give_up)
            except ContentUnavailable as exc:
                log.warning(
                    "contribution %s: content unavailable, retrying: %s",
                    contribution_id,
                    str(exc).splitlines()[0],
                )
                return actions
            log.info("contribution %s: %s (%s)", contribution_id, report.passed, report.reason)
            return actions + 1
        if info.finalized:
            self.open.discard(contribution_id)
            return actions
        if info.phase is Phase.DISPUTED:
            return actions  # the committee settles it
        if chain.now() > info.challenge_deadline:
            try:
                self.account.finalize(contribution_id)
            except ChainError as exc:  # someone else was faster, or a dispute is open
                log.info("contribution %s not finalized: %s", contribution_id, exc)
                return actions
            self.open.discard(contribution_id)
            return actions + 1
        return actions

    def _attest_window(self) -> int:
        if self.attest_window is None:
            # immutable in Settlement: one call for the daemon's life
            self.attest_window = int(self.account.chain.settlement.functions.attestWindow().call())
        return self.attest_window

    def _aggregate_ready_rounds(self) -> int:
        chain = self.account.chain
        actions = 0
        for job_id in range(1, int(chain.market.functions.jobCount().call()) + 1):
            _, status, round_, *_ = chain.market.functions.jobState(job_id).call()
            if status != JOB_OPEN:
                continue
            slots = chain.market.functions.jobParams(job_id).call()[3]
            states = [
                chain.market.functions.slotState(job_id, round_, s).call()[2] for s in range(slots)
            ]
            if not all(s == SLOT_ACCEPTED for s in states):
                continue
            actions += self._advance_aggregate(job_id, round_)
        return actions

    def _advance_aggregate(self, job_id: int, round_: int) -> int:
        """Post G_{r+1} if nobody has; finalize a pending one whose window has closed."""
        chain = self.account.chain
        agg = aggregate_info(chain, job_id, round_)
        if agg.status == AggregateStatus.NONE:
            cid, loss = self.aggregator.aggregate_and_post(job_id, round_, wait_final=False)
            log.info("job %s round %s aggregate posted: %s, loss %.4f", job_id, round_, cid, loss)
            return 1
        if agg.status != AggregateStatus.PENDING:
            return 0  # final, or under dispute (committee duty handles that)
        if chain.now() > agg.challenge_deadline:
            self.account.finalize_aggregate(job_id, round_)
            return 1
        return self.aggregate_watch.check(job_id, round_)

    def run(
        self, poll_seconds: float = 5.0, should_stop: Callable[[], bool] = lambda: False
    ) -> None:
        """Step until ``should_stop``; an unreachable RPC or store, or a reverted transaction,
        is logged and retried on the next pass (every decision is re-derived from the chain)."""
        while not should_stop():
            try:
                acted = self.step()
            except (ChainError, ContentError, JobError, RpcUnavailable, *TRANSIENT) as exc:
                log.warning("pass failed, will retry: %s", str(exc).splitlines()[0])
                acted = 0
            if acted == 0:
                time.sleep(poll_seconds)


def _ids(value: object) -> list[int]:
    return [int(v) for v in value] if isinstance(value, list) else []
