"""Initial schema: raw chain events, indexer cursor, jobs, contributions, round records.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from marketplace_api.sqltypes import Uint256

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(length=66)
ADDRESS = sa.String(length=42)


def upgrade() -> None:
    op.create_table(
        "chain_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", HASH, nullable=False),
        sa.Column("tx_hash", HASH, nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(length=32), nullable=False),
        sa.Column("address", ADDRESS, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_events")),
        sa.UniqueConstraint(
            "block_hash", "log_index", name=op.f("uq_chain_events_block_hash_log_index")
        ),
    )
    op.create_index(op.f("ix_chain_events_block_number"), "chain_events", ["block_number"])
    op.create_index(op.f("ix_chain_events_name"), "chain_events", ["name"])

    op.create_table(
        "indexer_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", HASH, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_indexer_cursor")),
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("sponsor", ADDRESS, nullable=False),
        sa.Column("spec_digest", HASH, nullable=False),
        sa.Column("initial_model_digest", HASH, nullable=False),
        sa.Column("spec_cid", sa.Text(), nullable=False),
        sa.Column("initial_model_cid", sa.Text(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("slots_per_round", sa.Integer(), nullable=False),
        sa.Column("num_segments", sa.Integer(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("reward_per_slot", Uint256(), nullable=False),
        sa.Column("verifier_fee", Uint256(), nullable=False),
        sa.Column("claim_timeout", Uint256(), nullable=False),
        sa.Column("escrow", Uint256(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_round", sa.Integer(), nullable=False),
        sa.Column("current_model_digest", HASH, nullable=False),
        sa.Column("created_block", sa.BigInteger(), nullable=False),
        sa.Column("created_tx", HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_sponsor"), "jobs", ["sponsor"])
    op.create_index(op.f("ix_jobs_status"), "jobs", ["status"])

    op.create_table(
        "contributions",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("node", ADDRESS, nullable=False),
        sa.Column("output_digest", HASH, nullable=False),
        sa.Column("trace_root", HASH, nullable=False),
        sa.Column("output_cid", sa.Text(), nullable=False),
        sa.Column("manifest_cid", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("submit_block", sa.BigInteger(), nullable=False),
        sa.Column("submit_tx", HASH, nullable=False),
        sa.Column("seed", HASH, nullable=True),
        sa.Column("seed_block", sa.BigInteger(), nullable=True),
        sa.Column("verifier", ADDRESS, nullable=True),
        sa.Column("seed_recorded_block", sa.BigInteger(), nullable=True),
        sa.Column("seed_tx", HASH, nullable=True),
        sa.Column("verdict", sa.String(length=8), nullable=True),
        sa.Column("report_cid", sa.Text(), nullable=True),
        sa.Column("attest_block", sa.BigInteger(), nullable=True),
        sa.Column("attest_tx", HASH, nullable=True),
        sa.Column("node_reward", Uint256(), nullable=True),
        sa.Column("verifier_payment", Uint256(), nullable=True),
        sa.Column("slashed", Uint256(), nullable=True),
        sa.Column("finalize_block", sa.BigInteger(), nullable=True),
        sa.Column("finalize_tx", HASH, nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_contributions_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contributions")),
    )
    for column in ("job_id", "node", "status", "verifier"):
        op.create_index(op.f(f"ix_contributions_{column}"), "contributions", [column])

    op.create_table(
        "round_records",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("round", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_digest", HASH, nullable=False),
        sa.Column("model_cid", sa.Text(), nullable=False),
        sa.Column("validation_loss_micro", Uint256(), nullable=False),
        sa.Column("validation_loss", sa.Float(), nullable=False),
        sa.Column("poster", ADDRESS, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", HASH, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_round_records_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "round", name=op.f("pk_round_records")),
    )


def downgrade() -> None:
    op.drop_table("round_records")
    op.drop_table("contributions")
    op.drop_table("jobs")
    op.drop_table("indexer_cursor")
    op.drop_table("chain_events")
