"""Database tables of the marketplace: raw chain events and the projections built from them.

``ChainEvent`` rows are the source of truth (what the chain said, with block hashes so a reorg
can be detected and undone); ``Job``, ``Contribution``, ``RoundRecord``, ``Slot`` and
``Participant`` are projections the indexer derives from them and the API reads
(``PROJECTED_MODELS``: every change to them is journaled in ``ProjectionUndo`` so a reorg can be
rolled back). ``IndexedBlock`` keeps the recent block hashes; ``JobSpecRecord`` caches job specs
whose sha256 matched an on-chain digest. Token amounts are ``Uint256`` (exact), digests and
hashes ``0x``-prefixed lowercase hex, addresses EIP-55 checksummed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from marketplace_api.sqltypes import Uint256

HASH = String(66)
ADDRESS = String(42)
# SQLite only auto-increments INTEGER PRIMARY KEY; elsewhere row ids may outgrow 32 bits.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Named constraints, so later migrations (SQLite batch mode included) can address them."""

    metadata = MetaData(naming_convention=NAMING)


class JobStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"


class SlotStatus(StrEnum):
    OPEN = "open"  # a claim expired or a contribution was rejected: free to claim again
    CLAIMED = "claimed"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"


class ContributionStatus(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"


class ChainEvent(Base):
    """One decoded log of the four contracts, exactly as the chain emitted it."""

    __tablename__ = "chain_events"
    __table_args__ = (
        UniqueConstraint("block_hash", "log_index"),
        # A contribution's history in chain order straight off the index (no sort): the
        # proof bundle is the API's hottest uncached read.
        Index(
            "ix_chain_events_contribution_order",
            "contribution_id",
            "block_number",
            "tx_index",
            "log_index",
        ),
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    block_hash: Mapped[str] = mapped_column(HASH)
    tx_hash: Mapped[str] = mapped_column(HASH)
    tx_index: Mapped[int] = mapped_column(Integer)
    log_index: Mapped[int] = mapped_column(Integer)
    contract: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(ADDRESS)
    name: Mapped[str] = mapped_column(String(64), index=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Copied out of ``args`` when the event names them, so a job's or a contribution's whole
    # history (disputes and votes included, projected or not) is one indexed lookup.
    job_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    contribution_id: Mapped[int | None] = mapped_column(BigInteger)


class IndexerCursor(Base):
    """The last block whose events are fully stored and applied (hash kept to spot reorgs).

    ``final_block``: blocks at or below it are deeper than the reorg window (no undo journal,
    no kept hashes). ``projection_version``: the projection code that built the tables; a
    newer one replays the stored events. ``halted``: set when the chain replaced blocks the
    indexer cannot roll back; the API then refuses to serve data."""

    __tablename__ = "indexer_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(HASH)
    final_block: Mapped[int] = mapped_column(BigInteger, server_default="-1")
    projection_version: Mapped[int] = mapped_column(Integer, server_default="1")
    halted: Mapped[str | None] = mapped_column(Text)  # why the indexer stopped, if it did


class IndexedBlock(Base):
    """Hash of an indexed block inside the reorg window: where a rollback can stop."""

    __tablename__ = "indexed_blocks"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(HASH)


class ProjectionUndo(Base):
    """How to undo one change the indexer made to a projected row while applying an event of
    ``block_number``: ``before`` is null for a row it created (undo: delete), else the changed
    columns' previous values (or the whole row, for a row it deleted)."""

    __tablename__ = "projection_undo"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    table_name: Mapped[str] = mapped_column(String(64))
    row_key: Mapped[dict[str, Any]] = mapped_column(JSON)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    deleted: Mapped[bool] = mapped_column(Boolean, server_default="0")


class JobSpecRecord(Base):
    """A job spec whose sha256 equals an on-chain ``specDigest`` (content-addressed: no reorg
    can make it wrong, so it is a cache, not a projection)."""

    __tablename__ = "job_specs"

    spec_digest: Mapped[str] = mapped_column(HASH, primary_key=True)
    spec_cid: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(32), index=True)
    body: Mapped[str] = mapped_column(Text)


class Job(Base):
    """A training bounty: its fixed parameters (``JobCreated``) and its moving state."""

    __tablename__ = "jobs"
    # Lists are newest first: (filter, id) indexes serve a page in order without a sort.
    __table_args__ = (
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_sponsor_id", "sponsor", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    sponsor: Mapped[str] = mapped_column(ADDRESS)
    spec_digest: Mapped[str] = mapped_column(HASH)
    initial_model_digest: Mapped[str] = mapped_column(HASH)
    spec_cid: Mapped[str] = mapped_column(Text)
    initial_model_cid: Mapped[str] = mapped_column(Text)
    rounds: Mapped[int] = mapped_column(Integer)
    slots_per_round: Mapped[int] = mapped_column(Integer)
    num_segments: Mapped[int] = mapped_column(Integer)
    sample_count: Mapped[int] = mapped_column(Integer)
    reward_per_slot: Mapped[int] = mapped_column(Uint256)
    verifier_fee: Mapped[int] = mapped_column(Uint256)
    claim_timeout: Mapped[int] = mapped_column(Uint256)
    escrow: Mapped[int] = mapped_column(Uint256)
    status: Mapped[str] = mapped_column(String(16))
    current_round: Mapped[int] = mapped_column(Integer)
    current_model_digest: Mapped[str] = mapped_column(HASH)
    created_block: Mapped[int] = mapped_column(BigInteger)
    created_tx: Mapped[str] = mapped_column(HASH)

    round_records: Mapped[list[RoundRecord]] = relationship(
        back_populates="job", order_by="RoundRecord.round"
    )
    contributions: Mapped[list[Contribution]] = relationship(
        back_populates="job", order_by="Contribution.id"
    )
    spec: Mapped[JobSpecRecord | None] = relationship(
        primaryjoin="foreign(Job.spec_digest) == JobSpecRecord.spec_digest",
        viewonly=True,
        lazy="selectin",
    )


class Contribution(Base):
    """A node's submitted slot and everything that settled it: the auditor's proof bundle."""

    __tablename__ = "contributions"
    __table_args__ = (
        Index("ix_contributions_job_id_id", "job_id", "id"),
        Index("ix_contributions_node_id", "node", "id"),
        Index("ix_contributions_verifier_id", "verifier", "id"),
        Index("ix_contributions_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    round: Mapped[int] = mapped_column(Integer)
    slot: Mapped[int] = mapped_column(Integer)
    node: Mapped[str] = mapped_column(ADDRESS)
    output_digest: Mapped[str] = mapped_column(HASH)
    trace_root: Mapped[str] = mapped_column(HASH)
    output_cid: Mapped[str] = mapped_column(Text)
    manifest_cid: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    submit_block: Mapped[int] = mapped_column(BigInteger)
    submit_tx: Mapped[str] = mapped_column(HASH)
    seed: Mapped[str | None] = mapped_column(HASH)
    seed_block: Mapped[int | None] = mapped_column(BigInteger)
    verifier: Mapped[str | None] = mapped_column(ADDRESS)
    seed_recorded_block: Mapped[int | None] = mapped_column(BigInteger)
    seed_tx: Mapped[str | None] = mapped_column(HASH)
    verdict: Mapped[str | None] = mapped_column(String(8))
    report_cid: Mapped[str | None] = mapped_column(Text)
    attest_block: Mapped[int | None] = mapped_column(BigInteger)
    attest_tx: Mapped[str | None] = mapped_column(HASH)
    node_reward: Mapped[int | None] = mapped_column(Uint256)
    verifier_payment: Mapped[int | None] = mapped_column(Uint256)
    slashed: Mapped[int | None] = mapped_column(Uint256)
    finalize_block: Mapped[int | None] = mapped_column(BigInteger)
    finalize_tx: Mapped[str | None] = mapped_column(HASH)

    job: Mapped[Job] = relationship(back_populates="contributions")


class RoundRecord(Base):
    """The aggregate ``G_{r+1}`` posted for a round, with its recomputable validation loss."""

    __tablename__ = "round_records"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_digest: Mapped[str] = mapped_column(HASH)
    model_cid: Mapped[str] = mapped_column(Text)
    validation_loss_micro: Mapped[int] = mapped_column(Uint256)
    validation_loss: Mapped[float] = mapped_column(Float)
    poster: Mapped[str] = mapped_column(ADDRESS)
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(HASH)

    job: Mapped[Job] = relationship(back_populates="round_records")


class Slot(Base):
    """One slot of one round: who holds it and how far its work got."""

    __tablename__ = "slots"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16))
    node: Mapped[str | None] = mapped_column(ADDRESS)
    deadline: Mapped[int | None] = mapped_column(BigInteger)
    claims: Mapped[int] = mapped_column(Integer)
    expired_claims: Mapped[int] = mapped_column(Integer)
    contribution_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_block: Mapped[int] = mapped_column(BigInteger)


class Participant(Base):
    """An address that staked, trained or verified: its stake and what it earned or lost."""

    __tablename__ = "participants"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    staked: Mapped[int] = mapped_column(Uint256)
    locked: Mapped[int] = mapped_column(Uint256)
    unbonding: Mapped[int] = mapped_column(Uint256)
    is_verifier: Mapped[bool] = mapped_column(Boolean)
    submitted: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    node_earnings: Mapped[int] = mapped_column(Uint256)
    slashed: Mapped[int] = mapped_column(Uint256)
    slash_count: Mapped[int] = mapped_column(Integer)
    attestations: Mapped[int] = mapped_column(Integer)
    failed_attestations: Mapped[int] = mapped_column(Integer)
    verifier_earnings: Mapped[int] = mapped_column(Uint256)
    withdrawn: Mapped[int] = mapped_column(Uint256)
    first_block: Mapped[int] = mapped_column(BigInteger)
    last_block: Mapped[int] = mapped_column(BigInteger)


# Tables the indexer derives from events: each change is journaled for reorg rollback and they
# are emptied and replayed when the projection code changes. Order: parents before children.
PROJECTED_MODELS: tuple[type[Base], ...] = (Job, Participant, Contribution, RoundRecord, Slot)
