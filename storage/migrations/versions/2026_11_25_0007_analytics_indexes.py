"""Indexes for the analytics reports (filled in by the analytics work).

Revision ID: 0007_analytics_indexes
Revises: 0006_notifications
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007_analytics_indexes"
down_revision: str | None = "0006_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
