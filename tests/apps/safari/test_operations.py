"""The safari service layer on both backends: seats, balances, operator actions, audit."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from apps.safari import operations
from apps.safari.models import (
    Booking,
    BookingStatus,
    Departure,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Traveler,
)
from flows import ActionError
from storage import AuditEntry, Conversation, Database, NotFoundError
from tests.apps.safari.catalogue import add_contact, add_tour

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=10)


async def booked(db: Database, seats: int = 5, travelers: int = 2) -> tuple[int, int]:
    async with db.transaction() as s:
        _, [departure] = await add_tour(s, departures=((DAY, 10, seats),))
        contact = await add_contact(s)
        customer = await operations.customer_for_contact(s, contact, name="Rudo Chikwanha")
        booking = await operations.create_booking(
            s, customer=customer, departure_id=departure.id,
            traveler_names=[f"Traveler {i}" for i in range(1, travelers + 1)],
        )  # fmt: skip
        return booking.id, departure.id


async def test_a_booking_takes_seats_and_costs_per_person(db: Database) -> None:
    booking_id, departure_id = await booked(db, seats=5, travelers=2)
    async with db.read() as s:
        booking = await s.get(Booking, booking_id)
        departure = await s.get(Departure, departure_id)
        travelers = (await s.scalars(select(Traveler).order_by(Traveler.position))).all()
        assert booking is not None and departure is not None
        assert booking.reference.startswith("SAF-") and len(booking.reference) == 10
        assert (booking.total_cost, booking.currency) == (Decimal("120.00"), "USD")
        assert booking.status is BookingStatus.PENDING
        assert departure.seats_left == 3
        assert [t.full_name for t in travelers] == ["Traveler 1", "Traveler 2"]
        assert (await operations.balance(s, booking)).due == Decimal("120.00")


async def test_too_few_seats_is_a_clear_refusal_and_writes_nothing(db: Database) -> None:
    with pytest.raises(ActionError, match="only 1 seat left"):
        await booked(db, seats=1, travelers=2)
    async with db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Booking)) == 0


async def test_the_last_seats_cannot_be_sold_twice(db: Database) -> None:
    async with db.transaction() as s:
        _, [departure] = await add_tour(s, departures=((DAY, 10, 2),))
        first = await add_contact(s, "263770000001")
        second = await add_contact(s, "263770000002")
        customers = [
            await operations.customer_for_contact(s, c, name=n)
            for c, n in ((first, "A"), (second, "B"))
        ]

    async def book(customer_index: int) -> str:
        try:
            async with db.transaction() as s:
                customer = await s.merge(customers[customer_index])
                await operations.create_booking(
                    s, customer=customer, departure_id=departure.id,
                    traveler_names=["X", "Y"],
                )  # fmt: skip
                return "booked"
        except ActionError:
            return "refused"

    results = await asyncio.gather(book(0), book(1))
    assert sorted(results) == ["booked", "refused"]
    async with db.read() as s:
        left = await s.scalar(select(Departure.seats_left).where(Departure.id == departure.id))
    assert left == 0


async def test_payments_approval_rejection_recording_and_audit(db: Database) -> None:
    booking_id, _ = await booked(db)
    async with db.transaction() as s:
        pending = Payment(
            booking_id=booking_id,
            amount=Decimal("50.00"),
            currency="USD",
            method=PaymentMethod.BANK_TRANSFER,
        )
        doubtful = Payment(
            booking_id=booking_id,
            amount=Decimal("10.00"),
            currency="USD",
            method=PaymentMethod.BANK_TRANSFER,
        )
        s.add_all([pending, doubtful])
        await s.flush()
        pending_id, doubtful_id = pending.id, doubtful.id
    async with db.transaction() as s:
        approved = await operations.approve_payment(s, pending_id, actor="ops@example")
        assert approved.status is PaymentStatus.APPROVED
        again = await operations.approve_payment(s, pending_id, actor="ops@example")
        assert again.approved_by == "ops@example"  # idempotent
        await operations.reject_payment(s, doubtful_id, actor="ops@example", reason="blurry")
        with pytest.raises(ActionError, match="not pending"):
            await operations.approve_payment(s, doubtful_id, actor="ops@example")
        cash = await operations.record_payment(
            s, booking_id, amount=Decimal("20.00"), method=PaymentMethod.CASH, actor="desk"
        )
        assert cash.status is PaymentStatus.APPROVED
    async with db.read() as s:
        booking = await s.get(Booking, booking_id)
        assert booking is not None and booking.status is BookingStatus.CONFIRMED
        assert (await operations.balance(s, booking)).due == Decimal("50.00")
        actions = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert actions == ["approve_payment", "reject_payment", "record_payment"]


async def test_cancelling_gives_seats_back(db: Database) -> None:
    booking_id, departure_id = await booked(db, seats=5, travelers=3)
    async with db.transaction() as s:
        await operations.cancel_booking(s, booking_id, actor="ops", reason="customer asked")
        await operations.cancel_booking(s, booking_id, actor="ops", reason="again")
    async with db.read() as s:
        booking = await s.get(Booking, booking_id)
        seats = await s.scalar(select(Departure.seats_left).where(Departure.id == departure_id))
        audits = await s.scalar(select(func.count()).select_from(AuditEntry))
    assert booking is not None and booking.status is BookingStatus.CANCELLED
    assert seats == 5
    assert audits == 1
    with pytest.raises(NotFoundError):
        async with db.transaction() as s:
            await operations.cancel_booking(s, 999_999, actor="ops", reason="x")


async def test_releasing_a_conversation(db: Database) -> None:
    async with db.transaction() as s:
        contact = await add_contact(s)
        s.add(
            Conversation(
                contact_id=contact.id,
                data={},
                retry_count=0,
                handed_off_at=dt.datetime.now(dt.UTC),
                handoff_reason="help",
            )
        )
        contact_id = contact.id
    async with db.transaction() as s:
        assert await operations.release_conversation(s, contact_id, actor="agent")
        assert not await operations.release_conversation(s, contact_id, actor="agent")
    async with db.read() as s:
        conversation = await s.get(Conversation, contact_id)
    assert conversation is not None and conversation.handed_off_at is None
