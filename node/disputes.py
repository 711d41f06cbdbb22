"""The node's after-care for work it submitted or claimed: record its own seeds right after
the seed block (an unrecorded seed fails the contribution), get its contributions a verifier
(serve a queued draw, request a takeover of a missed window), contest a fail that re-execution
does not support within the challenge window, see its disputes through (draw the committee,
again after an escalation; resolve) and release its own claims that expired (their stake lock)
instead of leaving them locked until someone takes over. Once a contribution is settled for
good (final, dispute window closed) it also prunes that slot's local checkpoints
(``node.retention``), unless told to keep them. :class:`VerdictWatcher` runs all of it in a
background thread while the node trains.

Before contesting, the node re-checks its contribution exactly as a verifier would
(:func:`opentrain.protocol.contribution.check_contribution`, the same shared code and the same
sampled segments): a contest costs a bond, so it only contests what the committee will uphold.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from types import TracebackType

from node.retention import contribution_settled, prune_slot, slot_folder
from node.reveal import reveal_if_due
from opentrain.chain.account import ChainAccount
from opentrain.chain.types import ChainError, ContributionStatus, Phase, SlotStatus, Verdict
from opentrain.chain.views import contribution_info, verification_info
from opentrain.content.errors import ContentError
from opentrain.content.store import ContentStore, write_atomically
from opentrain.protocol.assignment import advance_assignment
from opentrain.protocol.contribution import check_contribution
from opentrain.protocol.disputes import advance_dispute
from opentrain.protocol.jobs import JobError

__all__ = ["Aftercare", "VerdictWatcher"]

log = logging.getLogger("opentrain.node")


class Aftercare:
    """Tracks this node's submissions and disputes from chain events (a cursor on disk)."""

    def __init__(
        self,
        account: ChainAccount,
        store: ContentStore,
        state_file: Path,
        checkpoints: Path | None = None,
        workdir: Path | None = None,
    ) -> None:
        """``checkpoints``: the workdir holding this node's slot folders, pruned once their
        contribution is settled; None keeps them (``node run --keep-checkpoints``).
        ``workdir``: where the slot folders are, for revealing sampled checkpoints (default
        ``checkpoints``)."""
        self.account = account
        self.store = store
        self.state_file = state_file
        self.checkpoints = checkpoints
        self.workdir = workdir or checkpoints
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        self.next_block = int(state.get("next_block", account.chain.deployment.block))
        self.submitted: set[int] = set(state.get("submitted", []))
        # submitted contributions whose slot folder has not been pruned yet
        self.retained: set[int] = set(state.get("retained", []))
        self.pruned_bytes = 0
        self.disputes: set[int] = set(state.get("disputes", []))
        self.upheld: set[int] = set(state.get("upheld", []))  # fails re-execution confirmed
        # (job, round, slot, deadline) of this node's claims, from its SlotClaimed events
        self.claims: set[tuple[int, int, int, int]] = {
            (int(j), int(r), int(sl), int(d)) for j, r, sl, d in state.get("claims", [])
        }
        self._lock = threading.RLock()  # the watcher thread and the trainer share this

    def _save(self) -> None:
        doc = {
            "next_block": self.next_block,
            "submitted": sorted(self.submitted),
            "disputes": sorted(self.disputes),
            "upheld": sorted(self.upheld),
            "retained": sorted(self.retained),
            "claims": sorted(self.claims),
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.state_file, [json.dumps(doc).encode()])

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
        self.retained.update(int(e["args"]["contributionId"]) for e in subs)
        claimed = chain.market.events.SlotClaimed.get_logs(**window, argument_filters={"node": me})
        self.claims.update(
            (int(a["jobId"]), int(a["round"]), int(a["slot"]), int(a["deadline"]))
            for a in (e["args"] for e in claimed)
        )
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
        with self._lock:
            self.scan()
            actions = self.expire_dead_claims()
            for contribution_id in sorted(self.submitted):
                actions += self._answer(contribution_id)
            for dispute_id in sorted(self.disputes):
                sent, dispute = advance_dispute(self.account, dispute_id)
                actions += sent
                if dispute.ruling:
                    self.disputes.discard(dispute_id)
            self.prune_settled()
            self._save()
            return actions

    def record_own_seed(self, contribution_id: int) -> bool:
        """Right after a submission: wait for the seed block (mined at once on a dev chain) and
        record the seed, which also draws the verifier. Nobody else may ever do it, and an
        unrecorded seed fails the contribution once its block hash is unreadable, so the node
        does not leave it to others. Returns False when it could not (the watcher retries)."""
        chain = self.account.chain
        with self._lock:
            self.submitted.add(contribution_id)
            submit_block = contribution_info(chain, contribution_id).submit_block
            # the seed block must exist (and, where calls run at the latest block, be mined on)
            chain.wait_for_block(submit_block + (1 if chain.in_process else 2))
            try:
                advance_assignment(self.account, contribution_id)
                if self.workdir is not None:  # availability on demand: reveal at once
                    reveal_if_due(self.account, self.store, self.workdir, contribution_id)
            except ChainError as exc:
                log.warning("contribution %s: seed not recorded yet: %s", contribution_id, exc)
                return False
            return verification_info(chain, contribution_id).phase is not Phase.NONE

    def prune_settled(self) -> int:
        """Remove the local checkpoints of every contribution settled for good (see
        ``retention.contribution_settled``); returns the bytes freed. A slot this node has
        claimed or submitted again (its contribution was rejected) is left alone: the folder
        is the new attempt's, pruned when that one settles. Without a checkpoint folder (keep
        mode) nothing is removed."""
        if self.checkpoints is None:
            return 0
        chain = self.account.chain
        me = self.account.address.lower()
        freed = 0
        for contribution_id in sorted(self.retained):
            if not contribution_settled(chain, contribution_id):
                continue
            c = contribution_info(chain, contribution_id)
            node, _, status, _ = chain.market.functions.slotState(c.job_id, c.round, c.slot).call()
            again = status in (SlotStatus.CLAIMED, SlotStatus.SUBMITTED)
            if not (node.lower() == me and again):  # else the folder is a newer attempt's
                folder = slot_folder(self.checkpoints, c.job_id, c.round, c.slot)
                gone = prune_slot(folder)
                freed += gone
                log.info(
                    "pruned checkpoints of contribution %s (job %s round %s slot %s): %.1f MiB",
                    contribution_id,
                    c.job_id,
                    c.round,
                    c.slot,
                    gone / 2**20,
                )
            self.retained.discard(contribution_id)
        self.pruned_bytes += freed
        return freed

    def _answer(self, contribution_id: int) -> int:
        """Get the contribution verified (seed, queue, takeover), then contest a fail this
        node's own re-execution does not support, within the challenge window."""
        chain = self.account.chain
        if contribution_info(chain, contribution_id).status is not ContributionStatus.SUBMITTED:
            self.submitted.discard(contribution_id)
            return 0
        sent = advance_assignment(self.account, contribution_id)
        if self.workdir is not None:
            sent += reveal_if_due(self.account, self.store, self.workdir, contribution_id)
        info = verification_info(chain, contribution_id)
        if (
            info.verdict is not Verdict.FAIL
            or info.phase is not Phase.ASSIGNED
            or chain.now() > info.challenge_deadline  # the time our contest lands at
            or contribution_id in self.upheld
        ):
            return sent
        report = check_contribution(chain, self.store, contribution_id)
        if not report.passed:
            log.warning(
                "contribution %s failed and re-execution agrees: %s", contribution_id, report.reason
            )
            self.upheld.add(contribution_id)
            return sent
        dispute_id = self.account.contest(contribution_id)
        self.disputes.add(dispute_id)
        log.warning(
            "contribution %s was failed but re-executes correctly: contested (dispute %s)",
            contribution_id,
            dispute_id,
        )
        return sent + 1

    def expire_dead_claims(self) -> int:
        """Release this node's claims whose deadline passed (their stake lock comes back).
        Only the claims its SlotClaimed events name are looked at; a claim is forgotten once
        its slot is no longer claimed by this node (submitted, expired, taken over)."""
        chain = self.account.chain
        me = self.account.address.lower()
        now = chain.now()  # claim deadlines are unix times
        sent = 0
        for claim in sorted(self.claims):
            job_id, round_, slot, deadline = claim
            if now <= deadline:
                continue
            node, _, status, _ = chain.market.functions.slotState(job_id, round_, slot).call()
            if node.lower() == me and status == SlotStatus.CLAIMED:
                self.account.expire_claim(job_id, round_, slot)
                log.info("released expired claim: job %s round %s slot %s", job_id, round_, slot)
                sent += 1
            self.claims.discard(claim)
        return sent


class VerdictWatcher:
    """Runs :meth:`Aftercare.step` every ``interval`` seconds in a daemon thread (use it as a
    context manager around training): verdicts, queues, takeovers and disputes get answered
    while a slot trains, not only between slots. A failing pass is logged and retried."""

    def __init__(self, aftercare: Aftercare, interval: float = 5.0) -> None:
        self.aftercare = aftercare
        self.interval = interval
        self.passes = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> VerdictWatcher:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="verdict-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> VerdictWatcher:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.aftercare.step()
            except (ChainError, ContentError, JobError) as exc:
                self.errors += 1
                log.warning("verdict watch pass failed, will retry: %s", str(exc).splitlines()[0])
            except Exception:  # never die silently: the node would stop answering fails
                self.errors += 1
                log.exception("verdict watch pass crashed, will retry")
            self.passes += 1
            self._stop.wait(self.interval)
