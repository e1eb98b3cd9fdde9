"""Operator console: operators, login sessions, login attempts, and the indexes of its
lists (newest flow sessions; sessions stopped at a step; conversations waiting for a
person).

Revision ID: 0008_console
Revises: 0007_analytics_indexes
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.base

revision: str = "0008_console"
down_revision: str | None = "0007_analytics_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = storage.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", _ID, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "viewer",
                "agent",
                "admin",
                name="operator_role",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("password_changed_at", _AT, nullable=False),
        sa.Column("last_login_at", _AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("username", name=op.f("uq_operators_username")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("operator_id", _ID, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("last_seen_at", _AT, nullable=False),
        sa.Column("expires_at", _AT, nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_console_sessions_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_sessions_token_hash")),
    )
    op.create_index(
        op.f("ix_console_sessions_expires_at"), "console_sessions", ["expires_at"]
    )
    op.create_index(
        op.f("ix_console_sessions_operator_id"), "console_sessions", ["operator_id"]
    )
    op.create_table(
        "console_login_attempts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_login_attempts")),
    )
    op.create_index(
        op.f("ix_console_login_attempts_ip_at"), "console_login_attempts", ["ip", "at"]
    )
    op.create_index(
        op.f("ix_console_login_attempts_username_at"),
        "console_login_attempts",
        ["username", "at"],
    )
    op.create_index(op.f("ix_flow_sessions_started_at"), "flow_sessions", ["started_at"])
    op.create_index(
        op.f("ix_flow_sessions_flow_name_current_step_started_at"),
        "flow_sessions",
        ["flow_name", "current_step", "started_at"],
    )
    waiting = sa.text("handed_off_at IS NOT NULL")
    op.create_index(
        op.f("ix_conversations_handed_off_at"),
        "conversations",
        ["handed_off_at"],
        postgresql_where=waiting,
        sqlite_where=waiting,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_conversations_handed_off_at"), table_name="conversations")
    op.drop_index(
        op.f("ix_flow_sessions_flow_name_current_step_started_at"), table_name="flow_sessions"
    )
    op.drop_index(op.f("ix_flow_sessions_started_at"), table_name="flow_sessions")
    op.drop_table("console_login_attempts")
    op.drop_table("console_sessions")
    op.drop_table("operators")
