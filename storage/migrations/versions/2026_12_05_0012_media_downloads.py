"""Inbound media downloads: the ``media_downloads`` queue and ``inbound_messages.held``.

Revision ID: 0012_media_downloads
Revises: 0011_contact_origin
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.base

revision: str = "0012_media_downloads"
down_revision: str | None = "0011_contact_origin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_STATUSES = ("pending", "stored", "refused", "failed")


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode: on SQLite a batch copy drops and recreates
    # ``inbound_messages``, and ON DELETE SET NULL would empty every outbound reference.
    op.add_column(
        "inbound_messages",
        sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "media_downloads",
        sa.Column("id", _ID, nullable=False),
        sa.Column("inbound_message_id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("media_id", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("mime_type", sa.String(length=127), nullable=False),
        sa.Column("sha256", sa.String(length=128), nullable=True),
        sa.Column("animated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column(
            "status",
            sa.Enum(
                *_STATUSES,
                name="media_download_status",
                native_enum=False,
                create_constraint=True,
                length=7,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("stored_file_id", _ID, nullable=True),
        sa.Column("created_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_media_downloads_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["inbound_message_id"],
            ["inbound_messages.id"],
            name=op.f("fk_media_downloads_inbound_message_id_inbound_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stored_file_id"],
            ["stored_files.id"],
            name=op.f("fk_media_downloads_stored_file_id_stored_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_downloads")),
        sa.UniqueConstraint(
            "inbound_message_id", name=op.f("uq_media_downloads_inbound_message_id")
        ),
    )
    op.create_index(
        op.f("ix_media_downloads_contact_id"), "media_downloads", ["contact_id"], unique=False
    )
    op.create_index(
        op.f("ix_media_downloads_status_next_attempt_at"),
        "media_downloads",
        ["status", "next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_media_downloads_status_next_attempt_at"), table_name="media_downloads")
    op.drop_index(op.f("ix_media_downloads_contact_id"), table_name="media_downloads")
    op.drop_table("media_downloads")
    op.drop_column("inbound_messages", "held")
