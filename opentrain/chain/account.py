"""One signer's view of the protocol: every contract's calls on one nonce manager and journal."""

from __future__ import annotations

from opentrain.chain.canaries import CanaryCalls
from opentrain.chain.disputes import DisputeCalls
from opentrain.chain.market import MarketCalls
from opentrain.chain.registry import RegistryCalls
from opentrain.chain.settlement import SettlementCalls


class ChainAccount(MarketCalls, SettlementCalls, DisputeCalls, RegistryCalls, CanaryCalls):
    """One signer's view of the protocol: every write is signed locally, nonces managed here."""
