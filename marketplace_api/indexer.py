"""Chain indexer: copies the contracts' events into the database and projects them into tables.

Each batch of blocks is one database transaction: the raw ``ChainEvent`` rows, their effect on
the ``Job``/``Contribution``/``RoundRecord`` projections and the cursor move together, so a
crash leaves the database at the end of the previous batch and the next ``sync`` resumes there.
Projections are computed only from stored event rows (never from contract storage), so they
can be rebuilt by replaying ``chain_events`` — what reorg handling will do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3
from web3.contract.contract import ContractEvent
from web3.types import LogReceipt

from marketplace_api.db import check_migrated
from marketplace_api.models import (
    ChainEvent,
    Contribution,
    ContributionStatus,
    IndexerCursor,
    Job,
    JobStatus,
    RoundRecord,
    Verdict,
)
from opentrain.chain import CONTRACT_NAMES, Deployment, artifact

log = logging.getLogger(__name__)

CURSOR = "main"
LOSS_SCALE = 1_000_000  # RoundAggregated carries validation loss times 1e6


class IndexerError(RuntimeError):
    """The chain and the database disagree in a way the indexer cannot repair by itself."""


@dataclass(frozen=True)
class _Source:
    """Where a log topic comes from: which contract and which event decodes it."""

    contract: str
    event: ContractEvent


class Indexer:
    """Follows the four contracts of ``deployment`` on ``w3`` into ``session_factory``'s DB."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        session_factory: sessionmaker[Session],
        *,
        batch_size: int = 500,
        confirmations: int = 0,
    ) -> None:
        if batch_size < 1 or confirmations < 0:
            raise ValueError("batch_size must be >= 1 and confirmations >= 0")
        self.w3 = w3
        self.deployment = deployment
        self.session_factory = session_factory
        self.batch_size = batch_size
        self.confirmations = confirmations
        self._sources = _event_sources(w3, deployment)
        self._addresses = [Web3.to_checksum_address(getattr(deployment, n)) for n in CONTRACT_NAMES]
        with session_factory() as session:
            check_migrated(session.connection())

    def sync(self, to_block: int | None = None) -> int:
        """Index every block after the cursor up to ``to_block`` (default: the head minus the
        confirmation depth). Returns how many new events were stored and applied."""
        head = int(self.w3.eth.block_number) - self.confirmations
        target = head if to_block is None else min(to_block, head)
        start = self._next_block()
        total = 0
        for first in range(start, target + 1, self.batch_size):
            last = min(first + self.batch_size - 1, target)
            total += self._index_batch(first, last)
        return total

    def _next_block(self) -> int:
        """The first block not yet indexed; refuses to continue on top of a replaced block."""
        with self.session_factory() as session:
            cursor = session.get(IndexerCursor, CURSOR)
        if cursor is None:
            return self.deployment.block
        on_chain = _hex(self.w3.eth.get_block(cursor.block_number)["hash"])
        if on_chain != cursor.block_hash:
            raise IndexerError(
                f"block {cursor.block_number} changed since it was indexed (reorg deeper than "
                f"the confirmation depth {self.confirmations}): re-index from scratch"
            )
        return cursor.block_number + 1

    def _index_batch(self, first: int, last: int) -> int:
        """Store, apply and advance the cursor over blocks ``first..last`` in one transaction."""
        logs = self.w3.eth.get_logs(
            {"fromBlock": first, "toBlock": last, "address": self._addresses}
        )
        rows = [row for row in map(self._decode, logs) if row is not None]
        rows.sort(key=lambda r: (r.block_number, r.tx_index, r.log_index))
        last_hash = _hex(self.w3.eth.get_block(last)["hash"])
        with self.session_factory.begin() as session:
            fresh = _drop_known(session, rows)
            for row in fresh:
                session.add(row)
                apply_event(session, row)
            session.merge(IndexerCursor(name=CURSOR, block_number=last, block_hash=last_hash))
        if fresh:
            log.info("indexed blocks %d-%d: %d events", first, last, len(fresh))
        return len(fresh)

    def _decode(self, entry: LogReceipt) -> ChainEvent | None:
        """A log as a ``ChainEvent`` row; logs of events not in the ABIs are skipped."""
        if not entry["topics"]:
            return None
        key = (Web3.to_checksum_address(entry["address"]), _hex(entry["topics"][0]))
        source = self._sources.get(key)
        if source is None:
            log.warning("skipping unknown log %s in block %d", key, entry["blockNumber"])
            return None
        decoded = source.event.process_log(entry)
        return ChainEvent(
            block_number=int(entry["blockNumber"]),
            block_hash=_hex(entry["blockHash"]),
            tx_hash=_hex(entry["transactionHash"]),
            tx_index=int(entry["transactionIndex"]),
            log_index=int(entry["logIndex"]),
            contract=source.contract,
            address=key[0],
            name=str(decoded["event"]),
            args=_jsonable(decoded["args"]),
        )


def _event_sources(w3: Web3, deployment: Deployment) -> dict[tuple[str, str], _Source]:
    """(contract address, topic0) -> decoder, over every event in the four ABIs."""
    sources: dict[tuple[str, str], _Source] = {}
    for name in CONTRACT_NAMES:
        address = Web3.to_checksum_address(getattr(deployment, name))
        contract = w3.eth.contract(address=address, abi=artifact(name)["abi"])
        for item in artifact(name)["abi"]:
            if item["type"] == "event" and not item.get("anonymous", False):
                event = contract.events[item["name"]]()
                sources[(address, _hex(event.topic))] = _Source(name, event)
    return sources


def _drop_known(session: Session, rows: list[ChainEvent]) -> list[ChainEvent]:
    """Rows not stored yet: re-reading a range (a rewound cursor) must not apply twice.
    Looks up by block hash (at most one per block of the batch) to keep the query small."""
    if not rows:
        return []
    hashes = {r.block_hash for r in rows}
    query = select(ChainEvent.block_hash, ChainEvent.log_index).where(
        ChainEvent.block_hash.in_(hashes)
    )
    known = {(block_hash, log_index) for block_hash, log_index in session.execute(query)}
    return [r for r in rows if (r.block_hash, r.log_index) not in known]


def _hex(value: bytes | str) -> str:
    return "0x" + bytes(HexBytes(value)).hex()


def _jsonable(value: Any) -> Any:
    """Event arguments as JSON: bytes as 0x-hex, structs as objects, ints kept exact."""
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# -- projections: one small function per event that changes a table ------------------------------

Apply = Callable[[Session, ChainEvent], None]


def apply_event(session: Session, event: ChainEvent) -> None:
    """Project one stored event; events nothing reads yet (stakes, roles) stay raw only."""
    handler = APPLY.get(event.name)
    if handler is not None:
        handler(session, event)
        session.flush()  # later events of the batch may query what this one wrote


def _job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise IndexerError(f"event refers to job {job_id}, which was never created")
    return job


def _contribution(session: Session, contribution_id: int) -> Contribution:
    contribution = session.get(Contribution, contribution_id)
    if contribution is None:
        raise IndexerError(f"event refers to contribution {contribution_id}, never submitted")
    return contribution


def _job_created(session: Session, event: ChainEvent) -> None:
    a, p = event.args, event.args["params"]
    session.add(
        Job(
            id=int(a["jobId"]),
            sponsor=a["sponsor"],
            spec_digest=p["specDigest"],
            initial_model_digest=p["initialModelDigest"],
            spec_cid=a["specCid"],
            initial_model_cid=a["initialModelCid"],
            rounds=int(p["rounds"]),
            slots_per_round=int(p["slotsPerRound"]),
            num_segments=int(p["numSegments"]),
            sample_count=int(p["sampleCount"]),
            reward_per_slot=int(p["rewardPerSlot"]),
            verifier_fee=int(p["verifierFee"]),
            claim_timeout=int(p["claimTimeout"]),
            escrow=int(a["escrow"]),
            status=JobStatus.OPEN,
            current_round=0,
            current_model_digest=p["initialModelDigest"],
            created_block=event.block_number,
            created_tx=event.tx_hash,
        )
    )


def _contribution_submitted(session: Session, event: ChainEvent) -> None:
    a = event.args
    session.add(
        Contribution(
            id=int(a["contributionId"]),
            job_id=_job(session, int(a["jobId"])).id,
            round=int(a["round"]),
            slot=int(a["slot"]),
            node=a["node"],
            output_digest=a["outputDigest"],
            trace_root=a["traceRoot"],
            output_cid=a["outputCid"],
            manifest_cid=a["manifestCid"],
            status=ContributionStatus.SUBMITTED,
            submit_block=event.block_number,
            submit_tx=event.tx_hash,
        )
    )


def _contribution_settled(session: Session, event: ChainEvent) -> None:
    """JobMarket's side of settlement: the status, and the reward and fee leaving escrow."""
    a = event.args
    contribution = _contribution(session, int(a["contributionId"]))
    accepted = bool(a["accepted"])
    contribution.status = ContributionStatus.ACCEPTED if accepted else ContributionStatus.REJECTED
    contribution.job.escrow -= int(a["reward"]) + int(a["fee"])


def _round_aggregated(session: Session, event: ChainEvent) -> None:
    a = event.args
    job = _job(session, int(a["jobId"]))
    micro = int(a["validationLossMicro"])
    session.add(
        RoundRecord(
            job_id=job.id,
            round=int(a["round"]),
            model_digest=a["modelDigest"],
            model_cid=a["modelCid"],
            validation_loss_micro=micro,
            validation_loss=micro / LOSS_SCALE,
            poster=a["poster"],
            block_number=event.block_number,
            tx_hash=event.tx_hash,
        )
    )
    job.current_round = int(a["round"]) + 1
    job.current_model_digest = a["modelDigest"]


def _job_completed(session: Session, event: ChainEvent) -> None:
    _job(session, int(event.args["jobId"])).status = JobStatus.COMPLETED


def _escrow_refunded(session: Session, event: ChainEvent) -> None:
    job = _job(session, int(event.args["jobId"]))
    job.escrow -= int(event.args["amount"])


def _seed_recorded(session: Session, event: ChainEvent) -> None:
    a = event.args
    contribution = _contribution(session, int(a["contributionId"]))
    contribution.seed = a["seed"]
    contribution.seed_block = int(a["seedBlock"])
    contribution.verifier = a["verifier"]
    contribution.seed_recorded_block = event.block_number
    contribution.seed_tx = event.tx_hash


def _seed_block_reset(session: Session, event: ChainEvent) -> None:
    contribution = _contribution(session, int(event.args["contributionId"]))
    contribution.seed_block = int(event.args["newSeedBlock"])


def _attested(session: Session, event: ChainEvent) -> None:
    a = event.args
    contribution = _contribution(session, int(a["contributionId"]))
    contribution.verdict = Verdict.PASS if a["pass"] else Verdict.FAIL
    contribution.report_cid = a["reportCid"]
    contribution.attest_block = event.block_number
    contribution.attest_tx = event.tx_hash


def _contribution_finalized(session: Session, event: ChainEvent) -> None:
    """Settlement's side: who was paid what, and how much of the node's stake was slashed."""
    a = event.args
    contribution = _contribution(session, int(a["contributionId"]))
    contribution.node_reward = int(a["nodeReward"])
    contribution.verifier_payment = int(a["verifierPayment"])
    contribution.slashed = int(a["slashed"])
    contribution.finalize_block = event.block_number
    contribution.finalize_tx = event.tx_hash


APPLY: dict[str, Apply] = {
    "JobCreated": _job_created,
    "ContributionSubmitted": _contribution_submitted,
    "ContributionSettled": _contribution_settled,
    "RoundAggregated": _round_aggregated,
    "JobCompleted": _job_completed,
    "EscrowRefunded": _escrow_refunded,
    "SeedRecorded": _seed_recorded,
    "SeedBlockReset": _seed_block_reset,
    "Attested": _attested,
    "ContributionFinalized": _contribution_finalized,
}
