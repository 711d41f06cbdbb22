"""The one write the service does: relay a sponsor's signed ``createJob`` transaction.

The sponsor signs with its own key; the service never holds one. Before relaying it checks
that the transaction is a ``createJob`` call to this deployment's JobMarket on this chain, that
the spec's digest (sha256 of its canonical JSON) is the ``specDigest`` inside the calldata and
that the ``specCid`` there is the CID of those bytes, and that the call would not revert. Then
it stores the spec in the content store (so nodes can fetch it by that CID) and relays.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account._utils.legacy_transactions import Transaction as LegacyTransaction
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from sqlalchemy.orm import Session
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    Web3Exception,
)

from marketplace_api import specs
from opentrain.chain.abi import artifact, decode_revert
from opentrain.chain.client import Deployment
from opentrain.content.builder import compute_cid
from opentrain.content.store import ContentStore
from opentrain.spec import SpecError, canonical_json, parse_spec


class BountyRejected(ValueError):
    """The bounty is malformed or inconsistent; the message says what (HTTP 422)."""


class RelayFailed(RuntimeError):
    """The chain could not be reached or refused the transaction (HTTP 502)."""


@dataclass(frozen=True)
class BountyReceipt:
    tx_hash: str
    sponsor: str
    spec_digest: str
    spec_cid: str


@dataclass
class BountyRelay:
    """What the write side needs: the chain, the deployment and the content store."""

    w3: Web3
    deployment: Deployment
    store: ContentStore

    def submit(self, session: Session, raw_hex: str, spec_doc: dict[str, Any]) -> BountyReceipt:
        try:
            spec = parse_spec(json.dumps(spec_doc))
        except SpecError as exc:
            raise BountyRejected(str(exc)) from None
        body = canonical_json(spec)
        digest = hashlib.sha256(body).digest()
        cid = compute_cid(body)
        raw = bytes(HexBytes(raw_hex))
        tx, sender = _decode_transaction(raw)
        if tx.get("chainId") != self.deployment.chain_id:
            raise BountyRejected(
                f"transaction is for chain {tx.get('chainId')}, this market is on chain "
                f"{self.deployment.chain_id}"
            )
        market = self.w3.eth.contract(
            address=Web3.to_checksum_address(self.deployment.JobMarket),
            abi=artifact("JobMarket")["abi"],
        )
        to = tx.get("to") or b""
        if not to or Web3.to_checksum_address(to) != market.address:
            raise BountyRejected(f"transaction is not sent to the JobMarket at {market.address}")
        try:
            function, args = market.decode_function_input(bytes(HexBytes(tx["data"])))
        except ValueError:
            raise BountyRejected("transaction data is not a JobMarket call") from None
        if function.fn_name != "createJob":
            raise BountyRejected(f"transaction calls {function.fn_name}, not createJob")
        params = args["params"]
        committed = bytes(params[0] if isinstance(params, tuple | list) else params["specDigest"])
        if committed != digest:
            raise BountyRejected(
                f"spec digest mismatch: the transaction commits to 0x{committed.hex()}, the "
                f"spec's sha256 is 0x{digest.hex()}"
            )
        if args["specCid"] != cid:
            raise BountyRejected(
                f"spec CID mismatch: the transaction names {args['specCid']}, the spec's CID "
                f"is {cid}"
            )
        self._check_gas_money(sender, tx)
        self._simulate(sender, tx)
        stored = self.store.put_bytes(body)
        if stored != cid:  # the store and compute_cid must agree; never relay otherwise
            raise RelayFailed(f"content store returned {stored} for a spec whose CID is {cid}")
        specs.remember(session, spec, cid)
        session.commit()
        try:
            tx_hash = self.w3.eth.send_raw_transaction(raw)
        except (Web3Exception, ValueError) as exc:
            raise RelayFailed(f"chain refused the transaction: {_first_line(exc)}") from None
        except OSError as exc:
            raise RelayFailed(f"chain unreachable: {type(exc).__name__}") from None
        return BountyReceipt(
            tx_hash="0x" + bytes(tx_hash).hex(),
            sponsor=sender,
            spec_digest="0x" + digest.hex(),
            spec_cid=cid,
        )

    def _check_gas_money(self, sender: str, tx: dict[str, Any]) -> None:
        price = int(tx.get("maxFeePerGas") or tx.get("gasPrice") or 0)
        needed = int(tx.get("gas", 0)) * price + int(tx.get("value", 0))
        try:
            balance = int(self.w3.eth.get_balance(Web3.to_checksum_address(sender)))
        except (Web3Exception, OSError) as exc:
            raise RelayFailed(f"chain unreachable: {type(exc).__name__}") from None
        if balance < needed:
            raise BountyRejected(
                f"sender {sender} cannot pay for the transaction: balance {balance} wei, "
                f"needs up to {needed}"
            )

    def _simulate(self, sender: str, tx: dict[str, Any]) -> None:
        """Refuse a transaction that would revert (missing approval, bad parameters)."""
        call: dict[str, Any] = {
            "from": sender,
            "to": Web3.to_checksum_address(tx["to"]),
            "data": "0x" + bytes(HexBytes(tx["data"])).hex(),
            "value": int(tx.get("value", 0)),
        }
        try:
            self.w3.eth.call(call, "pending")  # type: ignore[arg-type]
        except ContractCustomError as exc:
            data = exc.data if isinstance(exc.data, str | bytes) else b""
            raise BountyRejected(f"createJob would revert: {decode_revert(data)}") from None
        except (ContractLogicError, ContractPanicError) as exc:
            raise BountyRejected(f"createJob would revert: {_first_line(exc)}") from None
        except Exception as exc:  # the in-process EVM raises its own TransactionFailed
            if type(exc).__name__ == "TransactionFailed":
                reason = decode_revert(_tester_revert_data(exc))
                raise BountyRejected(f"createJob would revert: {reason}") from None
            raise RelayFailed(f"cannot simulate the transaction: {_first_line(exc)}") from None


def _decode_transaction(raw: bytes) -> tuple[dict[str, Any], str]:
    """(fields, signer) of a signed raw transaction, typed (EIP-2718) or legacy."""
    if not raw:
        raise BountyRejected("empty transaction")
    try:
        if raw[0] <= 0x7F:
            fields = dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
        else:
            fields = dict(LegacyTransaction.from_bytes(raw).as_dict())
            v = int(fields["v"])
            fields["chainId"] = (v - 35) // 2 if v >= 35 else None  # pre-EIP-155: no chain id
        sender = str(Account.recover_transaction(raw))
    except Exception as exc:  # rlp and signature errors have no common base class
        raise BountyRejected(f"not a signed transaction: {type(exc).__name__}") from None
    return fields, sender


def _tester_revert_data(exc: Exception) -> bytes:
    """eth-tester gives revert data as bytes or as the text ``execution reverted: b'...'``."""
    arg = exc.args[0] if exc.args else b""
    if isinstance(arg, bytes):
        return arg
    text = str(arg).removeprefix("execution reverted: ")
    if text[:2] in ("b'", 'b"'):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return b""
        return value if isinstance(value, bytes) else b""
    return b""


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    return text.splitlines()[0][:300]
