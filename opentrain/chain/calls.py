"""The base of every contract wrapper: simulate, sign locally, journal, send, wait,
decode reverts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    Web3RPCError,
)
from web3.types import TxReceipt

from opentrain.chain.abi import artifact, decode_revert, explain_revert
from opentrain.chain.tx import RpcUnavailable, TxSender, with_backoff
from opentrain.chain.types import IN_PROCESS_GAS, ChainError

if TYPE_CHECKING:  # the client builds accounts: a runtime import would be a cycle
    from opentrain.chain.client import Chain


class ContractCalls:
    """One signer's view of the protocol: every write is signed locally, nonces managed here."""

    def __init__(
        self, chain: Chain, signer: LocalAccount, journal: Path | None = None, attempts: int = 8
    ) -> None:
        self.chain = chain
        self.signer = signer
        self.address: str = signer.address
        # one nonce manager and journal per signer: no transaction lost or sent twice
        self.sender = TxSender(chain.w3, signer, journal, attempts=attempts)
        self._retry = with_backoff(attempts)

    def __repr__(self) -> str:  # never shows the key
        return f"ChainAccount({self.address})"

    # -- transactions ---------------------------------------------------------------------

    def send(self, fn: ContractFunction | ContractConstructor, what: str) -> TxReceipt:
        """Simulate (which surfaces reverts with their reason), sign, journal, send, wait, check.

        An unreachable RPC is retried with backoff; the signed bytes are journaled before they
        are broadcast, so a retry or a restart re-sends the same transaction, never a new one."""
        with self.chain._lock:
            try:
                tx = self._retry(self._build)(fn)
            except (
                ContractCustomError,
                ContractPanicError,
                ContractLogicError,
                TransactionFailed,
            ) as exc:
                raise ChainError(f"{what} refused: {explain_revert(exc)}") from None
            except RpcUnavailable as exc:
                raise ChainError(f"{what}: {exc}") from None
            try:
                receipt = self.sender.sign_and_send(tx, what)
            except RpcUnavailable as exc:
                raise ChainError(f"{what}: {exc}") from None
            except Web3RPCError as exc:
                # an automining node (Hardhat) runs the transaction on receipt: state that
                # changed since the simulation (another node claimed the slot) reverts it here
                raise ChainError(f"{what} refused: {_rpc_revert(exc)}") from None
        if receipt["status"] != 1:
            raise ChainError(f"{what} reverted in block {receipt['blockNumber']}")
        return receipt

    def _build(self, fn: ContractFunction | ContractConstructor) -> dict[str, Any]:
        if isinstance(fn, ContractFunction):  # constructors cannot be called
            fn.call({"from": self.address}, block_identifier="pending")
        base: dict[str, Any] = {"from": self.address, "nonce": self.sender.next_nonce()}
        if self.chain.in_process:
            base["gas"] = IN_PROCESS_GAS  # estimation re-executes many times on py-evm
        return dict(fn.build_transaction(base))  # type: ignore[arg-type]

    def deploy(self, name: str, *args: Any) -> str:
        data = artifact(name)
        factory = self.chain.w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
        receipt = self.send(factory.constructor(*args), f"deploy {name}")
        return str(receipt["contractAddress"])


def _rpc_revert(exc: Exception) -> str:
    """The decoded revert of a JSON-RPC error (``{'code': 3, 'data': '0x…'}``), else its text."""
    for source in (getattr(exc, "rpc_response", None), *exc.args):
        if isinstance(source, dict):
            error = source.get("error", source)
            data = error.get("data") if isinstance(error, dict) else None
            if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
                try:
                    return decode_revert(data)
                except Exception:  # malformed revert data: show it as it came
                    return f"revert {data}"
    return explain_revert(exc)
