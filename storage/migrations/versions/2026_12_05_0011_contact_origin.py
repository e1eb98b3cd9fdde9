"""Where a contact came from: the click-to-WhatsApp ad (referral) that brought them, and
whether they are a sandbox contact (the console's chat simulator talks only as those).

Revision ID: 0011_contact_origin
Revises: 0010_apps
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storage.base

revision: str = "0011_contact_origin"
down_revision: str | None = "0010_apps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode: on SQLite a batch copy drops and recreates
    # ``contacts``, and ON DELETE SET NULL would empty every reference to a contact.
    op.add_column(
        "contacts",
        sa.Column("sandbox", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("contacts", sa.Column("referral", _JSON, nullable=True))
    op.add_column(
        "contacts",
        sa.Column("referred_at", storage.base.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    for column in ("referred_at", "referral", "sandbox"):
        op.drop_column("contacts", column)
