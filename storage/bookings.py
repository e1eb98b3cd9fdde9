"""Customers, bookings, travelers and payments.

The balance due is derived (total cost minus approved and confirmed payments), never
stored twice.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, Money, TimestampMixin, UTCDateTime
from storage.tours import Departure, Tour
from storage.types import BigIntId, str_enum


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


class Customer(TimestampMixin, Base):
    """A person who books, linked to their WhatsApp contact."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("contacts.id", ondelete="SET NULL"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))


class Booking(TimestampMixin, Base):
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


class Traveler(Base):
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
        BigIntId, ForeignKey("stored_files.id", ondelete="SET NULL")
    )
    id_media_id: Mapped[str | None] = mapped_column(String(256))
    id_uploaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    booking: Mapped[Booking] = relationship(back_populates="travelers", lazy="raise")


class Payment(TimestampMixin, Base):
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
    # The provider's transaction reference (Omari) or the bank reference.
    provider_reference: Mapped[str | None] = mapped_column(String(120))
    mobile_number: Mapped[str | None] = mapped_column(String(32))
    proof_file_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("stored_files.id", ondelete="SET NULL")
    )
    proof_media_id: Mapped[str | None] = mapped_column(String(256))
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    approved_by: Mapped[str | None] = mapped_column(String(120))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    rejected_reason: Mapped[str | None] = mapped_column(Text)

    booking: Mapped[Booking] = relationship(back_populates="payments", lazy="raise")


class AuditEntry(Base):
    """One operator action: who did what to what, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(200))
    details: Mapped[str | None] = mapped_column(Text)
