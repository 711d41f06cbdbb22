"""Response bodies of the API, kept apart from the ORM models so the tables can change
without changing what clients see (and the other way round)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from marketplace_api.models import (
    Contribution,
    ContributionStatus,
    Job,
    JobStatus,
    SlotStatus,
    Verdict,
)

# Token amounts exceed JavaScript's 2^53, so JSON carries them as decimal strings.
Amount = Annotated[
    int,
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": "^[0-9]+$", "description": "token base units, decimal"}
    ),
]
Hex32 = Annotated[str, Field(pattern="^0x[0-9a-f]{64}$", description="32 bytes, 0x-hex")]
Address = Annotated[str, Field(description="EIP-55 checksummed address")]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Schema):
    total: int
    limit: int
    offset: int


class Health(Schema):
    status: Literal["ok"] = "ok"
    database: Literal["ok"] = "ok"
    indexed_block: int | None = Field(description="last block the indexer has fully applied")
    writes: bool = Field(description="whether POST /bounties relays to a chain")


class TxRef(Schema):
    """Where something happened on chain, for an auditor to look up."""

    tx_hash: str
    block_number: int


class RoundOut(Schema):
    round: int
    model_digest: Hex32
    model_cid: str
    validation_loss: float
    validation_loss_micro: Amount
    poster: Address
    block_number: int
    tx_hash: str


class JobSummary(Schema):
    id: int
    sponsor: Address
    status: JobStatus
    name: str | None = Field(description="from the job spec, when its content is known")
    model: str | None = Field(description="model architecture from the job spec, when known")
    spec_digest: Hex32
    spec_cid: str
    initial_model_digest: Hex32
    initial_model_cid: str
    rounds: int
    slots_per_round: int
    num_segments: int
    sample_count: int
    reward_per_slot: Amount
    verifier_fee: Amount
    claim_timeout: Amount
    escrow: Amount = Field(description="tokens still held for this job")
    current_round: int
    current_model_digest: Hex32
    created_block: int
    created_tx: str

    @classmethod
    def from_row(cls, job: Job) -> JobSummary:
        return cls.model_validate(_job_fields(cls, job))

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> JobSummary:
        """From ``queries.job_summaries``: database values, trusted, not validated again."""
        fields = {name: row[name] for name in cls.model_fields if name not in ("name", "model")}
        fields["status"] = JobStatus(fields["status"])
        return cls.model_construct(**fields, name=row["spec_name"], model=row["spec_model"])


def _job_fields(cls: type[Schema], job: Job) -> dict[str, Any]:
    fields = {
        name: getattr(job, name) for name in cls.model_fields if name not in ("name", "model")
    }
    fields["name"] = job.spec.name if job.spec is not None else None
    fields["model"] = job.spec.model if job.spec is not None else None
    return fields


class JobDetail(JobSummary):
    round_records: list[RoundOut]
    contribution_ids: list[int]
    spec: dict[str, Any] | None = Field(
        description="the job spec (its sha256 is spec_digest), when its content is known"
    )

    @classmethod
    def from_row(cls, job: Job) -> JobDetail:
        fields = _job_fields(JobSummary, job)
        return cls(
            **fields,
            round_records=[RoundOut.model_validate(r) for r in job.round_records],
            contribution_ids=[c.id for c in job.contributions],
            spec=None if job.spec is None else json.loads(job.spec.body),
        )


class RoundProgressOut(Schema):
    round: int
    status: Literal["aggregated", "open", "pending", "abandoned"]
    submitted: int = Field(description="contributions submitted in this round")
    accepted: int
    rejected: int
    validation_loss: float | None = Field(description="loss of the round's aggregate, if posted")
    aggregate: RoundOut | None


class SlotOut(Schema):
    job_id: int
    round: int
    slot: int
    status: SlotStatus
    node: Address | None
    deadline: int | None = Field(description="unix time by which the claim must be submitted")
    claims: int
    expired_claims: int
    contribution_id: int | None = Field(description="latest contribution for this slot")
    updated_block: int


class SlotPage(Page):
    items: list[SlotOut]


class JobPage(Page):
    items: list[JobSummary]


class ContributionTxs(Schema):
    submitted: TxRef
    seed_recorded: TxRef | None
    attested: TxRef | None
    finalized: TxRef | None


class ContributionSummary(Schema):
    id: int
    job_id: int
    round: int
    slot: int
    node: Address
    status: ContributionStatus
    verdict: Verdict | None
    verifier: Address | None
    node_reward: Amount | None
    slashed: Amount | None
    submit_block: int


class ContributionPage(Page):
    items: list[ContributionSummary]
    next_before: int | None = Field(
        default=None,
        description="pass as `before` for the next page (keyset: no rows skipped or repeated "
        "while new contributions arrive); null on the last page",
    )


class EventOut(Schema):
    """A raw chain event as the indexer stored it."""

    name: str
    contract: str
    address: Address
    block_number: int
    block_hash: Hex32
    tx_hash: Hex32
    log_index: int
    args: dict[str, Any] = Field(description="decoded arguments; integers may exceed 2^53")


class ContributionOut(Schema):
    """The proof bundle: everything needed to re-check this contribution and its payouts
    from public data (the chain, the content store and the training code)."""

    id: int
    job_id: int
    round: int
    slot: int
    node: Address
    status: ContributionStatus
    output_digest: Hex32
    trace_root: Hex32
    output_cid: str
    manifest_cid: str
    seed: Hex32 | None
    seed_block: int | None
    verifier: Address | None
    verdict: Verdict | None
    report_cid: str | None
    node_reward: Amount | None = Field(description="null until finalized")
    verifier_payment: Amount | None = Field(description="fee, or slash reward on a fail")
    slashed: Amount | None = Field(description="node stake slashed; null until finalized")
    transactions: ContributionTxs


class ProofBundle(ContributionOut):
    """``ContributionOut`` plus what an auditor needs to redo the check: the job's commitments,
    the segments the seed selects, every event about the contribution (attestations, disputes,
    votes) and the command that re-checks it."""

    spec_digest: Hex32
    spec_cid: str
    round_model_digest: Hex32 | None = Field(
        description="the global model the round started from (G_r), when known"
    )
    num_segments: int
    sample_count: int
    sampled_segments: list[int] | None = Field(
        description="segments the seed selects for re-execution (null before the seed)"
    )
    attestations: list[EventOut]
    disputes: list[EventOut] = Field(description="dispute, challenge and vote events")
    events: list[EventOut] = Field(description="every event about this contribution")
    audit_command: str


def contribution_fields(cls: type[Schema], c: Contribution) -> dict[str, Any]:
    """The columns ``cls`` shares with the row, and the transactions object."""
    txs = ContributionTxs(
        submitted=TxRef(tx_hash=c.submit_tx, block_number=c.submit_block),
        seed_recorded=_tx(c.seed_tx, c.seed_recorded_block),
        attested=_tx(c.attest_tx, c.attest_block),
        finalized=_tx(c.finalize_tx, c.finalize_block),
    )
    fields = {n: getattr(c, n) for n in ContributionOut.model_fields if n != "transactions"}
    return {**fields, "transactions": txs}


class ParticipantOut(Schema):
    """An address's stake and record, as a node and as a verifier."""

    address: Address
    staked: Amount = Field(description="stake held (locked part included)")
    locked: Amount = Field(description="stake locked by open claims")
    unbonding: Amount
    is_verifier: bool = Field(description="in the set verifiers are drawn from")
    submitted: int
    accepted: int
    rejected: int
    node_earnings: Amount = Field(description="rewards for accepted contributions")
    slashed: Amount
    slash_count: int
    attestations: int
    failed_attestations: int = Field(description="attestations that found a contribution bad")
    verifier_earnings: Amount = Field(description="fees and slash rewards")
    withdrawn: Amount = Field(description="credits withdrawn from Settlement")
    first_block: int
    last_block: int


class ParticipantPage(Page):
    items: list[ParticipantOut]


class LeaderboardEntry(Schema):
    rank: int
    address: Address
    node_earnings: Amount
    accepted: int
    rejected: int
    slashed: Amount
    acceptance_rate: float


class Leaderboard(Page):
    items: list[LeaderboardEntry]


class StatsOut(Schema):
    jobs: int
    open_jobs: int
    completed_jobs: int
    open_escrow: Amount = Field(description="tokens escrowed by open jobs")
    contributions: int
    accepted: int
    rejected: int
    pending: int
    paid_to_nodes: Amount
    paid_to_verifiers: Amount
    slashed: Amount
    nodes: int
    verifiers: int
    events: int
    indexed_block: int | None


HexData = Annotated[
    str,
    Field(
        pattern="^0x([0-9a-fA-F]{2})+$",
        max_length=262_144,
        description="a signed transaction, 0x-hex",
    ),
]


class BountyIn(BaseModel):
    """A sponsor's bounty: its ``createJob`` transaction, signed by the sponsor, and the spec
    whose sha256 (of its canonical JSON) that transaction commits to."""

    model_config = ConfigDict(extra="forbid")

    raw_transaction: HexData
    spec: dict[str, Any] = Field(description="the job spec (JSON object)")


class BountyOut(Schema):
    tx_hash: Hex32
    sponsor: Address = Field(description="the transaction's signer")
    spec_digest: Hex32
    spec_cid: str


def _tx(tx_hash: str | None, block: int | None) -> TxRef | None:
    if tx_hash is None or block is None:
        return None
    return TxRef(tx_hash=tx_hash, block_number=block)
