"""The tour catalogue: tours and their dated departures."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, Money, TimestampMixin
from storage.types import BigIntId, JSONDoc


class Tour(TimestampMixin, Base):
    """A tour the business sells, with everything a customer needs to prepare for it."""

    __tablename__ = "tours"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
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


class Departure(Base):
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
