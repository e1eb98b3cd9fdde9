"""The safari app's own tables: the tour catalogue, customers, bookings, travellers,
payments, their receipts, the provider events and the notifications already sent.

They live in the app's own :class:`SafariBase` metadata and migration branch
(``apps/safari/migrations``, label ``safari``); the framework's tables (contacts,
stored files) are referred to by column, never by name, so the framework knows nothing
of these. The balance due is derived (total cost minus approved and confirmed
payments), never stored twice.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage import (
    BigIntId,
    Contact,
    JSONDoc,
    Money,
    StoredFile,
    TimestampMixin,
    UTCDateTime,
    new_metadata,
    str_enum,
    utcnow,
)

TOUR_SUMMARY: Final = "tour_summary"
ID_REMINDER: Final = "id_reminder"
RECEIPT_SERIES: Final = "RCT"


class SafariBase(DeclarativeBase):
    """Declarative base of the safari app's tables (its own metadata)."""

    metadata = new_metadata()


class Tour(TimestampMixin, SafariBase):
    """A tour the business sells, with everything a customer needs to prepare for it."""

    __tablename__ = "tours"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # What a list row's title shows (WhatsApp cuts titles at 24 characters); the full
    # name goes in the row's description. ``None``: the name, shortened.
    short_name: Mapped[str | None] = mapped_column(String(24))
    description: Mapped[str] = mapped_column(Text, default="")
    duration_minutes: Mapped[int] = mapped_column(Integer)
    # Local time in the business's timezone (a setting), not UTC.
    start_time: Mapped[dt.time] = mapped_column(Time())
    meeting_point: Mapped[str] = mapped_column(String(200))
    meeting_address: Mapped[str] = mapped_column(String(300), default="")
    meeting_latitude: Mapped[float | None] = mapped_column(Float)
    meeting_longitude: Mapped[float | None] = mapped_column(Float)
    guide_name: Mapped[str] = mapped_column(String(120), default="")
    guide_phone: Mapped[str] = mapped_column(String(32), default="")
    price_per_person: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    packing_list: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    clothing_advice: Mapped[str] = mapped_column(Text, default="")
    weather_outlook: Mapped[str] = mapped_column(Text, default="")
    park_rules: Mapped[str] = mapped_column(Text, default="")
    safety_guidelines: Mapped[str] = mapped_column(Text, default="")
    # [{"name": ..., "phone": ...}]
    emergency_contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    cancellation_policy: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    departures: Mapped[list[Departure]] = relationship(
        back_populates="tour", lazy="raise", order_by="Departure.date"
    )


class Departure(SafariBase):
    """One dated run of a tour with its capacity; ``seats_left`` never goes below zero."""

    __tablename__ = "departures"
    __table_args__ = (
        UniqueConstraint("tour_id", "date"),
        CheckConstraint("seats_left >= 0 AND seats_left <= capacity", name="seats"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    tour_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("tours.id", ondelete="CASCADE"))
    date: Mapped[dt.date] = mapped_column(Date(), index=True)
    capacity: Mapped[int] = mapped_column(Integer)
    seats_left: Mapped[int] = mapped_column(Integer)

    tour: Mapped[Tour] = relationship(back_populates="departures", lazy="raise")


class BookingStatus(enum.StrEnum):
    """Where a booking stands."""

    PENDING = "pending"  # booked, waiting for a first payment
    CONFIRMED = "confirmed"  # a payment was approved or confirmed
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class PaymentStatus(enum.StrEnum):
    """Where a payment stands."""

    PENDING = "pending"  # proof uploaded or mobile money initiated
    APPROVED = "approved"  # a manual payment an operator approved
    CONFIRMED = "confirmed"  # confirmed by the provider (mobile money)
    REJECTED = "rejected"
    REFUNDED = "refunded"


class PaymentMethod(enum.StrEnum):
    """How the customer paid."""

    OMARI = "omari"
    BANK_TRANSFER = "bank_transfer"  # proof of payment uploaded in the chat
    CASH = "cash"


class IdStatus(enum.StrEnum):
    """State of a traveler's ID document."""

    MISSING = "missing"
    RECEIVED = "received"
    VERIFIED = "verified"
    REJECTED = "rejected"


PAID_STATUSES = (PaymentStatus.APPROVED, PaymentStatus.CONFIRMED)


class Customer(TimestampMixin, SafariBase):
    """A person who books, linked to their WhatsApp contact."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey(Contact.id, ondelete="SET NULL"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))


class Booking(TimestampMixin, SafariBase):
    """A customer's booking of a departure for some travelers."""

    __tablename__ = "bookings"
    __table_args__ = (Index(None, "departure_id", "status"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    customer_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("customers.id"), index=True)
    tour_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("tours.id"))
    departure_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("departures.id"))
    travelers_count: Mapped[int] = mapped_column(Integer)
    total_cost: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[BookingStatus] = mapped_column(
        str_enum(BookingStatus, "booking_status"), default=BookingStatus.PENDING
    )
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    notes: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer] = relationship(lazy="raise")
    tour: Mapped[Tour] = relationship(lazy="raise")
    departure: Mapped[Departure] = relationship(lazy="raise")
    travelers: Mapped[list[Traveler]] = relationship(
        back_populates="booking", lazy="raise", order_by="Traveler.position"
    )
    payments: Mapped[list[Payment]] = relationship(
        back_populates="booking", lazy="raise", order_by="Payment.id"
    )


class Traveler(SafariBase):
    """One person on a booking, with their ID document."""

    __tablename__ = "travelers"
    __table_args__ = (UniqueConstraint("booking_id", "position"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("bookings.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    full_name: Mapped[str] = mapped_column(String(200))
    id_status: Mapped[IdStatus] = mapped_column(
        str_enum(IdStatus, "id_status"), default=IdStatus.MISSING
    )
    id_file_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey(StoredFile.id, ondelete="SET NULL")
    )
    id_media_id: Mapped[str | None] = mapped_column(String(256))
    id_uploaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    booking: Mapped[Booking] = relationship(back_populates="travelers", lazy="raise")


class Payment(TimestampMixin, SafariBase):
    """Money towards a booking."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("method", "provider_reference"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    booking_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("bookings.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[PaymentMethod] = mapped_column(str_enum(PaymentMethod, "payment_method"))
    status: Mapped[PaymentStatus] = mapped_column(
        str_enum(PaymentStatus, "payment_status"), default=PaymentStatus.PENDING
    )
    # The provider's transaction reference (Omari) or the bank reference the operator
    # confirmed on approval (the one a receipt prints).
    provider_reference: Mapped[str | None] = mapped_column(String(120))
    # The bank reference the customer typed after their proof: their claim, kept apart so
    # the operator sees it beside the proof and confirms or corrects it when approving.
    customer_reference: Mapped[str | None] = mapped_column(String(35))
    mobile_number: Mapped[str | None] = mapped_column(String(32))
    proof_file_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey(StoredFile.id, ondelete="SET NULL")
    )
    proof_media_id: Mapped[str | None] = mapped_column(String(256))
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    approved_by: Mapped[str | None] = mapped_column(String(120))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    rejected_reason: Mapped[str | None] = mapped_column(Text)

    booking: Mapped[Booking] = relationship(back_populates="payments", lazy="raise")


class ProviderEvent(SafariBase):
    """One provider event (e.g. an Omari callback) that was applied to a payment.

    Written in the transaction that applied it: the event id is unique per provider, so
    the same event delivered twice changes nothing the second time.
    """

    __tablename__ = "provider_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(120))
    payment_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("payments.id"), index=True)
    # What the provider said ("success", "failed") and what Nyala made of it.
    status: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Receipt(SafariBase):
    """The receipt of one payment: its number and the stored PDF (with its SHA-256)."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("year", "seq"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("payments.id"), unique=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    file_id: Mapped[int] = mapped_column(BigIntId, ForeignKey(StoredFile.id))
    sha256: Mapped[str] = mapped_column(String(64))


class Notification(SafariBase):
    """One notification of a kind (``tour_summary``) and key (``7d``) sent for a booking."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("booking_id", "kind", "key"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("bookings.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


def receipt_number(year: int, seq: int) -> str:
    """``RCT-2026-000042``: the series, the year of issue and the year's sequence number."""
    return f"{RECEIPT_SERIES}-{year:04d}-{seq:06d}"
