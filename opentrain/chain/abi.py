"""Contract artifacts (ABI + bytecode shipped in the package) and revert decoding into one line."""

from __future__ import annotations

import ast
import json
from functools import cache
from importlib import resources
from typing import Any

from eth_abi import decode as abi_decode
from eth_tester.exceptions import TransactionFailed
from eth_utils import function_signature_to_4byte_selector
from hexbytes import HexBytes
from web3.exceptions import ContractCustomError

from opentrain.chain.types import CONTRACT_NAMES

# -- artifacts and revert decoding ---------------------------------------------------------------


@cache
def artifact(name: str) -> dict[str, Any]:
    """ABI and bytecode of a contract, shipped inside the package (no Node.js needed)."""
    text = resources.files("opentrain.chain.artifacts").joinpath(f"{name}.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _abi_type(item: dict[str, Any]) -> str:
    """The canonical ABI type of an input, tuples spelled out (for selectors and decoding)."""
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@cache
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """selector -> (error name, argument types, argument names), over every contract's ABI."""
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in CONTRACT_NAMES:
        for item in artifact(name)["abi"]:
            if item["type"] != "error":
                continue
            types = [_abi_type(i) for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (item["name"], types, [i["name"] for i in item["inputs"]])
    return table


def decode_revert(data: str | bytes) -> str:
    """Turn revert data into ``ErrorName(arg=value, ...)``; unknown data stays hex."""
    raw = HexBytes(data)
    entry = _error_table().get(bytes(raw[:4]))
    if entry is None:
        return f"revert 0x{raw.hex()}" if raw else "reverted without a reason"
    name, types, names = entry
    values = abi_decode(types, bytes(raw[4:]))
    shown = ", ".join(f"{n}={_show(v)}" for n, v in zip(names, values, strict=True))
    return f"{name}({shown})"


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


def _tester_revert_data(arg: object) -> bytes:
    """eth-tester reports revert data as bytes or as the text ``execution reverted: b'...'``."""
    if isinstance(arg, bytes):
        return arg
    text = str(arg)
    prefix = "execution reverted: "
    if text.startswith(prefix + "b'") or text.startswith(prefix + 'b"'):
        value = ast.literal_eval(text[len(prefix) :])
        if isinstance(value, bytes):
            return value
    return b""


def explain_revert(exc: Exception) -> str:
    data = getattr(exc, "data", None)
    if isinstance(exc, ContractCustomError) and isinstance(data, str | bytes):
        return decode_revert(data)
    if isinstance(exc, TransactionFailed) and exc.args:
        return decode_revert(_tester_revert_data(exc.args[0]))
    message = getattr(exc, "message", None) or str(exc)
    return str(message).splitlines()[0]
