"""Constants, errors and the enums of contracts/interfaces/Types.sol, mirrored for Python."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

CONTRACT_NAMES = (
    "TrainToken",
    "StakeRegistry",
    "JobMarket",
    "Settlement",
    "Disputes",
    "Canaries",
)
TOKEN = 10**18
IN_PROCESS_GAS = 6_000_000
LOSS_SCALE = 1_000_000  # validation losses travel on-chain as loss * 1e6
ZERO_ADDRESS = "0x" + "00" * 20


class ChainError(RuntimeError):
    """A failed chain call, already explained in one line."""


# -- enums of contracts/interfaces/Types.sol ---------------------------------------------------


class JobStatus(IntEnum):
    NONE = 0
    OPEN = 1
    COMPLETED = 2
    CANCELLED = 3


class SlotStatus(IntEnum):
    OPEN = 0
    CLAIMED = 1
    SUBMITTED = 2
    ACCEPTED = 3


class ContributionStatus(IntEnum):
    NONE = 0
    SUBMITTED = 1
    ACCEPTED = 2
    REJECTED = 3


class Verdict(IntEnum):
    NONE = 0
    PASS = 1
    FAIL = 2


class Phase(IntEnum):
    """Where a contribution stands in Settlement."""

    NONE = 0
    ASSIGNED = 1
    DISPUTED = 2
    ACCEPTED = 3
    REJECTED = 4
    QUEUED = 5  # seed recorded, waiting for a verifier (busy draw or a takeover's draw)


class AggregateStatus(IntEnum):
    NONE = 0
    PENDING = 1
    DISPUTED = 2
    FINAL = 3


class DisputeKind(IntEnum):
    NONE = 0
    CONTEST = 1  # the node contests a fail
    CHALLENGE = 2  # a third party challenges a pass
    AGGREGATE = 3  # a third party challenges a round aggregate


class DisputeStatus(IntEnum):
    NONE = 0
    AWAITING_COMMITTEE = 1
    VOTING = 2
    RESOLVED = 3


class Ruling(IntEnum):
    NONE = 0
    VALID = 1
    INVALID = 2
    UNDECIDED = 3


@dataclass(frozen=True)
class JobParams:
    """Mirror of the Solidity ``JobParams`` struct.

    ``cheat_fraction_bps`` is the fraction f of segments the sponsor assumes a cheat fakes
    (basis points): ``createJob`` refuses the job unless ``p * (min_node_stake + reward) >
    reward`` for the detection probability ``p = 1 - (1 - f)^sample_count``
    (see ``detection_probability``).
    """

    spec_digest: bytes
    initial_model_digest: bytes
    rounds: int
    slots_per_round: int
    num_segments: int
    sample_count: int
    reward_per_slot: int
    verifier_fee: int
    claim_timeout: int = 3_600  # seconds (a claim deadline is a unix time)
    cheat_fraction_bps: int = 1_000
    # seconds after the seed within which the node reveals the sampled checkpoints (0: all
    # checkpoints are published at submission; nothing to reveal)
    reveal_window: int = 0

    @property
    def escrow(self) -> int:
        return self.rounds * self.slots_per_round * (self.reward_per_slot + self.verifier_fee)

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.spec_digest,
            self.initial_model_digest,
            self.rounds,
            self.slots_per_round,
            self.num_segments,
            self.sample_count,
            self.reward_per_slot,
            self.verifier_fee,
            self.claim_timeout,
            self.cheat_fraction_bps,
            self.reveal_window,
        )
