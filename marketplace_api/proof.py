"""A contribution's proof bundle, assembled from the projections and the raw events (shared by
the JSON route and the dashboard page)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, bindparam, select
from sqlalchemy.orm import Session

from marketplace_api.encode import amount_fields, dumps
from marketplace_api.models import (
    ChainEvent,
    Contribution,
    ContributionStatus,
    Job,
    RoundRecord,
    Verdict,
)
from marketplace_api.queries import core_connection
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


# One statement, one round trip: the contribution, its job's commitments, the aggregate G_r it
# started from (posted for round r - 1; for round 0 it is the initial model), and its events in
# chain order, one row per event (LEFT JOIN: a contribution without events is one row of nulls
# for them). The bundle's columns repeat on each row; a handful of events, so that is cheaper
# than a second round trip.
_EVENT_COLUMNS = ("name", "contract", "address", "block_number", "block_hash", "tx_hash",
                  "log_index", "args")  # fmt: skip
_BUNDLE = (
    select(
        Contribution.__table__,
        Job.spec_digest,
        Job.spec_cid,
        Job.num_segments,
        Job.sample_count,
        Job.initial_model_digest,
        RoundRecord.model_digest.label("previous_aggregate"),
        ChainEvent.id.label("event_id"),
        *(getattr(ChainEvent, n).label(f"event_{n}") for n in _EVENT_COLUMNS),
    )
    .join(Job, Job.id == Contribution.job_id)
    .outerjoin(
        RoundRecord,
        and_(
            RoundRecord.job_id == Contribution.job_id, RoundRecord.round == Contribution.round - 1
        ),
    )
    .outerjoin(ChainEvent, ChainEvent.contribution_id == Contribution.id)
    .where(Contribution.id == bindparam("contribution_id"))
    .order_by(ChainEvent.block_number, ChainEvent.tx_index, ChainEvent.log_index)
)
_EVENT_KEYS = tuple((n, f"event_{n}") for n in _EVENT_COLUMNS)


def _rows(bind: Session | Connection, contribution_id: int) -> Sequence[RowMapping]:
    params = {"contribution_id": contribution_id}
    return core_connection(bind).execute(_BUNDLE, params).mappings().all()


def _fields(rows: Sequence[RowMapping], contribution_id: int) -> dict[str, Any]:
    """The bundle as plain values in ``ProofBundle``'s field order (amounts still ints, nested
    objects as dicts)."""
    row = rows[0]
    events = [
        {name: r[key] for name, key in _EVENT_KEYS} for r in rows if r["event_id"] is not None
    ]
    sampled = None
    if row["seed"] is not None and row["sample_count"] <= row["num_segments"]:
        seed = bytes.fromhex(row["seed"][2:])
        sampled = sample_indices(seed, row["num_segments"], row["sample_count"])
    values = {n: row[n] for n in _CONTRIBUTION_COLUMNS}
    values["transactions"] = {
        "submitted": {"tx_hash": row["submit_tx"], "block_number": row["submit_block"]},
        "seed_recorded": _tx(row["seed_tx"], row["seed_recorded_block"]),
        "attested": _tx(row["attest_tx"], row["attest_block"]),
        "finalized": _tx(row["finalize_tx"], row["finalize_block"]),
    }
    round_model = row["initial_model_digest"] if row["round"] == 0 else row["previous_aggregate"]
    values.update(
        spec_digest=row["spec_digest"],
        spec_cid=row["spec_cid"],
        round_model_digest=round_model,
        num_segments=row["num_segments"],
        sample_count=row["sample_count"],
        sampled_segments=sampled,
        attestations=[e for e in events if e["name"] == "Attested"],
        disputes=[e for e in events if any(w in e["name"] for w in DISPUTE_WORDS)],
        events=events,
        audit_command=audit_command(contribution_id),
    )
    return {name: values[name] for name in ProofBundle.model_fields}


_CONTRIBUTION_COLUMNS = tuple(n for n in ContributionOut.model_fields if n != "transactions")


def proof_bundle(bind: Session | Connection, contribution_id: int) -> ProofBundle | None:
    """The bundle from one indexed statement, as the response model (the dashboard's page),
    built without re-validating what the database returns."""
    rows = _rows(bind, contribution_id)
    if not rows:
        return None
    fields = _fields(rows, contribution_id)
    fields["status"] = ContributionStatus(fields["status"])
    fields["verdict"] = None if fields["verdict"] is None else Verdict(fields["verdict"])
    txs: dict[str, Any] = {
        k: None if v is None else TxRef.model_construct(**v)
        for k, v in fields["transactions"].items()
    }
    fields["transactions"] = ContributionTxs.model_construct(None, **txs)
    events = {id(e): EventOut.model_construct(**e) for e in fields["events"]}
    for name in ("attestations", "disputes", "events"):
        fields[name] = [events[id(e)] for e in fields[name]]
    return ProofBundle.model_construct(**fields)


def proof_bundle_json(bind: Session | Connection, contribution_id: int) -> bytes | None:
    """The bundle's JSON body straight from the rows (the API's hottest uncached read: a
    proof page or an auditor's fetch), equal to ``proof_bundle(...).model_dump_json()``."""
    rows = _rows(bind, contribution_id)
    if not rows:
        return None
    fields = _fields(rows, contribution_id)
    for name in _AMOUNTS:
        if fields[name] is not None:
            fields[name] = str(fields[name])
    return dumps(fields)


_AMOUNTS = amount_fields(ProofBundle)


def _tx(tx_hash: str | None, block: int | None) -> dict[str, Any] | None:
    if tx_hash is None or block is None:
        return None
    return {"tx_hash": tx_hash, "block_number": block}
