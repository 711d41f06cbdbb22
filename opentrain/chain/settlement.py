"""Settlement calls: seeds, attestations, takeovers, finalization."""

from __future__ import annotations

from web3.types import TxReceipt

from opentrain.chain.calls import ContractCalls


class SettlementCalls(ContractCalls):
    """Settlement calls of one signer."""

    # -- settlement ---------------------------------------------------------------------------

    def record_seed(self, contribution_id: int) -> TxReceipt:
        fn = self.chain.settlement.functions.recordSeed(contribution_id)
        return self.send(fn, f"recordSeed({contribution_id})")

    def attest(self, contribution_id: int, passed: bool, report_cid: str) -> TxReceipt:
        fn = self.chain.settlement.functions.attest(contribution_id, passed, report_cid)
        return self.send(fn, f"attest({contribution_id})")

    def claim_attestation(self, contribution_id: int) -> TxReceipt:
        """Take over an assignment whose verifier missed its attest window (it gets slashed)."""
        fn = self.chain.settlement.functions.claimAttestation(contribution_id)
        return self.send(fn, f"claimAttestation({contribution_id})")

    def finalize(self, contribution_id: int) -> TxReceipt:
        fn = self.chain.settlement.functions.finalize(contribution_id)
        return self.send(fn, f"finalize({contribution_id})")
