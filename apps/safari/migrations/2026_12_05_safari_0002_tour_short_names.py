"""Tours get a short name for list titles (WhatsApp cuts them at 24 characters).

Revision ID: safari_0002_tour_short_names
Revises: safari_0001_tables
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "safari_0002_tour_short_names"
down_revision: str | None = "safari_0001_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy of a table others reference).
    op.add_column("tours", sa.Column("short_name", sa.String(length=24), nullable=True))


def downgrade() -> None:
    op.drop_column("tours", "short_name")
