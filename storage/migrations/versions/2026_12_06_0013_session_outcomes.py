"""Session outcomes: ``flow_sessions.outcome`` and the snapshots' outcome counts.

A completed session was the goal met, cancelled by the customer, or nothing to do;
completion rates count only the first.

Revision ID: 0013_session_outcomes
Revises: 0012_media_downloads
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_session_outcomes"
down_revision: str | None = "0012_media_downloads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode: both tables are referenced (step events, step
    # snapshots), and a batch copy on SQLite would drop and recreate them.
    op.add_column("flow_sessions", sa.Column("outcome", sa.String(length=32), nullable=True))
    for name in ("cancelled_sessions", "nothing_to_do_sessions"):
        op.add_column(
            "flow_metric_snapshots",
            sa.Column(name, sa.Integer(), nullable=False, server_default="0"),
        )


def downgrade() -> None:
    for name in ("nothing_to_do_sessions", "cancelled_sessions"):
        op.drop_column("flow_metric_snapshots", name)
    op.drop_column("flow_sessions", "outcome")
