"""A contribution's proof bundle, assembled from the projections and the raw events (shared by
the JSON route and the dashboard page)."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from marketplace_api.models import (
    ChainEvent,
    Contribution,
    ContributionStatus,
    Job,
    RoundRecord,
    Verdict,
)
from marketplace_api.schemas import (
    ContributionOut,
    ContributionTxs,
    EventOut,
    ProofBundle,
    TxRef,
)
from opentrain.protocol.sampling import sample_indices

# Event names that belong to a contribution's dispute process (contracts in progress may name
# them differently; anything matching is shown as a dispute, everything is in ``events``).
DISPUTE_WORDS = ("Dispute", "Challenge", "Vote", "Committee", "Appeal")


def audit_command(contribution_id: int) -> str:
    return f"opentrain audit contribution {contribution_id}"


# One row with everything but the events: the contribution, its job's commitments, and the
# aggregate G_r it started from (posted for round r - 1; for round 0 it is the initial model).
_BUNDLE = (
    select(
        Contribution.__table__,
        Job.spec_digest,
        Job.spec_cid,
        Job.num_segments,
        Job.sample_count,
        Job.initial_model_digest,
        RoundRecord.model_digest.label("previous_aggregate"),
    )
    .join(Job, Job.id == Contribution.job_id)
    .outerjoin(
        RoundRecord,
        and_(
            RoundRecord.job_id == Contribution.job_id, RoundRecord.round == Contribution.round - 1
        ),
    )
    .where(Contribution.id == bindparam("contribution_id"))
)
_EVENTS = (
    select(
        ChainEvent.name,
        ChainEvent.contract,
        ChainEvent.address,
        ChainEvent.block_number,
        ChainEvent.block_hash,
        ChainEvent.tx_hash,
        ChainEvent.log_index,
        ChainEvent.args,
    )
    .where(ChainEvent.contribution_id == bindparam("contribution_id"))
    .order_by(ChainEvent.block_number, ChainEvent.tx_index, ChainEvent.log_index)
)


def proof_bundle(session: Session, contribution_id: int) -> ProofBundle | None:
    """The bundle from two indexed queries, built without re-validating what the database
    returns (the API's hottest read: a proof page or an auditor's fetch)."""
    params = {"contribution_id": contribution_id}
    row = session.execute(_BUNDLE, params).mappings().one_or_none()
    if row is None:
        return None
    events = [EventOut.model_construct(**e) for e in session.execute(_EVENTS, params).mappings()]
    sampled = None
    if row["seed"] is not None and row["sample_count"] <= row["num_segments"]:
        seed = bytes.fromhex(row["seed"][2:])
        sampled = sample_indices(seed, row["num_segments"], row["sample_count"])
    txs = ContributionTxs.model_construct(
        submitted=TxRef.model_construct(tx_hash=row["submit_tx"], block_number=row["submit_block"]),
        seed_recorded=_tx(row["seed_tx"], row["seed_recorded_block"]),
        attested=_tx(row["attest_tx"], row["attest_block"]),
        finalized=_tx(row["finalize_tx"], row["finalize_block"]),
    )
    fields = {n: row[n] for n in ContributionOut.model_fields if n != "transactions"}
    fields["status"] = ContributionStatus(fields["status"])
    fields["verdict"] = None if fields["verdict"] is None else Verdict(fields["verdict"])
    round_model = row["initial_model_digest"] if row["round"] == 0 else row["previous_aggregate"]
    return ProofBundle.model_construct(
        **fields,
        transactions=txs,
        spec_digest=row["spec_digest"],
        spec_cid=row["spec_cid"],
        round_model_digest=round_model,
        num_segments=row["num_segments"],
        sample_count=row["sample_count"],
        sampled_segments=sampled,
        attestations=[e for e in events if e.name == "Attested"],
        disputes=[e for e in events if any(w in e.name for w in DISPUTE_WORDS)],
        events=events,
        audit_command=audit_command(contribution_id),
    )


def _tx(tx_hash: str | None, block: int | None) -> TxRef | None:
    if tx_hash is None or block is None:
        return None
    return TxRef.model_construct(tx_hash=tx_hash, block_number=block)
