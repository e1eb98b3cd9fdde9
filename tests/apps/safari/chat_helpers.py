"""Shared pieces of the safari conversation tests: a catalogue relative to today, a clock,
bookings made through the service layer, and helpers to drive and inspect a chat.

The clock is fixed at 09:00 today in Harare (the bot's timezone), so "today" in the
flows is the same calendar day as :data:`TODAY` here.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select, update

from apps.safari import app, operations
from apps.safari.models import Customer, Departure, IdStatus, Tour, Traveler
from flows import UserMessage
from flows.messages import Media, reply_options
from flows.testing import ChatFactory, ChatTester, Clock
from storage import Contact, Database, StoredFile, get_or_create_contact
from tests.apps.safari.catalogue import add_tour

T = TypeVar("T")

HARARE = app.timezone
TODAY = dt.datetime.now(HARARE).date()
START = dt.datetime.combine(TODAY, dt.time(9, 0), HARARE).astimezone(dt.UTC)
PHONE = "263770000001"
_ids = itertools.count(1)


def day(offset: int) -> dt.date:
    """The date ``offset`` days from today (in Harare)."""
    return TODAY + dt.timedelta(days=offset)


@dataclass(frozen=True)
class Catalogue:
    """Two tours. The falls tour has departures yesterday, today, tomorrow (2 of 12 seats
    left: nearly full), in 7 days (10 left) and in 8 days (full); Hwange in 10 and 20 days."""

    falls: int
    hwange: int
    departures: dict[tuple[str, int], int]  # (tour code, day offset) → departure id


async def add_catalogue(db: Database) -> Catalogue:
    """Add the two tours and their departures with the storage models."""
    falls_days = ((-1, 12, 5), (0, 12, 5), (1, 12, 2), (7, 12, 10), (8, 12, 0))
    hwange_days = ((10, 8, 8), (20, 8, 8))
    async with db.transaction() as session:
        falls, falls_departures = await add_tour(
            session,
            code="falls",
            name="Victoria Falls guided tour",
            price="60.00",
            departures=tuple((day(d), cap, left) for d, cap, left in falls_days),
        )
        hwange, hwange_departures = await add_tour(
            session,
            code="hwange",
            name="Hwange game drive",
            price="150.00",
            departures=tuple((day(d), cap, left) for d, cap, left in hwange_days),
        )
        hwange.start_time = dt.time(6, 0)
        hwange.meeting_point = "Main camp gate"
        departures = {
            (code, spec[0]): row.id
            for code, specs, rows in (
                ("falls", falls_days, falls_departures),
                ("hwange", hwange_days, hwange_departures),
            )
            for spec, row in zip(specs, rows, strict=True)
        }
        return Catalogue(falls.id, hwange.id, departures)


async def open_chat(
    nyala_chat: ChatFactory, phone: str = PHONE, clock: Clock | None = None
) -> ChatTester:
    """A chat with the safari bot as ``phone``, at 09:00 today in Harare."""
    return await nyala_chat(app, phone=phone, clock=clock or Clock(START))


async def reach_review(
    chat: ChatTester,
    *,
    tour: str = "falls",
    offset: int = 7,
    names: Sequence[str] = ("Rudo Chikwanha", "Ana Moyo"),
    email: str | None = "rudo@example.com",
    known_name: bool = False,
) -> None:
    """Book from the start up to the review (``email=None``: the address is known)."""
    await chat.send("book")
    await chat.send(tap=tour)
    await chat.send(tap=day(offset).isoformat())
    await chat.send(str(len(names)))
    for name in names[1:] if known_name else names:
        await chat.send(name)
    if email is not None:
        await chat.send(email)
    assert chat.last_text.startswith("Please check your booking:"), chat.transcript


async def tap_stale(chat: ChatTester, reply_id: str, title: str) -> None:
    """Tap an option by id even if the last replies did not offer it (an old message)."""
    message = UserMessage(
        id=f"wamid.stale.{next(_ids)}", kind="reply", reply_id=reply_id, text=title
    )
    chat.replies = await chat.engine.handle(chat.contact, message)


def descriptions(chat: ChatTester) -> list[str | None]:
    """The descriptions of the options offered in the last replies."""
    return [o.description for r in chat.replies for o in reply_options(r)]


async def seed_booking(
    db: Database,
    *,
    phone: str = PHONE,
    tour: str = "falls",
    offset: int = 7,
    names: Sequence[str] = ("Rudo Chikwanha", "Ana Moyo", "Ben Dube"),
    email: str | None = None,
    id_statuses: Sequence[IdStatus] = (),
) -> str:
    """A booking made through the service layer for the contact ``phone``; returns its
    reference. ``id_statuses`` sets the travellers' ID states, in order."""
    async with db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id=phone, profile_name="Test User")
        customer = await operations.customer_for_contact(session, contact, name=names[0])
        customer.email = email
        departure = await session.scalar(
            select(Departure)
            .join(Tour, Tour.id == Departure.tour_id)
            .where(Tour.code == tour, Departure.date == day(offset))
        )
        assert departure is not None
        booking = await operations.create_booking(
            session, customer=customer, departure_id=departure.id, traveler_names=list(names)
        )
        for position, status in enumerate(id_statuses, 1):
            await session.execute(
                update(Traveler)
                .where(Traveler.booking_id == booking.id, Traveler.position == position)
                .values(id_status=status)
            )
        return booking.reference


async def take_seats(db: Database, departure_id: int, seats: int) -> None:
    """Another customer books ``seats`` seats through the service layer."""
    async with db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id="263779999999")
        customer = await operations.customer_for_contact(session, contact, name="Other Person")
        await operations.create_booking(
            session,
            customer=customer,
            departure_id=departure_id,
            traveler_names=[f"Other {i}" for i in range(1, seats + 1)],
        )


async def stored_media(
    db: Database, filename: str = "passport.jpg", mime_type: str = "image/jpeg"
) -> Media:
    """A file kept in stored_files, as ``nyala chat``'s /file sends it (``stored:<id>``)."""
    content = b"\xff\xd8 not really a photo"
    async with db.transaction() as session:
        row = StoredFile.from_bytes(filename, mime_type, content)
        session.add(row)
        await session.flush()
        file_id = row.id
    return Media(id=f"stored:{file_id}", mime_type=mime_type, filename=filename, size=len(content))


async def all_rows(db: Database, model: type[T], *order: Any) -> list[T]:
    """Every row of ``model``, in ``order`` (default: by id)."""
    async with db.read() as session:
        query = select(model).order_by(*(order or (model.id,)))  # type: ignore[attr-defined]
        return list(await session.scalars(query))


async def count(db: Database, model: type[Any]) -> int:
    """How many rows ``model`` has."""
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def seats_left(db: Database, departure_id: int) -> int:
    """The departure's seats left, as stored."""
    async with db.read() as session:
        departure = await session.get(Departure, departure_id)
        assert departure is not None
        return departure.seats_left


async def contact_and_customer(
    db: Database, phone: str = PHONE
) -> tuple[Contact, Customer | None]:
    """The contact with ``phone`` and its customer record, if any."""
    async with db.read() as session:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == phone))
        assert contact is not None
        customer = await session.scalar(select(Customer).where(Customer.contact_id == contact.id))
        return contact, customer
