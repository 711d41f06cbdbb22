"""Canary calls (contracts/CANARIES.md): the authority's reveals, and the pool."""

from __future__ import annotations

from web3.types import TxReceipt

from opentrain.chain.calls import ContractCalls


class CanaryCalls(ContractCalls):
    """Canaries calls of one signer (``reveal`` needs its CANARY_ROLE)."""

    def reveal_canary(
        self, contribution_id: int, checkpoints_root: bytes, secret: bytes, faults: list[int]
    ) -> TxReceipt:
        """Open an attested canary's seal: settle it and pay or slash its verifier."""
        fn = self.chain.canaries.functions.reveal(contribution_id, checkpoints_root, secret, faults)
        return self.send(fn, f"revealCanary({contribution_id})")

    def fund_canary_pool(self, amount: int) -> TxReceipt:
        """Move ``amount`` token units into the canary pool (approved first)."""
        chain = self.chain
        self.send(
            chain.token.functions.approve(chain.canaries.address, amount), "approve(Canaries)"
        )
        return self.send(chain.canaries.functions.fund(amount), f"fundCanaryPool({amount})")
