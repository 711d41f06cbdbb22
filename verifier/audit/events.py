"""Every protocol event, read once per refresh in bounded eth_getLogs ranges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentrain.chain.client import Chain

# blocks per eth_getLogs call: within what public RPC providers accept in one request
LOG_RANGE = 10_000


@dataclass(frozen=True)
class Event:
    """One decoded protocol event."""

    contract: str
    name: str
    args: dict[str, Any]
    block: int
    tx: bytes
    log_index: int


class EventLog:
    """Every event the protocol contracts emitted since deployment, decoded here.

    One ``eth_getLogs`` over the four contract addresses per refresh (per ``LOG_RANGE`` blocks),
    extended incrementally as the chain grows: eth-tester (and many RPC providers) pay per call
    and per block scanned, so one scan decoded locally is far cheaper than one per event type.
    Readers that know the block of an event (the contracts record most) look it up there.
    """

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.events: list[Event] = []
        self._next_block = chain.deployment.block
        contracts = {
            "StakeRegistry": chain.stakes,
            "JobMarket": chain.market,
            "Settlement": chain.settlement,
            "Disputes": chain.disputes,
            "Canaries": chain.canaries,
        }
        self._addresses = [c.address for c in contracts.values()]
        self._decoders: dict[tuple[str, bytes], tuple[str, Any]] = {}
        for name, contract in contracts.items():
            for event_type in contract.all_events():
                event = event_type() if isinstance(event_type, type) else event_type
                topic = bytes.fromhex(str(event.topic).removeprefix("0x"))
                self._decoders[(str(contract.address).lower(), topic)] = (name, event)

    def refresh(self) -> None:
        head = self.chain.block_number()
        if head < self._next_block:
            return
        logs: list[Any] = []
        for first in range(self._next_block, head + 1, LOG_RANGE):
            last = min(first + LOG_RANGE - 1, head)
            logs += self.chain.w3.eth.get_logs(
                {"fromBlock": first, "toBlock": last, "address": self._addresses}
            )
        for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
            if not log["topics"]:
                continue
            found = self._decoders.get((str(log["address"]).lower(), bytes(log["topics"][0])))
            if found is None:
                continue
            contract, event = found
            data = event.process_log(log)
            self.events.append(
                Event(
                    contract,
                    str(data["event"]),
                    dict(data["args"]),
                    int(log["blockNumber"]),
                    bytes(log["transactionHash"]),
                    int(log["logIndex"]),
                )
            )
        self._next_block = head + 1

    def named(self, contract: str, name: str) -> list[Event]:
        """The events ``contract.name`` in chain order (call :meth:`refresh` first)."""
        return [e for e in self.events if e.contract == contract and e.name == name]
