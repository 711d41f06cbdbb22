"""Settlement calls: seeds, verifier draws (queued and takeover), attestations, finalization."""

from __future__ import annotations

from web3.types import TxReceipt

from opentrain.chain.calls import ContractCalls


class SettlementCalls(ContractCalls):
    """Settlement calls of one signer."""

    # -- settlement ---------------------------------------------------------------------------

    def record_seed(self, contribution_id: int) -> TxReceipt:
        """Fix the sampling seed (from the block after the submission) and draw the verifier;
        a busy draw queues the contribution (``assign_verifier`` retries it)."""
        fn = self.chain.settlement.functions.recordSeed(contribution_id)
        return self.send(fn, f"recordSeed({contribution_id})")

    def assign_verifier(self, contribution_id: int) -> TxReceipt:
        """Continue a queued draw, or run a takeover's fresh draw (anyone may)."""
        fn = self.chain.settlement.functions.assignVerifier(contribution_id)
        return self.send(fn, f"assignVerifier({contribution_id})")

    def attest(
        self, contribution_id: int, passed: bool, report_cid: str, digests_hash: bytes
    ) -> TxReceipt:
        """Post the verdict with the report's CID and the hash of the recomputed digests
        (:func:`opentrain.protocol.sampling.recomputed_digests_hash`)."""
        fn = self.chain.settlement.functions.attest(
            contribution_id, passed, report_cid, digests_hash
        )
        return self.send(fn, f"attest({contribution_id})")

    def request_takeover(self, contribution_id: int) -> TxReceipt:
        """After a missed attest window (or a queue older than one): the missing verifier is
        slashed and a fresh verifier is drawn by ``assign_verifier`` from the next block."""
        fn = self.chain.settlement.functions.requestTakeover(contribution_id)
        return self.send(fn, f"requestTakeover({contribution_id})")

    def reveal(self, contribution_id: int) -> TxReceipt:
        """The node: the sampled checkpoints are published (availability on demand)."""
        fn = self.chain.settlement.functions.reveal(contribution_id)
        return self.send(fn, f"reveal({contribution_id})")

    def fail_unrevealed(self, contribution_id: int) -> TxReceipt:
        """Fail a contribution whose node did not reveal by the deadline (the node is slashed,
        the assigned verifier paid its fee)."""
        fn = self.chain.settlement.functions.failUnrevealed(contribution_id)
        return self.send(fn, f"failUnrevealed({contribution_id})")

    def fail_unrecorded(self, contribution_id: int) -> TxReceipt:
        """Fail a contribution whose seed block can no longer be read (the node is slashed)."""
        fn = self.chain.settlement.functions.failUnrecorded(contribution_id)
        return self.send(fn, f"failUnrecorded({contribution_id})")

    def finalize(self, contribution_id: int) -> TxReceipt:
        fn = self.chain.settlement.functions.finalize(contribution_id)
        return self.send(fn, f"finalize({contribution_id})")
