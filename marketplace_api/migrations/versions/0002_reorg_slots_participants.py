"""Reorg safety and the wider read side: kept block hashes, the projection undo journal, job and
contribution ids on raw events, slots, participants (nodes and verifiers), verified job specs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from marketplace_api.sqltypes import Uint256

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(length=66)
ADDRESS = sa.String(length=42)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("chain_events") as batch:
        batch.add_column(sa.Column("job_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("contribution_id", sa.BigInteger(), nullable=True))
        batch.create_index(batch.f("ix_chain_events_job_id"), ["job_id"])
        batch.create_index(batch.f("ix_chain_events_contribution_id"), ["contribution_id"])
    _backfill_event_ids()

    with op.batch_alter_table("indexer_cursor") as batch:
        batch.add_column(
            sa.Column("final_block", sa.BigInteger(), server_default="-1", nullable=False)
        )
        # 1: the projections of 0001; the indexer replays stored events into newer ones.
        batch.add_column(
            sa.Column("projection_version", sa.Integer(), server_default="1", nullable=False)
        )
        batch.add_column(sa.Column("halted", sa.Text(), nullable=True))

    op.create_table(
        "indexed_blocks",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", HASH, nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_indexed_blocks")),
    )
    op.create_table(
        "projection_undo",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_key", sa.JSON(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projection_undo")),
    )
    op.create_index(op.f("ix_projection_undo_block_number"), "projection_undo", ["block_number"])
    op.create_table(
        "job_specs",
        sa.Column("spec_digest", HASH, nullable=False),
        sa.Column("spec_cid", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("spec_digest", name=op.f("pk_job_specs")),
    )
    op.create_index(op.f("ix_job_specs_model"), "job_specs", ["model"])
    op.create_table(
        "slots",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("node", ADDRESS, nullable=True),
        sa.Column("deadline", sa.BigInteger(), nullable=True),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("expired_claims", sa.Integer(), nullable=False),
        sa.Column("contribution_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_slots_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "round", "slot", name=op.f("pk_slots")),
    )
    amounts = ("staked", "locked", "unbonding", "node_earnings", "slashed")
    counts = ("submitted", "accepted", "rejected", "slash_count", "attestations")
    op.create_table(
        "participants",
        sa.Column("address", ADDRESS, nullable=False),
        *(sa.Column(name, Uint256(), nullable=False) for name in amounts),
        sa.Column("is_verifier", sa.Boolean(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in counts),
        sa.Column("failed_attestations", sa.Integer(), nullable=False),
        sa.Column("verifier_earnings", Uint256(), nullable=False),
        sa.Column("withdrawn", Uint256(), nullable=False),
        sa.Column("first_block", sa.BigInteger(), nullable=False),
        sa.Column("last_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_participants")),
    )


def _backfill_event_ids() -> None:
    """Events stored by 0001 get their job and contribution ids from their arguments."""
    events = sa.table(
        "chain_events",
        sa.column("id", sa.BigInteger()),
        sa.column("args", sa.JSON()),
        sa.column("job_id", sa.BigInteger()),
        sa.column("contribution_id", sa.BigInteger()),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(events.c.id, events.c.args)).all()
    for row_id, args in rows:
        job_id, contribution_id = args.get("jobId"), args.get("contributionId")
        if job_id is None and contribution_id is None:
            continue
        bind.execute(
            events.update()
            .where(events.c.id == row_id)
            .values(job_id=job_id, contribution_id=contribution_id)
        )


def downgrade() -> None:
    op.drop_table("participants")
    op.drop_table("slots")
    op.drop_index(op.f("ix_job_specs_model"), table_name="job_specs")
    op.drop_table("job_specs")
    op.drop_index(op.f("ix_projection_undo_block_number"), table_name="projection_undo")
    op.drop_table("projection_undo")
    op.drop_table("indexed_blocks")
    with op.batch_alter_table("indexer_cursor") as batch:
        batch.drop_column("halted")
        batch.drop_column("projection_version")
        batch.drop_column("final_block")
    with op.batch_alter_table("chain_events") as batch:
        batch.drop_index(batch.f("ix_chain_events_contribution_id"))
        batch.drop_index(batch.f("ix_chain_events_job_id"))
        batch.drop_column("contribution_id")
        batch.drop_column("job_id")
