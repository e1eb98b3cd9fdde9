"""WhatsApp channel: message timestamps, send bookkeeping, ignored updates.

Revision ID: 0002_channel
Revises: 0001_framework
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storage.base

revision: str = "0002_channel"
down_revision: str | None = "0001_framework"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ignored_updates",
        sa.Column("id", _ID, nullable=False),
        sa.Column("received_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("what", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ignored_updates")),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sent_at", storage.base.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_code", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("ambiguous_resends", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("in_flight", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("media_id", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("fallback", _JSON, nullable=True))
        batch_op.add_column(
            sa.Column("sent_at", storage.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("status_at", storage.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        for column in (
            "status_at", "sent_at", "fallback", "media_id", "in_flight", "ambiguous_resends",
            "error_code",
        ):  # fmt: skip
            batch_op.drop_column(column)
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("sent_at")
    op.drop_table("ignored_updates")
