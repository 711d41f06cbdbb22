"""Response bodies of the API, kept apart from the ORM models so the tables can change
without changing what clients see (and the other way round)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from marketplace_api.models import Contribution, ContributionStatus, Job, JobStatus, Verdict

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


class Health(Schema):
    status: Literal["ok"] = "ok"
    database: Literal["ok"] = "ok"
    indexed_block: int | None = Field(description="last block the indexer has fully applied")


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


class JobDetail(JobSummary):
    round_records: list[RoundOut]
    contribution_ids: list[int]

    @classmethod
    def from_row(cls, job: Job) -> JobDetail:
        summary = JobSummary.model_validate(job).model_dump()
        return cls(
            **summary,
            round_records=[RoundOut.model_validate(r) for r in job.round_records],
            contribution_ids=[c.id for c in job.contributions],
        )


class Page(Schema):
    total: int
    limit: int
    offset: int


class JobPage(Page):
    items: list[JobSummary]


class ContributionTxs(Schema):
    submitted: TxRef
    seed_recorded: TxRef | None
    attested: TxRef | None
    finalized: TxRef | None


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

    @classmethod
    def from_row(cls, c: Contribution) -> ContributionOut:
        txs = ContributionTxs(
            submitted=TxRef(tx_hash=c.submit_tx, block_number=c.submit_block),
            seed_recorded=_tx(c.seed_tx, c.seed_recorded_block),
            attested=_tx(c.attest_tx, c.attest_block),
            finalized=_tx(c.finalize_tx, c.finalize_block),
        )
        fields = {name: getattr(c, name) for name in cls.model_fields if name != "transactions"}
        return cls(**fields, transactions=txs)


def _tx(tx_hash: str | None, block: int | None) -> TxRef | None:
    if tx_hash is None or block is None:
        return None
    return TxRef(tx_hash=tx_hash, block_number=block)
