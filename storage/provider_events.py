"""Payment-provider events already applied, so a replayed callback is recognised by its id."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UTCDateTime, utcnow
from storage.types import BigIntId


class ProviderEvent(Base):
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
