"""The restaurant's own tables: its floor plan is code, its reservations a table.

A table at one sitting is the unit that cannot be taken twice: a unique index over
``(table_code, day, sitting)`` among *confirmed* reservations (a partial index, on
PostgreSQL and SQLite alike). Two guests confirming the same table at the same moment
cannot both succeed, whatever the timing; a cancelled reservation no longer counts, so
cancelling frees the table.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage import BigIntId, Contact, UTCDateTime, new_metadata, str_enum, utcnow


class RestaurantBase(DeclarativeBase):
    """The restaurant's declarative base: its tables live in their own metadata."""

    metadata = new_metadata()


@dataclass(frozen=True, slots=True)
class DiningTable:
    """One table of the floor plan."""

    code: str
    seats: int


@dataclass(frozen=True, slots=True)
class FloorPlan:
    """The tables guests can book: a service the app's lifespan provides at start-up
    (``ctx.services.get(FloorPlan)``), so another site or a test can bring its own."""

    tables: tuple[DiningTable, ...]

    def fitting(self, party: int) -> list[DiningTable]:
        """The tables that seat ``party``, smallest first."""
        return sorted((t for t in self.tables if t.seats >= party), key=lambda t: t.seats)


# Msasa Grill's floor: a party gets the smallest free table it fits.
FLOOR = FloorPlan(
    (
        DiningTable("T1", 2),
        DiningTable("T2", 2),
        DiningTable("T3", 4),
        DiningTable("T4", 4),
        DiningTable("T5", 6),
        DiningTable("T6", 12),  # the long table by the window
    )
)


class ReservationStatus(enum.StrEnum):
    """Whether the reservation holds its table."""

    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


_CONFIRMED = text("status = 'confirmed'")


class Reservation(RestaurantBase):
    """A table booked for one sitting."""

    __tablename__ = "reservations"
    __table_args__ = (
        # The constraint that makes a double-booked table impossible.
        Index(
            "uq_reservations_table_code_day_sitting",
            "table_code",
            "day",
            "sitting",
            unique=True,
            postgresql_where=_CONFIRMED,
            sqlite_where=_CONFIRMED,
        ),
        Index(None, "day", "sitting"),
        CheckConstraint("party_size >= 1", name="party_size"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    # The guest's WhatsApp contact (none for a booking taken by phone).
    contact_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey(Contact.id, ondelete="SET NULL"), index=True
    )
    table_code: Mapped[str] = mapped_column(String(8))
    day: Mapped[dt.date] = mapped_column(Date)
    sitting: Mapped[str] = mapped_column(String(5))  # "19:30", local time
    party_size: Mapped[int] = mapped_column(Integer)
    guest_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    set_menu: Mapped[bool] = mapped_column(Boolean, default=False)
    requests: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ReservationStatus] = mapped_column(
        str_enum(ReservationStatus, "reservation_status"), default=ReservationStatus.CONFIRMED
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    def cancel(self, at: dt.datetime) -> None:
        """Cancel the reservation: its table is free again at that sitting."""
        self.status = ReservationStatus.CANCELLED
        self.cancelled_at = at


async def taken_tables(session: AsyncSession, day: dt.date, sitting: str) -> set[str]:
    """The codes of the tables confirmed at one sitting."""
    rows = await session.scalars(
        select(Reservation.table_code).where(
            Reservation.day == day,
            Reservation.sitting == sitting,
            Reservation.status == ReservationStatus.CONFIRMED,
        )
    )
    return set(rows)


async def free_tables(
    session: AsyncSession, floor: FloorPlan, day: dt.date, sitting: str, party: int
) -> list[DiningTable]:
    """The tables of ``floor`` that seat ``party`` and are free at one sitting."""
    taken = await taken_tables(session, day, sitting)
    return [t for t in floor.fitting(party) if t.code not in taken]


async def reservations_on(
    session: AsyncSession, day: dt.date, *, cancelled: bool = False
) -> list[Reservation]:
    """One day's reservations by sitting and table (confirmed ones unless ``cancelled``)."""
    query = select(Reservation).where(Reservation.day == day)
    if not cancelled:
        query = query.where(Reservation.status == ReservationStatus.CONFIRMED)
    return list(
        await session.scalars(
            query.order_by(Reservation.sitting, Reservation.table_code, Reservation.id)
        )
    )
