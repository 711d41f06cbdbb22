"""Indexes that serve the API's lists and proof bundles in order: (filter, id) for the
newest-first lists of jobs and contributions, (contribution, chain order) for a contribution's
events; they replace the single-column indexes they start with.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, old single-column index, new index, its columns)
REPLACED = (
    ("jobs", "ix_jobs_status", "ix_jobs_status_id", ["status", "id"]),
    ("jobs", "ix_jobs_sponsor", "ix_jobs_sponsor_id", ["sponsor", "id"]),
    ("contributions", "ix_contributions_job_id", "ix_contributions_job_id_id", ["job_id", "id"]),
    ("contributions", "ix_contributions_node", "ix_contributions_node_id", ["node", "id"]),
    (
        "contributions",
        "ix_contributions_verifier",
        "ix_contributions_verifier_id",
        ["verifier", "id"],
    ),
    ("contributions", "ix_contributions_status", "ix_contributions_status_id", ["status", "id"]),
    (
        "chain_events",
        "ix_chain_events_contribution_id",
        "ix_chain_events_contribution_order",
        ["contribution_id", "block_number", "tx_index", "log_index"],
    ),
)


def upgrade() -> None:
    for table, old, new, columns in REPLACED:
        op.create_index(new, table, columns)
        op.drop_index(old, table_name=table)
    # Fresh statistics, so the planner picks the new indexes on a database already full.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE jobs, contributions, chain_events")
    else:
        op.execute("ANALYZE")


def downgrade() -> None:
    for table, old, new, columns in reversed(REPLACED):
        op.create_index(old, table, columns[:1])
        op.drop_index(new, table_name=table)
