"""Decoding the contracts' logs straight from their ABIs with eth-abi.

web3's ``ContractEvent.process_log`` does the same but costs several times more per log (it
rebuilds its decoders and formatters for every call); the indexer decodes every log the
contracts ever emitted, so it keeps one ``EventDecoder`` per event instead. Output is JSON-ready
and equal to web3's decoded arguments passed through ``jsonable``: addresses checksummed, bytes
as 0x-hex, structs as objects keyed by component name, integers exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from eth_utils.abi import collapse_if_tuple
from hexbytes import HexBytes


def hex0x(value: bytes | str) -> str:
    return "0x" + bytes(HexBytes(value)).hex()


def jsonable(value: Any) -> Any:
    """Decoded values as JSON: bytes as 0x-hex, structs as objects, ints kept exact."""
    if isinstance(value, bytes):
        return hex0x(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _shape(spec: Mapping[str, Any], value: Any) -> Any:
    """An eth-abi value in the ABI's shape: named structs, checksummed addresses, hex bytes."""
    kind: str = spec["type"]
    if kind.startswith("tuple"):
        if kind != "tuple":  # tuple[] / tuple[k]
            inner = {**spec, "type": kind[: kind.rindex("[")]}
            return [_shape(inner, v) for v in value]
        return {c["name"]: _shape(c, v) for c, v in zip(spec["components"], value, strict=True)}
    if kind.endswith("]"):
        inner = {**spec, "type": kind[: kind.rindex("[")]}
        return [_shape(inner, v) for v in value]
    if kind == "address":
        return str(to_checksum_address(value))
    if isinstance(value, bytes):
        return hex0x(value)
    return value


@dataclass(frozen=True)
class EventDecoder:
    """One event of one contract: its topic and how to turn a log into named arguments."""

    contract: str
    name: str
    topic: str
    indexed: tuple[Mapping[str, Any], ...]
    data: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_abi(cls, contract: str, abi: Mapping[str, Any]) -> EventDecoder:
        inputs = abi["inputs"]
        return cls(
            contract=contract,
            name=abi["name"],
            topic=hex0x(event_abi_to_log_topic(abi)),  # type: ignore[arg-type]
            indexed=tuple(i for i in inputs if i.get("indexed")),
            data=tuple(i for i in inputs if not i.get("indexed")),
        )

    def decode(self, topics: Sequence[bytes | str], data: bytes | str) -> dict[str, Any]:
        """Arguments by name, in ABI order of each group (indexed ones from the topics; an
        indexed dynamic value is only its keccak hash there, kept as hex)."""
        if len(topics) != len(self.indexed) + 1:
            raise ValueError(
                f"{self.name}: {len(topics) - 1} indexed topics, ABI has {len(self.indexed)}"
            )
        args: dict[str, Any] = {}
        for spec, topic in zip(self.indexed, topics[1:], strict=True):
            raw = bytes(HexBytes(topic))
            kind = collapse_if_tuple(dict(spec))
            dynamic = kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("(")
            args[spec["name"]] = hex0x(raw) if dynamic else _shape(spec, abi_decode([kind], raw)[0])
        values = abi_decode([collapse_if_tuple(dict(s)) for s in self.data], bytes(HexBytes(data)))
        for spec, value in zip(self.data, values, strict=True):
            args[spec["name"]] = _shape(spec, value)
        return args
