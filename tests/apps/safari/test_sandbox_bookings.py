"""A sandbox contact (the console's chat simulator) books without taking real customers'
seats, and still hears what a customer would when too few are left (both backends)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from apps.safari import operations
from apps.safari.models import Departure
from flows import ActionError
from storage import Database, get_or_create_contact
from tests.apps.safari.catalogue import add_tour


async def _seats(db: Database, departure_id: int) -> int:
    async with db.read() as session:
        left = await session.scalar(
            select(Departure.seats_left).where(Departure.id == departure_id)
        )
    assert left is not None
    return left


async def test_a_sandbox_booking_takes_no_seats_and_gives_none_back(db: Database) -> None:
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=5)
    async with db.transaction() as session:
        _, (departure,) = await add_tour(session, departures=((day, 8, 2),))
        tester = await get_or_create_contact(session, wa_id="0001")
        tester.sandbox = True
        customer = await operations.customer_for_contact(session, tester, name="Test Person")
        booking = await operations.create_booking(
            session, customer=customer, departure_id=departure.id,
            traveler_names=["Test Person", "Second Person"],
        )  # fmt: skip
        booking_id = booking.id
        assert booking.notes == operations.SANDBOX_NOTE
        with pytest.raises(ActionError, match="only 2 seats left"):
            await operations.create_booking(
                session, customer=customer, departure_id=departure.id,
                traveler_names=["A Person", "B Person", "C Person"],
            )  # fmt: skip
    assert await _seats(db, departure.id) == 2
    async with db.transaction() as session:
        await operations.cancel_booking(session, booking_id, actor="test", reason="done")
    assert await _seats(db, departure.id) == 2

    # A real customer takes them, and gets them back on cancelling.
    async with db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id="263770000555")
        customer = await operations.customer_for_contact(session, contact, name="Rudo Moyo")
        real = await operations.create_booking(
            session, customer=customer, departure_id=departure.id, traveler_names=["Rudo Moyo"]
        )
        real_id = real.id
        assert real.notes is None
    assert await _seats(db, departure.id) == 1
    async with db.transaction() as session:
        await operations.cancel_booking(session, real_id, actor="test", reason="changed plans")
    assert await _seats(db, departure.id) == 2
