"""Proactive notifications already sent for a booking (tour summaries, ID reminders).

A row is inserted in the same transaction that queues the messages; its unique
``(booking_id, kind, key)`` makes a second run (or a concurrent one) fail on insert and
skip the booking, so a customer never gets the same notification twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UTCDateTime, utcnow
from storage.types import BigIntId

TOUR_SUMMARY: Final = "tour_summary"
ID_REMINDER: Final = "id_reminder"


class Notification(Base):
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
