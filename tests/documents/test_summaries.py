"""Pre-tour summaries and ID reminders on both backends: content, idempotency, dry run,
concurrency, fallback templates, the CLI and the *summary* intent."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from documents.summaries import TEXT_LIMIT, pack_messages
from documents.weather import ClimateTableProvider, clothing_advice
from flows.messages import ListMenu, Text
from flows.safari.summaries import (
    BUSINESS_TZ,
    Outcome,
    deliver,
    due_id_reminder_bookings,
    due_summary_bookings,
    send_all,
)
from flows.testing import ChatFactory
from storage import (
    ID_REMINDER,
    TOUR_SUMMARY,
    Booking,
    BookingStatus,
    Customer,
    Database,
    IdStatus,
    Notification,
    OutboundMessage,
    OutboundStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Traveler,
    utcnow,
)
from tests.cli import nyala
from tests.safari.catalogue import add_contact, add_tour
from tests.safari.chat_helpers import PHONE, open_chat

TODAY = dt.datetime.now(BUSINESS_TZ).date()
FLOWS = ("payment_flow", "update_details_flow", "id_upload_flow", "support_flow")


async def seed(
    db: Database,
    *,
    offset: int = 7,
    wa_id: str | None = "263770000321",
    reference: str = "SAF-AAA111",
    names: Sequence[str] = ("Rudo Chikwanha", "Ana Moyo"),
    statuses: Sequence[IdStatus] = (IdStatus.VERIFIED, IdStatus.MISSING),
    paid: str = "50.00",
    status: BookingStatus = BookingStatus.CONFIRMED,
    code: str | None = None,
) -> int:
    """A confirmed booking ``offset`` days away (total USD 120.00); returns its id."""
    async with db.transaction() as session:
        tour, (departure,) = await add_tour(
            session,
            code=code or f"t-{reference}",
            departures=((TODAY + dt.timedelta(days=offset), 12, 10),),
        )
        tour.park_rules = "Stay in the vehicle unless the guide says otherwise."
        tour.safety_guidelines = "Keep 25 m from wildlife."
        tour.cancellation_policy = "Free cancellation up to 14 days before."
        contact = await add_contact(session, wa_id) if wa_id else None
        customer = Customer(
            contact_id=contact.id if contact else None,
            name=names[0],
            phone=f"+{wa_id}" if wa_id else None,
        )
        session.add(customer)
        await session.flush()
        booking = Booking(
            reference=reference,
            customer_id=customer.id,
            tour_id=tour.id,
            departure_id=departure.id,
            travelers_count=len(names),
            total_cost=Decimal("120.00"),
            currency="USD",
            status=status,
        )
        session.add(booking)
        await session.flush()
        for position, (name, id_status) in enumerate(zip(names, statuses, strict=True), 1):
            session.add(
                Traveler(
                    booking_id=booking.id, position=position, full_name=name, id_status=id_status
                )
            )
        if Decimal(paid):
            session.add(
                Payment(
                    booking_id=booking.id,
                    amount=Decimal(paid),
                    currency="USD",
                    method=PaymentMethod.CASH,
                    status=PaymentStatus.APPROVED,
                )
            )
        return booking.id


async def rows(db: Database) -> list[OutboundMessage]:
    async with db.read() as session:
        return list(await session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


async def count(db: Database, model: Any) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def texts(outbound: list[OutboundMessage]) -> str:
    return "\n".join(str(r.payload.get("body", "")) for r in outbound if r.kind == "text")


async def summary(db: Database, booking_id: int, days: int) -> list[OutboundMessage]:
    outcome = await deliver(
        db, booking_id, kind=TOUR_SUMMARY, key=f"{days}d", amount=days, sandbox=False
    )
    assert outcome is Outcome.QUEUED
    return await rows(db)


async def test_seven_day_summary_has_every_section(db: Database) -> None:
    booking_id = await seed(db)
    async with db.read() as session:
        assert await due_summary_bookings(session, 7, now=utcnow()) == [booking_id]
        assert await due_summary_bookings(session, 6, now=utcnow()) == []
    outbound = await summary(db, booking_id, 7)
    body = texts(outbound)
    day = TODAY + dt.timedelta(days=7)
    for needed in (
        "Hi Rudo",
        "Victoria Falls guided tour",
        "Walk the rainforest trail",
        f"{day.day} {day:%b %Y}",
        "08:00",
        "2 h 30 min",
        "Falls entrance",
        "https://www.google.com/maps/search/?api=1&query=-17.924300%2C25.857200",
        "Tendai Moyo",
        "+263771000111",
        "SAF-AAA111",
        "Rudo Chikwanha",
        "Ana Moyo (⚠️ ID missing)",
        "Partly paid",
        "Balance due: USD 70.00",
        "raincoat",
        "Typical weather",
        "not a forecast",
        "Clothing",
        "Stay in the vehicle",
        "Keep 25 m",
        "Park office: +263832844000",
        "Free cancellation",
    ):
        assert needed in body, needed
    kinds = [r.kind for r in outbound]
    assert kinds[1] == "location" and kinds[-1] == "list"
    assert outbound[1].payload["latitude"] == -17.9243
    menu = outbound[-1].payload
    assert [o["id"] for o in menu["options"]] == [f"flow:{f}" for f in FLOWS]
    assert all(len(str(r.payload.get("body", ""))) <= TEXT_LIMIT for r in outbound)
    assert {r.status for r in outbound} == {OutboundStatus.QUEUED}
    for row in outbound:
        assert row.fallback is not None
        assert row.fallback["name"] == "tour_summary_7d"
        assert row.fallback["language"] == "en_US"
        assert list(row.fallback["parameters"]) == [
            "Rudo",
            "Victoria Falls guided tour",
            f"{day:%a} {day.day} {day:%b %Y}",
        ]


async def test_three_day_final_check_lists_what_is_missing(db: Database) -> None:
    booking_id = await seed(db, offset=3)
    outbound = await summary(db, booking_id, 3)
    body = texts(outbound)
    assert "Hi Rudo" in body and "final check" in body
    assert "Balance due: USD 70.00" in body
    assert "Traveller IDs missing: Ana Moyo" in body
    menu = outbound[-1]
    assert menu.kind == "list"
    ids = [o["id"] for o in menu.payload["options"]]
    assert ids == ["flow:payment_flow", "flow:id_upload_flow", "flow:support_flow"]
    assert all(r.fallback and r.fallback["name"] == "tour_summary_3d" for r in outbound)


async def test_three_day_check_when_everything_is_done(db: Database) -> None:
    booking_id = await seed(db, offset=3, paid="120.00", statuses=(IdStatus.VERIFIED,) * 2)
    outbound = await summary(db, booking_id, 3)
    assert "Everything is in order" in texts(outbound)
    assert [o["id"] for o in outbound[-1].payload["options"]] == ["flow:support_flow"]


async def test_one_day_last_minute_details(db: Database) -> None:
    booking_id = await seed(db, offset=1)
    outbound = await summary(db, booking_id, 1)
    body = texts(outbound)
    for needed in ("Hi Rudo", "tomorrow", "Meet at 08:00", "Falls entrance", "maps"):
        assert needed in body, needed
    assert "Typical weather" in body and "Tendai Moyo" in body and "+263771000111" in body
    assert [r.kind for r in outbound] == ["text", "location"]
    assert all(r.fallback and r.fallback["name"] == "tour_summary_1d" for r in outbound)


async def test_double_run_queues_once(db: Database) -> None:
    booking_id = await seed(db)
    await seed(db, reference="SAF-BBB222", wa_id="263770000999", status=BookingStatus.PENDING)
    kwargs: dict[str, Any] = {"kind": TOUR_SUMMARY, "key": "7d", "amount": 7, "sandbox": True}
    first = await send_all(db, [booking_id], **kwargs)
    queued = await rows(db)
    second = await send_all(db, [booking_id], **kwargs)
    assert first[Outcome.QUEUED] == 1 and second[Outcome.SKIPPED] == 1
    assert len(await rows(db)) == len(queued)
    assert {r.status for r in queued} == {OutboundStatus.SANDBOX}
    assert await count(db, Notification) == 1


async def test_concurrent_runs_queue_once(db: Database, database_url: str) -> None:
    booking_id = await seed(db)
    other = Database(database_url)
    try:
        outcomes = await asyncio.gather(
            *(
                deliver(d, booking_id, kind=TOUR_SUMMARY, key="7d", amount=7, sandbox=False)
                for d in (db, other)
            )
        )
    finally:
        await other.dispose()
    assert sorted(outcomes) == sorted([Outcome.QUEUED, Outcome.SKIPPED])
    assert await count(db, Notification) == 1
    assert len([r for r in await rows(db) if r.kind == "list"]) == 1


async def test_customer_without_whatsapp_fails_and_writes_nothing(db: Database) -> None:
    booking_id = await seed(db, wa_id=None)
    counts = await send_all(db, [booking_id], kind=TOUR_SUMMARY, key="7d", amount=7, sandbox=False)
    assert counts[Outcome.FAILED] == 1
    assert await count(db, Notification) == 0 and await rows(db) == []


async def test_id_reminders(db: Database) -> None:
    due = await seed(db, offset=1, names=("Rudo Chikwanha", "Ana Moyo", "Ben Dube"),
                     statuses=(IdStatus.MISSING, IdStatus.VERIFIED, IdStatus.MISSING))  # fmt: skip
    await seed(db, offset=1, reference="SAF-DONE01", wa_id="263770000998",
               statuses=(IdStatus.VERIFIED, IdStatus.RECEIVED))  # fmt: skip
    await seed(db, offset=5, reference="SAF-LATER1", wa_id="263770000997")
    async with db.read() as session:
        assert await due_id_reminder_bookings(session, 48, now=utcnow()) == [due]
    kwargs: dict[str, Any] = {"kind": ID_REMINDER, "key": "48h", "amount": 48, "sandbox": False}
    assert (await send_all(db, [due], **kwargs))[Outcome.QUEUED] == 1
    assert (await send_all(db, [due], **kwargs))[Outcome.SKIPPED] == 1
    (row,) = await rows(db)
    assert row.kind == "buttons"
    body = row.payload["body"]
    assert "Hi Rudo" in body and "Rudo Chikwanha" in body and "Ben Dube" in body
    assert "Ana Moyo" not in body
    assert row.payload["options"][0]["id"] == "flow:id_upload_flow"
    assert row.fallback is not None and row.fallback["name"] == "id_reminder"


async def test_cli_dry_run_then_runs_once(db: Database, database_url: str, tmp_path: Path) -> None:
    await seed(db, reference="SAF-SEVEN1")
    await seed(db, reference="SAF-SEVEN2", wa_id="263770000555")
    await seed(db, reference="SAF-THREE1", wa_id="263770000556", offset=3)
    await seed(db, reference="SAF-PENDNG", wa_id="263770000557", status=BookingStatus.PENDING)
    env = {"DATABASE_URL": database_url}
    dry = nyala("send-tour-summaries", "--days-before", "7", "--dry-run", cwd=tmp_path, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "SAF-SEVEN1" in dry.stdout and "SAF-SEVEN2" in dry.stdout
    assert "SAF-THREE1" not in dry.stdout and "SAF-PENDNG" not in dry.stdout
    assert "+263770000555" in dry.stdout and "text, location" in dry.stdout
    assert await count(db, Notification) == 0 and await rows(db) == []
    first = nyala("send_tour_summaries", "--days-before", "7", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "queued 2, skipped 0 (already sent), failed 0" in first.stdout
    again = nyala("send-tour-summaries", "--days-before", "7", "--send-now", cwd=tmp_path, env=env)
    assert "queued 0, skipped 2 (already sent), failed 0" in again.stdout
    assert "stored" in again.stdout
    assert await count(db, Notification) == 2
    reminders = nyala("send-id-reminders", "--hours-before", "48", cwd=tmp_path, env=env)
    assert reminders.returncode == 0 and "queued 0," in reminders.stdout


async def test_cli_exit_status_when_a_booking_fails(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    await seed(db, wa_id=None)
    env = {"DATABASE_URL": database_url}
    result = nyala("send-tour-summaries", "--days-before", "7", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "queued 0, skipped 0 (already sent), failed 1" in result.stdout


async def test_summary_intent_in_the_chat(nyala_chat: ChatFactory, db: Database) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("send my summary")
    assert "no upcoming tour" in chat.last_text
    await seed(db, offset=10, wa_id=PHONE, reference="SAF-CHAT01")
    await chat.send("summary")
    body = "\n".join(chat.texts)
    assert "SAF-CHAT01" in body and "Balance due: USD 70.00" in body and "in 10 days" in body
    assert any(isinstance(r, ListMenu) for r in chat.replies)
    assert await count(db, Notification) == 0


def test_pack_messages_keeps_under_the_limit() -> None:
    sections = ["a" * 3000, "b" * 3000, "\n".join(["c" * 100] * 60)]
    messages = pack_messages(sections)
    assert all(len(m) <= TEXT_LIMIT for m in messages)
    assert "".join(messages).count("c") == 6000
    assert Text(messages[0]).body == messages[0]


def test_climate_table_is_typical_weather_not_a_forecast() -> None:
    provider = ClimateTableProvider()
    falls = provider.outlook("Victoria Falls guided tour", dt.date(2026, 7, 1))
    assert falls.location == "Victoria Falls" and not falls.forecast
    assert "not a forecast" in falls.text()
    assert "warm fleece" in clothing_advice(falls)
    for place, name in (("Hwange game drive", "Hwange"), ("Mana Pools canoe", "Mana Pools"),
                        ("Matobo rhino walk", "Matobo"), ("Harare city", "Zimbabwe")):  # fmt: skip
        assert provider.outlook(place, dt.date(2026, 1, 5)).location == name
