"""The restaurant's reservations, on its own branch.

Revision ID: restaurant_0001
Revises:
Depends on: 0010_apps
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.base

revision: str = "restaurant_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("restaurant",)
depends_on: str | Sequence[str] | None = "0010_apps"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CONFIRMED = sa.text("status = 'confirmed'")


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", _ID, nullable=False),
        sa.Column("reference", sa.String(length=12), nullable=False),
        sa.Column("contact_id", _ID, nullable=True),
        sa.Column("table_code", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sitting", sa.String(length=5), nullable=False),
        sa.Column("party_size", sa.Integer(), nullable=False),
        sa.Column("guest_name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("set_menu", sa.Boolean(), nullable=False),
        sa.Column("requests", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "confirmed",
                "cancelled",
                name="reservation_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("created_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("party_size >= 1", name=op.f("ck_reservations_party_size")),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_reservations_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.UniqueConstraint("reference", name=op.f("uq_reservations_reference")),
    )
    op.create_index(op.f("ix_reservations_contact_id"), "reservations", ["contact_id"])
    op.create_index(op.f("ix_reservations_day_sitting"), "reservations", ["day", "sitting"])
    # One confirmed reservation per table and sitting: a double-booked table is impossible.
    op.create_index(
        "uq_reservations_table_code_day_sitting",
        "reservations",
        ["table_code", "day", "sitting"],
        unique=True,
        postgresql_where=_CONFIRMED,
        sqlite_where=_CONFIRMED,
    )


def downgrade() -> None:
    op.drop_table("reservations")
