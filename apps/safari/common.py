"""Helpers the safari flows share: what we remember about a contact, their customer record
and bookings, and how dates are written in messages (money: :func:`documents.format_money`).

Nothing here is registered on the app; the flow modules build their actions, queries and
conditions from these helpers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from apps.safari.models import Booking, BookingStatus, Customer, Departure, Tour
from flows import FlowContext
from storage import StoredFile

# Bookings a customer can still pay for, send IDs for or be reminded of.
OPEN_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED)
STORED_PREFIX = "stored:"  # media ids of files already kept in stored_files (nyala chat)


# remembered facts ------------------------------------------------------------------------


def remembered(ctx: FlowContext) -> dict[str, Any]:
    """The facts kept with the contact across flows (``contact.attributes``)."""
    return dict(ctx.contact.attributes or {})


def remember(ctx: FlowContext, **facts: Any) -> None:
    """Keep ``facts`` with the contact for later flows."""
    # Assign a new dict so SQLAlchemy sees the change to the JSON column.
    ctx.contact.attributes = {**remembered(ctx), **facts}


# the customer and their bookings ---------------------------------------------------------


async def linked_customer(ctx: FlowContext) -> Customer | None:
    """The customer record of the contact, if they have one yet."""
    return await ctx.session.scalar(select(Customer).where(Customer.contact_id == ctx.contact.id))


# What operations.customer_for_contact names a customer when it is given no name.
_PLACEHOLDER_NAMES = ("Customer", "")


async def known_name(ctx: FlowContext) -> str | None:
    """The customer's full name, if they told us before (in any flow) or booked before.

    A customer record named after the WhatsApp profile (the service layer's fallback when
    no name was given) does not count: a profile name is no name for a park permit.
    """
    name = remembered(ctx).get("name")
    if name:
        return str(name)
    customer = await linked_customer(ctx)
    if customer is None or customer.name in (*_PLACEHOLDER_NAMES, ctx.contact.profile_name):
        return None
    return customer.name


async def known_email(ctx: FlowContext) -> str | None:
    """The customer's e-mail address, if we have it."""
    email = remembered(ctx).get("email")
    if email:
        return str(email)
    customer = await linked_customer(ctx)
    return customer.email if customer is not None and customer.email else None


@dataclass(frozen=True, slots=True)
class BookingView:
    """A booking with its tour and departure (the relationships load explicitly only)."""

    booking: Booking
    tour: Tour
    departure: Departure

    @property
    def label(self) -> str:
        """``Victoria Falls guided tour, Sat 14 Mar 2031``."""
        return f"{self.tour.name}, {short_date(self.departure.date)}"

    @property
    def row_label(self) -> str:
        """``Sat 14 Mar 2031 · Victoria Falls guided tour``: for list rows, whose
        descriptions WhatsApp cuts at 72 characters (so the tour name comes last)."""
        return f"{short_date(self.departure.date)} · {self.tour.name}"


async def open_bookings(ctx: FlowContext, reference: str | None = None) -> list[BookingView]:
    """The contact's bookings that are neither cancelled, completed nor in the past.

    Args:
        ctx: the flow context.
        reference: only the booking with this reference (when it is the contact's).

    Returns:
        The bookings, soonest departure first.
    """
    customer = await linked_customer(ctx)
    if customer is None:
        return []
    query = (
        select(Booking, Tour, Departure)
        .join(Tour, Tour.id == Booking.tour_id)
        .join(Departure, Departure.id == Booking.departure_id)
        .where(
            Booking.customer_id == customer.id,
            Booking.status.in_(OPEN_STATUSES),
            Departure.date >= ctx.today,
        )
        .order_by(Departure.date, Booking.id)
    )
    if reference is not None:
        query = query.where(Booking.reference == reference)
    rows = await ctx.session.execute(query)
    return [BookingView(booking, tour, departure) for booking, tour, departure in rows]


async def open_booking(ctx: FlowContext, reference: Any) -> BookingView | None:
    """The contact's open booking with ``reference``; ``None`` for anyone else's or none."""
    if not isinstance(reference, str) or not reference:
        return None
    found = await open_bookings(ctx, reference)
    return found[0] if found else None


# uploads -----------------------------------------------------------------------------------


async def stored_file_id(ctx: FlowContext, media_id: str) -> int | None:
    """The ``stored_files`` id behind a ``stored:<id>`` media id, if that file exists.

    WhatsApp media ids (anything else) are downloaded later and have no stored file yet.
    """
    if not media_id.startswith(STORED_PREFIX):
        return None
    number = media_id.removeprefix(STORED_PREFIX)
    if not number.isdigit():
        return None
    found: int | None = await ctx.session.scalar(
        select(StoredFile.id).where(StoredFile.id == int(number))
    )
    return found


# writing money and dates --------------------------------------------------------------


def short_date(day: dt.date) -> str:
    """``Sat 14 Mar 2031``: fits a list row title."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def long_date(day: dt.date) -> str:
    """``Saturday 14 March 2031``."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def plural(count: int, word: str) -> str:
    """``1 seat``, ``3 seats``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
