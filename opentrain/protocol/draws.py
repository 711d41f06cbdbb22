"""Who is drawn: the stake-weighted verifier draw of ``StakeRegistry``, mirrored bit for bit.

The contract draws from a *snapshot*: the append-only list of every address that ever
registered as a verifier (first-registration order) with each one's weight (its stake while
registered, 0 otherwise) as of ``snapshotBlock - drawLag``. Ticket ``c`` of a draw is
``keccak256(abi.encode(seed, tag, c)) mod total`` and lands on the first position whose
cumulative weight exceeds it, so one ticket per unit of stake: splitting stake over several
accounts changes nothing. ``draw_and_lock`` is the probe loop of ``drawAndLock`` (skip the
excluded, wait for or skip a busy verifier). ISSUE13_ABI.md gives the rule as pseudo-code;
``tests/test_protocol_agreement.py`` checks this module against ``drawTicket`` on the EVM.

The seeds of each draw (``takeover_seed``, ``committee_seed``) are here too, so any party (a
node choosing whom to wait for, an auditor re-deriving an assignment) can recompute the draw.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from itertools import accumulate

from eth_abi import encode as abi_encode
from eth_utils import keccak

__all__ = [
    "COMMITTEE_TAG",
    "MAX_DRAW_PROBES",
    "VERIFIER_TAG",
    "Snapshot",
    "committee_seed",
    "draw_and_lock",
    "draw_one",
    "ticket",
    "takeover_seed",
]

VERIFIER_TAG = keccak(b"opentrain.verifier")  # Settlement's draws
COMMITTEE_TAG = keccak(b"opentrain.committee")  # Disputes' draws
MAX_DRAW_PROBES = 32  # libraries/Limits.sol
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class Snapshot:
    """The verifier list and weights one draw reads (``StakeRegistry.verifierSnapshot``)."""

    accounts: tuple[str, ...]
    weights: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.accounts) != len(self.weights):
            raise ValueError("a snapshot has one weight per account")
        if any(w < 0 for w in self.weights):
            raise ValueError("weights are stake amounts, never negative")

    @classmethod
    def of(cls, accounts: Sequence[str], weights: Sequence[int]) -> Snapshot:
        return cls(tuple(str(a) for a in accounts), tuple(int(w) for w in weights))

    @property
    def total(self) -> int:
        return sum(self.weights)

    def share(self, account: str) -> float:
        """The account's chance per ticket (its weight over the total)."""
        total = self.total
        mine = sum(w for a, w in zip(self.accounts, self.weights, strict=True) if _eq(a, account))
        return mine / total if total else 0.0


def ticket(seed: bytes, tag: bytes, counter: int, total: int) -> int:
    """Ticket ``counter`` of the draw: keccak256(abi.encode(seed, tag, counter)) mod total."""
    if total <= 0:
        raise ValueError("no weight to draw from")
    h = keccak(abi_encode(["bytes32", "bytes32", "uint256"], [seed, tag, counter]))
    return int.from_bytes(h, "big") % total


def draw_one(seed: bytes, tag: bytes, counter: int, snapshot: Snapshot) -> str:
    """``StakeRegistry.drawTicket``: the account ticket ``counter`` lands on (the zero address
    when the snapshot has no weight)."""
    total = snapshot.total
    if total == 0:
        return ZERO_ADDRESS
    cumulative = list(accumulate(snapshot.weights))
    return snapshot.accounts[bisect.bisect_right(cumulative, ticket(seed, tag, counter, total))]


def draw_and_lock(
    seed: bytes,
    tag: bytes,
    snapshot: Snapshot,
    count: int,
    first_counter: int,
    excluded: Collection[str],
    has_free_lock: Callable[[str], bool],
    stop_at_locked: bool,
) -> tuple[list[str], int]:
    """The probe loop of ``StakeRegistry.drawAndLock``: up to ``count`` distinct accounts, never
    an excluded one, from at most ``MAX_DRAW_PROBES`` tickets starting at ``first_counter``.

    ``has_free_lock(account)`` says whether the account has ``verifierLock`` free *now* (the
    caller tracks locks taken by earlier picks). A busy pick ends the draw with
    ``stop_at_locked`` (Settlement: the contribution waits for that verifier and the returned
    counter retries its ticket) or is skipped (Disputes). Returns (drawn, next counter)."""
    drawn: list[str] = []
    counter, end = first_counter, first_counter + MAX_DRAW_PROBES
    if snapshot.total == 0:
        counter = end
    skip = {a.lower() for a in excluded}
    while counter < end and len(drawn) < count:
        account = draw_one(seed, tag, counter, snapshot)
        if account.lower() in skip or any(_eq(account, d) for d in drawn):
            counter += 1
            continue
        if not has_free_lock(account):
            if stop_at_locked:
                break
            counter += 1
            continue
        drawn.append(account)
        counter += 1
    return drawn, counter


def takeover_seed(sample_seed: bytes, request_block_hash: bytes, takeover: int) -> bytes:
    """The draw seed of takeover ``takeover`` (1, 2, ...): keccak256(abi.encode(sampleSeed,
    blockhash(requestBlock + 1), takeover))."""
    return keccak(
        abi_encode(["bytes32", "bytes32", "uint256"], [sample_seed, request_block_hash, takeover])
    )


def committee_seed(seed_block_hash: bytes, dispute_id: int, escalation: int = 0) -> bytes:
    """A dispute committee's seed: round 0 keccak256(abi.encode(blockhash, id)); escalation
    round r >= 1 keccak256(abi.encode(blockhash, id, r))."""
    if escalation == 0:
        return keccak(abi_encode(["bytes32", "uint256"], [seed_block_hash, dispute_id]))
    return keccak(
        abi_encode(["bytes32", "uint256", "uint256"], [seed_block_hash, dispute_id, escalation])
    )


def _eq(a: str, b: str) -> bool:
    return a.lower() == b.lower()
