"""The safari app's tables, on its own branch.

A database made before apps had their own branches already holds these tables (the
framework's line used to create them): each is created only when missing, the old
``receipt_counters`` move into the framework's ``document_counters`` (series ``RCT``),
and every booking made in a flow session becomes the ``booking`` goal event analytics
now count conversions from. Every row is kept.

Revision ID: safari_0001_tables
Revises:
Depends on: 0010_apps
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storage.base

revision: str = "safari_0001_tables"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("safari",)
depends_on: str | Sequence[str] | None = "0010_apps"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_WHEN = storage.base.UTCDateTime(timezone=True)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


def _has_table(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def _tours() -> None:
    op.create_table(
        "tours",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("meeting_point", sa.String(length=200), nullable=False),
        sa.Column("meeting_address", sa.String(length=300), nullable=False),
        sa.Column("meeting_latitude", sa.Float(), nullable=True),
        sa.Column("meeting_longitude", sa.Float(), nullable=True),
        sa.Column("guide_name", sa.String(length=120), nullable=False),
        sa.Column("guide_phone", sa.String(length=32), nullable=False),
        sa.Column("price_per_person", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("packing_list", _JSON, nullable=False),
        sa.Column("clothing_advice", sa.Text(), nullable=False),
        sa.Column("weather_outlook", sa.Text(), nullable=False),
        sa.Column("park_rules", sa.Text(), nullable=False),
        sa.Column("safety_guidelines", sa.Text(), nullable=False),
        sa.Column("emergency_contacts", _JSON, nullable=False),
        sa.Column("cancellation_policy", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tours")),
        sa.UniqueConstraint("code", name=op.f("uq_tours_code")),
    )


def _customers() -> None:
    op.create_table(
        "customers",
        sa.Column("id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_customers_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("contact_id", name=op.f("uq_customers_contact_id")),
    )


def _departures() -> None:
    op.create_table(
        "departures",
        sa.Column("id", _ID, nullable=False),
        sa.Column("tour_id", _ID, nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("seats_left", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "seats_left >= 0 AND seats_left <= capacity", name=op.f("ck_departures_seats")
        ),
        sa.ForeignKeyConstraint(
            ["tour_id"], ["tours.id"], name=op.f("fk_departures_tour_id_tours"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_departures")),
        sa.UniqueConstraint("tour_id", "date", name=op.f("uq_departures_tour_id_date")),
    )
    op.create_index(op.f("ix_departures_date"), "departures", ["date"])


def _bookings() -> None:
    op.create_table(
        "bookings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("tour_id", _ID, nullable=False),
        sa.Column("departure_id", _ID, nullable=False),
        sa.Column("travelers_count", sa.Integer(), nullable=False),
        sa.Column("total_cost", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            _enum("booking_status", "pending", "confirmed", "cancelled", "completed"),
            nullable=False,
        ),
        sa.Column("cancelled_at", _WHEN, nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_bookings_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["departure_id"], ["departures.id"], name=op.f("fk_bookings_departure_id_departures")
        ),
        sa.ForeignKeyConstraint(["tour_id"], ["tours.id"], name=op.f("fk_bookings_tour_id_tours")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint("reference", name=op.f("uq_bookings_reference")),
    )
    op.create_index(op.f("ix_bookings_customer_id"), "bookings", ["customer_id"])
    op.create_index(
        op.f("ix_bookings_departure_id_status"), "bookings", ["departure_id", "status"]
    )


def _payments() -> None:
    op.create_table(
        "payments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("booking_id", _ID, nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "method", _enum("payment_method", "omari", "bank_transfer", "cash"), nullable=False
        ),
        sa.Column(
            "status",
            _enum("payment_status", "pending", "approved", "confirmed", "rejected", "refunded"),
            nullable=False,
        ),
        sa.Column("provider_reference", sa.String(length=120), nullable=True),
        sa.Column("mobile_number", sa.String(length=32), nullable=True),
        sa.Column("proof_file_id", _ID, nullable=True),
        sa.Column("proof_media_id", sa.String(length=256), nullable=True),
        sa.Column("paid_at", _WHEN, nullable=True),
        sa.Column("approved_by", sa.String(length=120), nullable=True),
        sa.Column("approved_at", _WHEN, nullable=True),
        sa.Column("rejected_reason", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_payments_booking_id_bookings")
        ),
        sa.ForeignKeyConstraint(
            ["proof_file_id"],
            ["stored_files.id"],
            name=op.f("fk_payments_proof_file_id_stored_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "method", "provider_reference", name=op.f("uq_payments_method_provider_reference")
        ),
    )
    op.create_index(op.f("ix_payments_booking_id"), "payments", ["booking_id"])


def _travelers() -> None:
    op.create_table(
        "travelers",
        sa.Column("id", _ID, nullable=False),
        sa.Column("booking_id", _ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column(
            "id_status",
            _enum("id_status", "missing", "received", "verified", "rejected"),
            nullable=False,
        ),
        sa.Column("id_file_id", _ID, nullable=True),
        sa.Column("id_media_id", sa.String(length=256), nullable=True),
        sa.Column("id_uploaded_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_travelers_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["id_file_id"],
            ["stored_files.id"],
            name=op.f("fk_travelers_id_file_id_stored_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_travelers")),
        sa.UniqueConstraint(
            "booking_id", "position", name=op.f("uq_travelers_booking_id_position")
        ),
    )


def _provider_events() -> None:
    op.create_table(
        "provider_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=120), nullable=False),
        sa.Column("payment_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("received_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_provider_events_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_events")),
        sa.UniqueConstraint(
            "provider", "event_id", name=op.f("uq_provider_events_provider_event_id")
        ),
    )
    op.create_index(op.f("ix_provider_events_payment_id"), "provider_events", ["payment_id"])


def _receipts() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("payment_id", _ID, nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("issued_at", _WHEN, nullable=False),
        sa.Column("file_id", _ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["stored_files.id"], name=op.f("fk_receipts_file_id_stored_files")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_receipts_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint("number", name=op.f("uq_receipts_number")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_receipts_payment_id")),
        sa.UniqueConstraint("year", "seq", name=op.f("uq_receipts_year_seq")),
    )


def _notifications() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", _ID, nullable=False),
        sa.Column("booking_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_notifications_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint(
            "booking_id", "kind", "key", name=op.f("uq_notifications_booking_id_kind_key")
        ),
    )


# In the order their foreign keys need.
_TABLES = (
    ("tours", _tours),
    ("customers", _customers),
    ("departures", _departures),
    ("bookings", _bookings),
    ("payments", _payments),
    ("travelers", _travelers),
    ("provider_events", _provider_events),
    ("receipts", _receipts),
    ("notifications", _notifications),
)

# Each booking made in a flow session is that session's conversion (the rule analytics
# used before goals: a booking made by the session's contact while the session ran).
_BACKFILL_GOALS = """
INSERT INTO goal_events (goal, contact_id, session_id, reference, at)
SELECT 'booking', c.contact_id,
       (SELECT s.id FROM flow_sessions s
         WHERE s.contact_id = c.contact_id
           AND s.started_at <= b.created_at
           AND s.completed_at >= b.created_at
         ORDER BY s.started_at, s.id LIMIT 1),
       b.reference, b.created_at
  FROM bookings b JOIN customers c ON c.id = b.customer_id
 WHERE c.contact_id IS NOT NULL
 ORDER BY b.id
"""


def upgrade() -> None:
    for name, create in _TABLES:
        if not _has_table(name):
            create()
    if _has_table("receipt_counters"):
        op.execute(
            "INSERT INTO document_counters (series, year, last_seq) "
            "SELECT 'RCT', year, last_seq FROM receipt_counters"
        )
        op.drop_table("receipt_counters")
    op.execute(_BACKFILL_GOALS)


def downgrade() -> None:
    op.execute("DELETE FROM goal_events WHERE goal = 'booking'")
    op.execute("DELETE FROM document_counters WHERE series = 'RCT'")
    for name, _create in reversed(_TABLES):
        op.drop_table(name)
