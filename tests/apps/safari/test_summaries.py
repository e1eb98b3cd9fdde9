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

from apps.safari import app
from apps.safari.documents import SafariDocuments
from apps.safari.documents.summaries import TEXT_LIMIT, pack_messages
from apps.safari.documents.weather import ClimateTableProvider, clothing_advice
from apps.safari.models import (
    ID_REMINDER,
    TOUR_SUMMARY,
    Booking,
    BookingStatus,
    Customer,
    IdStatus,
    Notification,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Tour,
    Traveler,
)
from apps.safari.summaries import (
    Outcome,
    deliver,
    due_id_reminder_bookings,
    due_summary_bookings,
    send_all,
)
from flows.messages import ListMenu, Text
from flows.testing import ChatFactory
from storage import Database, OutboundMessage, OutboundStatus, StoredFile, utcnow
from testing.fake_graph import FakeGraph
from tests.apps.safari.catalogue import add_contact, add_tour
from tests.apps.safari.chat_helpers import PHONE, open_chat
from tests.cli import nyala
from tests.documents.pdf import pdf_fonts, pdf_info, pdf_text

TODAY = dt.datetime.now(app.timezone).date()
TZ = app.timezone
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
    wrote: dt.timedelta | None = dt.timedelta(hours=2),
) -> int:
    """A confirmed booking ``offset`` days away (total USD 120.00); returns its id.

    The customer last wrote ``wrote`` ago (``None``: never), which decides whether their
    24-hour window is open.
    """
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
        if contact is not None and wrote is not None:
            contact.last_inbound_at = utcnow() - wrote
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


async def stored_pdf_text(db: Database, row: OutboundMessage) -> str:
    """The text of the PDF a document row sends."""
    async with db.read() as session:
        stored = await session.get(StoredFile, row.payload["file_id"])
    assert stored is not None and stored.mime_type == "application/pdf"
    return pdf_text(stored.data)


def texts(outbound: list[OutboundMessage]) -> str:
    return "\n".join(str(r.payload.get("body", "")) for r in outbound if r.kind == "text")


async def summary(
    db: Database, documents: SafariDocuments, booking_id: int, days: int
) -> list[OutboundMessage]:
    outcome = await deliver(
        db, booking_id, kind=TOUR_SUMMARY, key=f"{days}d", amount=days, sandbox=False,
        documents=documents,
    )  # fmt: skip
    assert outcome is Outcome.QUEUED
    return await rows(db)


async def test_seven_day_summary_has_every_section(
    db: Database, documents: SafariDocuments
) -> None:
    booking_id = await seed(db)
    async with db.read() as session:
        assert await due_summary_bookings(session, 7, now=utcnow(), tz=TZ) == [booking_id]
        assert await due_summary_bookings(session, 6, now=utcnow(), tz=TZ) == []
    outbound = await summary(db, documents, booking_id, 7)
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
    assert kinds[1] == "location" and kinds[-2:] == ["document", "list"]
    assert outbound[1].payload["latitude"] == -17.9243
    menu = outbound[-1].payload
    assert [o["id"] for o in menu["options"]] == [f"flow:{f}" for f in FLOWS]
    assert all(len(str(r.payload.get("body", ""))) <= TEXT_LIMIT for r in outbound)
    assert {r.status for r in outbound} == {OutboundStatus.QUEUED}
    # Only the first message falls back to the template: if the window closes before it
    # is sent, the customer gets the template once, not once per message.
    first, *rest = outbound
    assert first.fallback is not None
    assert first.fallback["name"] == "tour_summary_7d"
    assert first.fallback["language"] == "en_US"
    assert list(first.fallback["parameters"]) == [
        "Rudo",
        "Victoria Falls guided tour",
        f"{day:%a} {day.day} {day:%b %Y}",
    ]
    assert first.fallback["buttons"] == [
        {"id": "intent:tour_summary_7d", "title": "Get my summary", "description": None}
    ]
    assert all(r.fallback is None for r in rest)
    itinerary = await stored_pdf_text(db, outbound[-2])
    assert outbound[-2].payload["filename"] == "Itinerary_SAF-AAA111.pdf"
    for needed in (
        "ITINERARY",
        "SAF-AAA111",
        "Victoria Falls guided tour",
        f"{day.day} {day:%b %Y}",
        "08:00",
        "2 h 30 min",
        "Falls entrance",
        "Tendai Moyo",
        "Rudo Chikwanha",
        "Ana Moyo",
        "Missing",
        "USD 120.00",
        "USD 50.00",
        "BALANCE DUE USD 70.00",
        "raincoat",
        "Typical weather",
        "not a forecast",
        "Stay in the vehicle",
        "Keep 25 m",
        "+263832844000",
        "Free cancellation",
        "Pay balance",
        "Upload IDs",
        "Contact support",
    ):
        assert needed in itinerary, needed


async def test_three_day_final_check_lists_what_is_missing(
    db: Database, documents: SafariDocuments
) -> None:
    booking_id = await seed(db, offset=3)
    outbound = await summary(db, documents, booking_id, 3)
    body = texts(outbound)
    assert "Hi Rudo" in body and "final check" in body
    assert "Balance due: USD 70.00" in body
    assert "Traveller IDs missing: Ana Moyo" in body
    menu = outbound[-1]
    assert menu.kind == "list"
    ids = [o["id"] for o in menu.payload["options"]]
    assert ids == ["flow:payment_flow", "flow:id_upload_flow", "flow:support_flow"]
    assert outbound[0].fallback and outbound[0].fallback["name"] == "tour_summary_3d"
    assert "document" not in [r.kind for r in outbound]


async def test_three_day_check_when_everything_is_done(
    db: Database, documents: SafariDocuments
) -> None:
    booking_id = await seed(db, offset=3, paid="120.00", statuses=(IdStatus.VERIFIED,) * 2)
    outbound = await summary(db, documents, booking_id, 3)
    assert "Everything is in order" in texts(outbound)
    assert [o["id"] for o in outbound[-1].payload["options"]] == ["flow:support_flow"]


async def test_one_day_last_minute_details(db: Database, documents: SafariDocuments) -> None:
    booking_id = await seed(db, offset=1)
    outbound = await summary(db, documents, booking_id, 1)
    body = texts(outbound)
    for needed in ("Hi Rudo", "tomorrow", "Meet at 08:00", "Falls entrance", "maps"):
        assert needed in body, needed
    assert "Typical weather" in body and "Tendai Moyo" in body and "+263771000111" in body
    assert [r.kind for r in outbound] == ["text", "location"]
    assert outbound[0].fallback and outbound[0].fallback["name"] == "tour_summary_1d"


async def test_double_run_queues_once(db: Database, documents: SafariDocuments) -> None:
    booking_id = await seed(db)
    await seed(db, reference="SAF-BBB222", wa_id="263770000999", status=BookingStatus.PENDING)
    kwargs: dict[str, Any] = {
        "kind": TOUR_SUMMARY, "key": "7d", "amount": 7, "sandbox": True, "documents": documents
    }  # fmt: skip
    first = await send_all(db, [booking_id], **kwargs)
    queued = await rows(db)
    second = await send_all(db, [booking_id], **kwargs)
    assert first[Outcome.QUEUED] == 1 and second[Outcome.SKIPPED] == 1
    assert len(await rows(db)) == len(queued)
    assert {r.status for r in queued} == {OutboundStatus.SANDBOX}
    assert await count(db, Notification) == 1


async def test_concurrent_runs_queue_once(
    db: Database, database_url: str, documents: SafariDocuments
) -> None:
    booking_id = await seed(db)
    other = Database(database_url)
    try:
        outcomes = await asyncio.gather(
            *(
                deliver(
                    d,
                    booking_id,
                    kind=TOUR_SUMMARY,
                    key="7d",
                    amount=7,
                    sandbox=False,
                    documents=documents,
                )
                for d in (db, other)
            )
        )
    finally:
        await other.dispose()
    assert sorted(outcomes) == sorted([Outcome.QUEUED, Outcome.SKIPPED])
    assert await count(db, Notification) == 1
    assert len([r for r in await rows(db) if r.kind == "list"]) == 1


async def test_customer_without_whatsapp_is_counted_and_writes_nothing(
    db: Database, documents: SafariDocuments
) -> None:
    booking_id = await seed(db, wa_id=None)
    counts = await send_all(
        db, [booking_id], kind=TOUR_SUMMARY, key="7d", amount=7, sandbox=False,
        documents=documents,
    )  # fmt: skip
    assert counts[Outcome.NO_WHATSAPP] == 1 and counts[Outcome.FAILED] == 0
    assert await count(db, Notification) == 0 and await rows(db) == []


async def test_outside_the_window_only_the_template_is_sent(
    db: Database,
    nyala_chat: ChatFactory,
    documents: SafariDocuments,
) -> None:
    """The customer last wrote two days ago: one template with a button; tapping it (in
    the chat, as WhatsApp delivers a template's quick reply) brings the 7-day summary."""
    booking_id = await seed(db, wa_id=PHONE, wrote=dt.timedelta(days=2))
    outcome = await deliver(
        db, booking_id, kind=TOUR_SUMMARY, key="7d", amount=7, sandbox=False, documents=documents
    )
    assert outcome is Outcome.TEMPLATE
    (row,) = await rows(db)
    assert row.kind == "template" and row.fallback is None
    assert row.payload["name"] == "tour_summary_7d"
    assert "one week away" in row.payload["fallback"]
    assert [b["id"] for b in row.payload["buttons"]] == ["intent:tour_summary_7d"]
    assert await count(db, Notification) == 1
    again = await deliver(
        db, booking_id, kind=TOUR_SUMMARY, key="7d", amount=7, sandbox=False, documents=documents
    )
    assert again is Outcome.SKIPPED and len(await rows(db)) == 1
    chat = await open_chat(nyala_chat)
    await chat.send("Get my summary", tap_id="intent:tour_summary_7d")
    body = "\n".join(chat.texts)
    assert "SAF-AAA111" in body and "in 7 days" in body and "Balance due: USD 70.00" in body
    assert [type(r).__name__ for r in chat.replies][-2:] == ["Document", "ListMenu"]


async def test_outside_the_window_the_three_day_tap_brings_the_final_check(
    db: Database,
    nyala_chat: ChatFactory,
    documents: SafariDocuments,
) -> None:
    booking_id = await seed(db, wa_id=PHONE, offset=3, wrote=None)
    assert (
        await deliver(
            db,
            booking_id,
            kind=TOUR_SUMMARY,
            key="3d",
            amount=3,
            sandbox=False,
            documents=documents,
        )
        is Outcome.TEMPLATE
    )
    chat = await open_chat(nyala_chat)
    await chat.send("Final check", tap_id="intent:tour_summary_3d")
    assert "final check" in chat.texts[0] and "Traveller IDs missing: Ana Moyo" in chat.texts[0]


async def test_id_reminders(db: Database, documents: SafariDocuments) -> None:
    due = await seed(db, offset=1, names=("Rudo Chikwanha", "Ana Moyo", "Ben Dube"),
                     statuses=(IdStatus.MISSING, IdStatus.VERIFIED, IdStatus.MISSING))  # fmt: skip
    await seed(db, offset=1, reference="SAF-DONE01", wa_id="263770000998",
               statuses=(IdStatus.VERIFIED, IdStatus.RECEIVED))  # fmt: skip
    await seed(db, offset=5, reference="SAF-LATER1", wa_id="263770000997")
    async with db.read() as session:
        assert await due_id_reminder_bookings(session, 48, now=utcnow(), tz=TZ) == [due]
    kwargs: dict[str, Any] = {
        "kind": ID_REMINDER, "key": "48h", "amount": 48, "sandbox": False, "documents": documents
    }  # fmt: skip
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
    assert first.stdout.strip().splitlines()[-1] == (
        "queued 2, as template 0 (24-hour window closed), skipped 0 (already sent), "
        "no WhatsApp 0, failed 0"
    )
    again = nyala("send-tour-summaries", "--days-before", "7", "--send-now", cwd=tmp_path, env=env)
    assert "queued 0, as template 0 (24-hour window closed), skipped 2" in again.stdout
    assert "the messages are stored, not sent" in again.stderr
    assert await count(db, Notification) == 2
    reminders = nyala("send-id-reminders", "--hours-before", "48", cwd=tmp_path, env=env)
    assert reminders.returncode == 0 and "queued 0," in reminders.stdout


async def test_cli_dry_run_is_exact_about_windows_and_missing_whatsapp(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    await seed(db, reference="SAF-OPEN01")
    await seed(db, reference="SAF-SHUT01", wa_id="263770000555", wrote=dt.timedelta(hours=30))
    await seed(db, reference="SAF-NOWA01", wa_id=None)
    env = {"DATABASE_URL": database_url}
    dry = nyala("send-tour-summaries", "--days-before", "7", "--dry-run", cwd=tmp_path, env=env)
    assert dry.returncode == 0, dry.stderr
    lines = {line.split()[0]: line for line in dry.stdout.splitlines() if "SAF-" in line}
    assert "text, location, pdf, list" in lines["SAF-OPEN01"]
    assert lines["SAF-OPEN01"].endswith("would queue")
    assert "template" in lines["SAF-SHUT01"] and "window closed" in lines["SAF-SHUT01"]
    assert lines["SAF-NOWA01"].endswith("no WhatsApp: skip")
    assert await rows(db) == [] and await count(db, Notification) == 0
    run = nyala("send-tour-summaries", "--days-before", "7", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == (
        "queued 1, as template 1 (24-hour window closed), skipped 0 (already sent), "
        "no WhatsApp 1, failed 0"
    )
    kinds = [r.kind for r in await rows(db)]
    assert kinds.count("template") == 1 and kinds.count("document") == 1


async def test_cli_send_now_sends_through_the_graph_api(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """Live mode without a server: the command queues, then drains the outbox itself
    through the (fake) Graph API, which validates every request against Meta's spec."""
    await seed(db, reference="SAF-LIVE01")
    await seed(db, reference="SAF-LIVE02", wa_id="263770000555", wrote=None)
    async with FakeGraph(token="t0ken", phone_number_id="1234") as fake:
        env = {
            "DATABASE_URL": database_url,
            "WHATSAPP_ACCESS_TOKEN": "t0ken",
            "WHATSAPP_PHONE_NUMBER_ID": "1234",
            "WHATSAPP_API_BASE": str(fake.base_url),
        }
        result = await asyncio.to_thread(
            nyala, "send-tour-summaries", "--days-before", "7", "--send-now", cwd=tmp_path,
            env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        sent = [m.body for m in fake.sent]
    outbound = await rows(db)
    assert result.stdout.strip().splitlines()[-1] == (
        "queued 1, as template 1 (24-hour window closed), skipped 0 (already sent), "
        f"no WhatsApp 0, failed 0, sent {len(outbound)} message(s)"
    )
    assert {r.status for r in outbound} == {OutboundStatus.SENT}
    assert len(sent) == len(outbound) and len(fake.media) == 1
    by_kind = [b["type"] for b in sent]
    assert by_kind.count("template") == 1 and by_kind.count("document") == 1
    template = next(b for b in sent if b["type"] == "template")
    assert template["to"].removeprefix("+") == "263770000555"
    assert template["template"]["components"][-1]["parameters"][0]["payload"] == (
        "intent:tour_summary_7d"
    )


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


# --- every script (issue 15) ---------------------------------------------------------------


async def stored_pdf(db: Database, row: OutboundMessage) -> bytes:
    async with db.read() as session:
        stored = await session.get(StoredFile, row.payload["file_id"])
    assert stored is not None and stored.mime_type == "application/pdf"
    return stored.data


async def test_the_itinerary_prints_every_script_in_embedded_fonts_with_metadata(
    db: Database, documents: SafariDocuments
) -> None:
    names = ("Łukasz Żółć 王芳 Nguyễn", "Ελένη Иван 김민준")
    booking_id = await seed(db, names=names)
    outbound = await summary(db, documents, booking_id, 7)
    assert outbound[-2].kind == "document"
    pdf = await stored_pdf(db, outbound[-2])
    text = pdf_text(pdf)
    for name in names:
        assert name in text, (name, text)
    fonts = pdf_fonts(pdf)
    assert fonts and all(embedded for _, embedded in fonts), fonts
    info = pdf_info(pdf)
    assert info["Title"] == "Itinerary SAF-AAA111"
    assert info["Author"] == "Savannah Trails Safaris"
    assert info["Subject"].startswith(f"Itinerary for {names[0]}: Victoria Falls guided tour, ")
    assert info["Creator"] == "Nyala (safari bot)"


async def test_an_itinerary_that_cannot_draw_its_text_is_not_stored(
    db: Database, documents: SafariDocuments
) -> None:
    """The summary's text still goes; the PDF, which would print boxes, is not made."""
    booking_id = await seed(db, names=("Tenzin ཀཁ", "Ana Moyo"))
    outbound = await summary(db, documents, booking_id, 7)
    assert [r.kind for r in outbound if r.kind == "document"] == []
    assert await count(db, StoredFile) == 0


def test_the_weather_is_the_tours_own_location() -> None:
    """Issue 16: a Hwange tour whose address names the "Bulawayo–Victoria Falls road" got
    Victoria Falls weather (the longest place name in the joined text won)."""
    provider = ClimateTableProvider()
    hwange_address = (
        "Hwange National Park full-day game drive\nHwange Main Camp reception\n"
        "Main Camp, Hwange National Park (turn-off at Kennedy 1 on the A8 "
        "Bulawayo–Victoria Falls road), Zimbabwe"
    )
    day = dt.date(2026, 7, 1)
    # By coordinates (the demo tour's meeting point) and, without them, by name first.
    assert provider.outlook(hwange_address, day, coordinates=(-18.7322, 26.9556)).location == (
        "Hwange"
    )
    assert provider.outlook(hwange_address, day).location == "Hwange"
    # Coordinates decide over words; far from every location: the country's normals.
    assert provider.outlook("Victoria Falls", day, coordinates=(-20.5447, 28.5114)).location == (
        "Matobo"
    )
    harare = provider.outlook("Victoria Falls", day, coordinates=(-17.8292, 31.0522))
    assert harare.location == "Zimbabwe"
    assert "not a forecast" in harare.text()


async def test_a_hwange_summary_gives_hwange_weather_not_a_forecast(
    db: Database, documents: SafariDocuments
) -> None:
    """Issue 16.8 end to end: the demo's Hwange tour, whose address names the
    "Bulawayo–Victoria Falls road", gets Hwange's weather in the message and the PDF."""
    booking_id = await seed(db, code="hwange")
    async with db.transaction() as session:
        tour = await session.scalar(select(Tour).where(Tour.code == "hwange"))
        assert tour is not None
        tour.name = "Hwange National Park full-day game drive"
        tour.meeting_point = "Hwange Main Camp reception"
        tour.meeting_address = (
            "Main Camp, Hwange National Park (turn-off at Kennedy 1 on the A8 "
            "Bulawayo–Victoria Falls road), Zimbabwe"
        )
        tour.meeting_latitude, tour.meeting_longitude = -18.7322, 26.9556
    outbound = await summary(db, documents, booking_id, 7)
    body = texts(outbound)
    assert "Typical weather for this time of year in Hwange:" in body
    assert "weather for this time of year in Victoria Falls" not in body
    assert "(Long-term averages, not a forecast.)" in body
    itinerary = await stored_pdf_text(db, next(r for r in outbound if r.kind == "document"))
    assert "in Hwange:" in itinerary and "not a forecast" in itinerary
    assert "in Victoria Falls:" not in itinerary
