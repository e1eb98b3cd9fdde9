"""Outbox claim indexes: the queued rows by due time, and by contact.

The sender claims due rows that no earlier queued row of the same contact holds back.
Without these, PostgreSQL checked that for each candidate by scanning every queued row
(measured: 0.7 s a claim with 2,000 rows queued, about 10 ms with the indexes).

Revision ID: 0015_outbox_claim_indexes
Revises: 0014_step_event_partitions
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_outbox_claim_indexes"
down_revision: str | None = "0014_step_event_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = "status = 'queued'"
INDEXES = {
    "ix_outbound_messages_queued_due": ["next_attempt_at", "id"],
    "ix_outbound_messages_queued_contact": ["contact_id", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(
            name,
            "outbound_messages",
            columns,
            postgresql_where=sa.text(QUEUED),
            sqlite_where=sa.text(QUEUED),
        )


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="outbound_messages")
