"""Apps own their tables: the framework keeps the audit log, generic document counters
and the goal events analytics count conversions from; step events get a stable error
code.

Until this revision every database was migrated along one line that also created one
app's tables; that app now has its own branch. A database from before keeps its
``audit_log`` (created here only when missing) and its snapshots' conversion counts
(the column is renamed).

Revision ID: 0010_apps
Revises: 0009_pair_rate_strikes
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.base

revision: str = "0010_apps"
down_revision: str | None = "0009_pair_rate_strikes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _has_table(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    if not _has_table("audit_log"):
        op.create_table(
            "audit_log",
            sa.Column("id", _ID, nullable=False),
            sa.Column("at", storage.base.UTCDateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(length=120), nullable=False),
            sa.Column("action", sa.String(length=80), nullable=False),
            sa.Column("target", sa.String(length=200), nullable=False),
            sa.Column("details", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        )
        op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_table(
        "document_counters",
        sa.Column("series", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("series", "year", name=op.f("pk_document_counters")),
    )
    op.create_table(
        "goal_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("goal", sa.String(length=60), nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("session_id", _ID, nullable=True),
        sa.Column("reference", sa.String(length=120), nullable=True),
        sa.Column("at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_goal_events_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["flow_sessions.id"],
            name=op.f("fk_goal_events_session_id_flow_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goal_events")),
    )
    op.create_index(op.f("ix_goal_events_contact_id"), "goal_events", ["contact_id"])
    op.create_index(op.f("ix_goal_events_session_id_goal"), "goal_events", ["session_id", "goal"])
    op.create_index(op.f("ix_goal_events_goal_at"), "goal_events", ["goal", "at"])
    # A plain ADD COLUMN (no table rebuild, also on SQLite): this table is the big one.
    op.add_column("flow_step_events", sa.Column("error_code", sa.String(length=80)))
    if "booked_sessions" in _columns("flow_metric_snapshots"):
        # A plain RENAME COLUMN, not a batch: on SQLite a batch rebuilds the table, and
        # dropping the old one cascades to flow_step_metric_snapshots (rows lost).
        op.alter_column(
            "flow_metric_snapshots", "booked_sessions", new_column_name="converted_sessions"
        )


def downgrade() -> None:
    with op.batch_alter_table("flow_step_events") as batch:
        batch.drop_column("error_code")
    op.alter_column(
        "flow_metric_snapshots", "converted_sessions", new_column_name="booked_sessions"
    )
    op.drop_table("goal_events")
    op.drop_table("document_counters")
