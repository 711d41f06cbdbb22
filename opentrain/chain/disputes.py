"""Disputes calls: contests, challenges, committee draws, votes, rulings."""

from __future__ import annotations

from web3.logs import DISCARD
from web3.types import TxReceipt

from opentrain.chain.calls import ContractCalls
from opentrain.chain.types import LOSS_SCALE, Ruling


class DisputeCalls(ContractCalls):
    """Disputes calls of one signer."""

    # -- disputes -------------------------------------------------------------------------------

    def _opened(self, receipt: TxReceipt) -> int:
        events = self.chain.disputes.events.DisputeOpened().process_receipt(receipt, errors=DISCARD)
        return int(events[0]["args"]["disputeId"])

    def contest(self, contribution_id: int) -> int:
        """As the node, contest a fail with a bond; returns the dispute id."""
        fn = self.chain.disputes.functions.disputeContribution(contribution_id)
        return self._opened(self.send(fn, f"contest({contribution_id})"))

    def challenge(self, contribution_id: int) -> int:
        """As a third party, challenge a pass with a bond; returns the dispute id."""
        fn = self.chain.disputes.functions.disputeContribution(contribution_id)
        return self._opened(self.send(fn, f"challenge({contribution_id})"))

    def challenge_aggregate(
        self, job_id: int, round_: int, model_digest: bytes, model_cid: str, loss: float
    ) -> int:
        """Challenge a pending aggregate, naming the right one; returns the dispute id."""
        fn = self.chain.disputes.functions.challengeAggregate(
            job_id, round_, model_digest, model_cid, round(loss * LOSS_SCALE)
        )
        return self._opened(self.send(fn, f"challengeAggregate(job {job_id}, round {round_})"))

    def draw_committee(self, dispute_id: int) -> list[str]:
        """Draw a dispute's committee (anyone may), in any round; returns the members (empty
        on a seed reset)."""
        fn = self.chain.disputes.functions.drawCommittee(dispute_id)
        receipt = self.send(fn, f"drawCommittee({dispute_id})")
        events = self.chain.disputes.events.CommitteeDrawn().process_receipt(
            receipt, errors=DISCARD
        )
        return [str(m) for m in events[0]["args"]["members"]] if events else []

    def vote(self, dispute_id: int, valid: bool, report_cid: str) -> TxReceipt:
        """As a committee member: ``valid`` means the work (or the aggregate) is right."""
        fn = self.chain.disputes.functions.vote(dispute_id, valid, report_cid)
        return self.send(fn, f"vote({dispute_id})")

    def resolve_dispute(self, dispute_id: int) -> Ruling:
        """Settle a dispute after its vote window (anyone may); returns the ruling, or
        ``Ruling.NONE`` when too few votes escalated it to a larger committee instead."""
        fn = self.chain.disputes.functions.resolve(dispute_id)
        receipt = self.send(fn, f"resolve({dispute_id})")
        events = self.chain.disputes.events.DisputeResolved().process_receipt(
            receipt, errors=DISCARD
        )
        return Ruling(int(events[0]["args"]["ruling"])) if events else Ruling.NONE
