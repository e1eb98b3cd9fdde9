"""Payments keep the bank reference the customer typed after their proof of payment.

Revision ID: safari_0003_customer_reference
Revises: safari_0002_tour_short_names
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "safari_0003_customer_reference"
down_revision: str | None = "safari_0002_tour_short_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy of a table receipts and provider events reference).
    op.add_column("payments", sa.Column("customer_reference", sa.String(length=35), nullable=True))


def downgrade() -> None:
    op.drop_column("payments", "customer_reference")
