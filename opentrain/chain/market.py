"""JobMarket calls: jobs, slots, contributions, round aggregates, the guardian's pause."""

from __future__ import annotations

from web3.logs import DISCARD
from web3.types import TxReceipt

from opentrain.chain.registry import RegistryCalls
from opentrain.chain.types import LOSS_SCALE, JobParams


class MarketCalls(RegistryCalls):
    """JobMarket calls of one signer (escrow needs the token approval of RegistryCalls)."""

    # -- jobs and slots (JobMarket) -----------------------------------------------------------

    def create_job(self, params: JobParams, spec_cid: str, initial_model_cid: str) -> int:
        """Approve the escrow to JobMarket (it moves it into the StakeRegistry vault), create."""
        self.approve(self.chain.market.address, params.escrow)
        fn = self.chain.market.functions.createJob(params.as_tuple(), spec_cid, initial_model_cid)
        receipt = self.send(fn, "createJob")
        event = self.chain.market.events.JobCreated().process_receipt(receipt, errors=DISCARD)[0]
        return int(event["args"]["jobId"])

    def cancel_job(self, job_id: int) -> TxReceipt:
        """Stop new claims on the sponsor's job; in-flight work still settles."""
        return self.send(self.chain.market.functions.cancelJob(job_id), f"cancelJob({job_id})")

    def refund(self, job_id: int) -> TxReceipt:
        """Take back every escrowed token of a finished or cancelled job nothing can still earn."""
        return self.send(self.chain.market.functions.refund(job_id), f"refund(job {job_id})")

    def refundable(self, job_id: int) -> int:
        return int(self.chain.market.functions.refundable(job_id).call())

    def claim_slot(self, job_id: int, round_: int, slot: int) -> TxReceipt:
        fn = self.chain.market.functions.claimSlot(job_id, round_, slot)
        return self.send(fn, f"claimSlot(job {job_id}, round {round_}, slot {slot})")

    def expire_claim(self, job_id: int, round_: int, slot: int) -> TxReceipt:
        """Release a claim past its deadline (reopens the slot, unlocks the node's stake)."""
        fn = self.chain.market.functions.expireClaim(job_id, round_, slot)
        return self.send(fn, f"expireClaim(job {job_id}, round {round_}, slot {slot})")

    def submit_contribution(
        self,
        job_id: int,
        round_: int,
        slot: int,
        output_digest: bytes,
        trace_root: bytes,
        output_cid: str,
        manifest_cid: str,
    ) -> int:
        fn = self.chain.market.functions.submitContribution(
            job_id, round_, slot, output_digest, trace_root, output_cid, manifest_cid
        )
        receipt = self.send(fn, f"submitContribution(job {job_id}, slot {slot})")
        event = self.chain.market.events.ContributionSubmitted().process_receipt(
            receipt, errors=DISCARD
        )[0]
        return int(event["args"]["contributionId"])

    # -- aggregates ---------------------------------------------------------------------------

    def post_aggregate(
        self,
        job_id: int,
        round_: int,
        model_digest: bytes,
        model_cid: str,
        loss: float,
        *,
        wait_final: bool | None = None,
    ) -> TxReceipt:
        """Propose G_{round+1} (locks the dispute bond); returns the posting's receipt.

        The aggregate becomes the next round's model only after its challenge window. With
        ``wait_final`` (the default on a development chain, where nothing else mines blocks)
        this call sees it through: it waits out the window (advancing a dev chain's clock,
        polling elsewhere) and finalizes it; a dispute opened meanwhile raises ``ChainError``. Pass
        ``wait_final=False`` to return right after posting and call ``finalize_aggregate``
        later.
        """
        fn = self.chain.market.functions.postAggregate(
            job_id, round_, model_digest, model_cid, round(loss * LOSS_SCALE)
        )
        receipt = self.send(fn, f"postAggregate(job {job_id}, round {round_})")
        if self.chain.is_dev_chain if wait_final is None else wait_final:
            deadline = int(self.chain.market.functions.aggregateState(job_id, round_).call()[6])
            self.chain.advance_to(deadline + 1)
            self.finalize_aggregate(job_id, round_)
        return receipt

    def finalize_aggregate(self, job_id: int, round_: int) -> TxReceipt:
        """Make a pending aggregate final after its window: the job moves to the next round."""
        fn = self.chain.market.functions.finalizeAggregate(job_id, round_)
        return self.send(fn, f"finalizeAggregate(job {job_id}, round {round_})")

    # -- guardian -----------------------------------------------------------------------------

    def pause_market(self) -> TxReceipt:
        return self.send(self.chain.market.functions.pause(), "pause")

    def unpause_market(self) -> TxReceipt:
        return self.send(self.chain.market.functions.unpause(), "unpause")
