"""Outbound rows count their consecutive pair-rate limits (131056) for Meta's 4^X backoff.

Revision ID: 0009_pair_rate_strikes
Revises: 0008_console
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_pair_rate_strikes"
down_revision: str | None = "0008_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(
            sa.Column("pair_rate_strikes", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("pair_rate_strikes")
