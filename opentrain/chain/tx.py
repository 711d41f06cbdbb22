"""Sending transactions so that nothing is lost and nothing is sent twice.

One nonce manager per signer. Every signed transaction is written to a journal *before* it is
broadcast, so after a crash or an RPC outage the same signed bytes (same hash) are looked up or
re-broadcast, never re-signed with a new nonce. Connection errors are retried with exponential
backoff (tenacity); a revert is decoded by the caller's ``explain`` into one line.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from tenacity import (
    RetryError,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

TRANSIENT = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError, OSError)


class RpcUnavailable(RuntimeError):
    """The chain endpoint stayed unreachable through every retry."""


def with_backoff(attempts: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Retry a call on connection errors only, waiting 0.2 s, 0.4 s, ... up to 5 s."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        inner = retry(
            retry=retry_if_exception_type(TRANSIENT),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_attempt(max(attempts, 1)),
            reraise=False,
        )(fn)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return inner(*args, **kwargs)
            except RetryError as exc:
                cause = exc.last_attempt.exception()
                raise RpcUnavailable(
                    f"chain endpoint unreachable after {attempts} attempts: {type(cause).__name__}"
                ) from None

        return call

    return wrap


@dataclass(frozen=True)
class JournalEntry:
    nonce: int
    tx_hash: str
    raw: str
    what: str


class TxJournal:
    """Append-only JSON lines of signed transactions, fsynced before each broadcast."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def record(self, entry: JournalEntry) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(entry.__dict__) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def entries(self) -> list[JournalEntry]:
        if self.path is None or not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        return [JournalEntry(**json.loads(line)) for line in lines if line.strip()]


class TxSender:
    """Signs, journals, broadcasts and confirms the transactions of one signer."""

    def __init__(
        self,
        w3: Web3,
        signer: LocalAccount,
        journal: Path | None = None,
        attempts: int = 8,
        receipt_timeout: float = 120.0,
    ) -> None:
        self.w3 = w3
        self.signer = signer
        self.journal = TxJournal(journal)
        self.attempts = attempts
        self.receipt_timeout = receipt_timeout
        self._nonce: int | None = None
        self._lock = threading.Lock()

    def next_nonce(self) -> int:
        """Local counter, never behind the chain's pending count."""
        chain_nonce = self._rpc(self.w3.eth.get_transaction_count, self.signer.address, "pending")
        if self._nonce is None or self._nonce < chain_nonce:
            self._nonce = int(chain_nonce)
        return self._nonce

    def sign_and_send(self, tx: dict[str, Any], what: str) -> TxReceipt:
        """Sign ``tx`` (its nonce set here), journal it, broadcast it and wait for its receipt."""
        with self._lock:
            tx = {**tx, "nonce": self.next_nonce()}
            signed = self.signer.sign_transaction(tx)  # type: ignore[arg-type]
            entry = JournalEntry(
                int(tx["nonce"]),
                "0x" + signed.hash.hex(),
                "0x" + signed.raw_transaction.hex(),
                what,
            )
            self.journal.record(entry)
            self._broadcast(entry)
            self._nonce = entry.nonce + 1
        return self.wait(entry)

    def _broadcast(self, entry: JournalEntry) -> None:
        try:
            self._rpc(self.w3.eth.send_raw_transaction, HexBytes(entry.raw))
        except Web3RPCError as exc:
            # the same bytes were already accepted (a retry after a lost response): fine
            message = str(exc).lower()
            if "already known" in message or "nonce too low" in message:
                return
            raise

    def wait(self, entry: JournalEntry) -> TxReceipt:
        """The receipt of a journaled transaction, re-broadcasting it if the node forgot it."""
        deadline = time.monotonic() + self.receipt_timeout
        while time.monotonic() < deadline:
            receipt = self.receipt(entry.tx_hash)
            if receipt is not None:
                return receipt
            time.sleep(0.1)
        raise TimeoutError(f"{entry.what}: no receipt for {entry.tx_hash} yet")

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            receipt: TxReceipt = self._rpc(self.w3.eth.get_transaction_receipt, tx_hash)
        except TransactionNotFound:
            return None
        return receipt

    def recover(self) -> list[TxReceipt]:
        """After a restart: confirm (or re-broadcast) every journaled transaction."""
        receipts = []
        for entry in self.journal.entries():
            receipt = self.receipt(entry.tx_hash)
            if receipt is None:
                chain_nonce = self._rpc(
                    self.w3.eth.get_transaction_count, self.signer.address, "latest"
                )
                if entry.nonce < chain_nonce:
                    continue  # another transaction took the nonce: this one can never land
                self._broadcast(entry)
                receipt = self.wait(entry)
            receipts.append(receipt)
        return receipts

    def _rpc(self, fn: Callable[..., Any], *args: Any) -> Any:
        return with_backoff(self.attempts)(fn)(*args)
