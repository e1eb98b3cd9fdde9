"""Analytics: report indexes, KPI totals on snapshots, per-step snapshot rows.

Revision ID: 0007_analytics_indexes
Revises: 0002_channel (before apps had their own branches: 0006_notifications)
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_analytics_indexes"
down_revision: str | None = "0002_channel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SNAPSHOT_TOTALS = (
    "active_sessions",
    "total_retries",
    "retried_sessions",
    "recovered_sessions",
    "handed_off_sessions",
    "booked_sessions",
    "returning_sessions",
)


def upgrade() -> None:
    op.create_table(
        "flow_step_metric_snapshots",
        sa.Column("id", _ID, nullable=False),
        sa.Column("snapshot_id", _ID, nullable=False),
        sa.Column("step_name", sa.String(length=100), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("time_spent_total", sa.Float(), nullable=False),
        sa.Column("time_spent_count", sa.Integer(), nullable=False),
        sa.Column("avg_offset_seconds", sa.Float(), nullable=True),
        sa.Column("abandoned_here", sa.Integer(), nullable=False),
        sa.Column("errored_here", sa.Integer(), nullable=False),
        sa.Column("handed_off_here", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["flow_metric_snapshots.id"],
            name=op.f("fk_flow_step_metric_snapshots_snapshot_id_flow_metric_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_step_metric_snapshots")),
        sa.UniqueConstraint(
            "snapshot_id",
            "step_name",
            name=op.f("uq_flow_step_metric_snapshots_snapshot_id_step_name"),
        ),
    )
    with op.batch_alter_table("flow_metric_snapshots", schema=None) as batch_op:
        for name in _SNAPSHOT_TOTALS:
            batch_op.add_column(
                sa.Column(name, sa.Integer(), server_default="0", nullable=False)
            )
    with op.batch_alter_table("flow_step_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flow_step_events_action_timestamp"),
            ["action", "timestamp"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_flow_step_events_session_id_step_name_action_timestamp_time_spent"),
            ["session_id", "step_name", "action", "timestamp", "time_spent"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("flow_step_events", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_flow_step_events_session_id_step_name_action_timestamp_time_spent")
        )
        batch_op.drop_index(batch_op.f("ix_flow_step_events_action_timestamp"))
    with op.batch_alter_table("flow_metric_snapshots", schema=None) as batch_op:
        for name in reversed(_SNAPSHOT_TOTALS):
            batch_op.drop_column(name)
    op.drop_table("flow_step_metric_snapshots")
