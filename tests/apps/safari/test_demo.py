"""Demo data: content, idempotency, JSON shape, ``nyala demo-bookings``/``demo-data`` and the
first-run load."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from apps.safari import app, operations
from apps.safari.demo import (
    CATALOGUE,
    DEMO_ACTOR,
    DEMO_BOOKINGS,
    DEPARTURE_DAYS,
    load_demo_data,
    seats_for,
)
from apps.safari.models import (
    Booking,
    BookingStatus,
    Customer,
    Departure,
    IdStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Tour,
    Traveler,
)
from storage import AuditEntry, Contact, Database, get_or_create_contact
from tests.cli import nyala
from tests.conftest import Databases, empty_tables

HARARE = app.timezone
ROOT = Path(__file__).resolve().parents[3]
DEMO_TABLES = [Tour, Departure, Contact, Customer, Booking, Traveler, Payment, AuditEntry]
JSON_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
JSON_MONEY = re.compile(r"^\d+\.\d{2}$")


def harare_today() -> dt.date:
    return dt.datetime.now(HARARE).date()


async def row_counts(db: Database) -> dict[str, int]:
    async with db.read() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model)) or 0
            for model in DEMO_TABLES
        }


async def test_three_confirmed_bookings_at_1_3_and_7_days_with_a_balance_due(
    db: Database,
) -> None:
    today = harare_today()
    data = await load_demo_data(db, tz=HARARE)
    assert data.today == today and data.timezone == "Africa/Harare"
    assert [b.tour_date for b in data.bookings] == [
        today + dt.timedelta(days=n) for n in (1, 3, 7)
    ]
    assert data.bookings[2].whatsapp == "263771234567"
    assert len({b.whatsapp for b in data.bookings}) == 3
    async with db.read() as session:
        bookings = (await session.scalars(select(Booking).order_by(Booking.id))).all()
        assert len(bookings) == 3
        assert [b.reference for b in bookings] == [b.reference for b in data.bookings]
        missing_ids = 0
        for booking in bookings:
            assert booking.status is BookingStatus.CONFIRMED
            assert booking.notes is not None and booking.notes.startswith("demo:")
            departure = await session.get(Departure, booking.departure_id)
            assert departure is not None and departure.date > today
            payments = (
                await session.scalars(select(Payment).where(Payment.booking_id == booking.id))
            ).all()
            assert len(payments) == 1
            (payment,) = payments
            assert payment.status is PaymentStatus.APPROVED
            assert payment.method in (PaymentMethod.BANK_TRANSFER, PaymentMethod.CASH)
            assert payment.approved_by == DEMO_ACTOR
            assert Decimal(0) < payment.amount < booking.total_cost
            balance = await operations.balance(session, booking)
            assert balance.due == booking.total_cost - payment.amount > 0
            travelers = (
                await session.scalars(select(Traveler).where(Traveler.booking_id == booking.id))
            ).all()
            assert len(travelers) == booking.travelers_count >= 2
            assert all(t.full_name.strip() for t in travelers)
            missing_ids += sum(t.id_status is IdStatus.MISSING for t in travelers)
        assert 0 < missing_ids < sum(b.travelers_count for b in bookings)
        owner = await session.scalar(
            select(Contact.wa_id)
            .join(Customer, Customer.contact_id == Contact.id)
            .join(Booking, Booking.customer_id == Customer.id)
            .where(Booking.reference == data.bookings[2].reference)
        )
        assert owner == "263771234567"
        audit = (await session.scalars(select(AuditEntry))).all()
        assert {(a.actor, a.action) for a in audit} == {(DEMO_ACTOR, "record_payment")}


async def test_tours_have_everything_a_pre_tour_summary_needs(db: Database) -> None:
    await load_demo_data(db, tz=HARARE)
    async with db.read() as session:
        tours = (await session.scalars(select(Tour).order_by(Tour.id))).all()
    assert 3 <= len(tours) <= 4
    names = " ".join(t.name for t in tours)
    for place in ("Victoria Falls", "Hwange", "Mana Pools"):
        assert place in names
    assert len({t.short_name for t in tours}) == len(tours)
    for tour in tours:
        for text in (
            tour.name, tour.description, tour.meeting_point, tour.meeting_address,
            tour.guide_name, tour.guide_phone, tour.clothing_advice, tour.weather_outlook,
            tour.park_rules, tour.safety_guidelines, tour.cancellation_policy,
        ):  # fmt: skip
            assert text.strip(), tour.code
        assert tour.active and tour.currency == "USD" and tour.price_per_person > 0
        # A list title WhatsApp shows whole (24 characters), each its own.
        assert tour.short_name and len(tour.short_name) <= 24, tour.code
        assert 60 <= tour.duration_minutes <= 12 * 60
        assert dt.time(5) <= tour.start_time <= dt.time(16)
        assert tour.meeting_latitude is not None and tour.meeting_longitude is not None
        # In Zimbabwe.
        assert -22.5 < tour.meeting_latitude < -15.5 and 25.0 < tour.meeting_longitude < 33.1
        assert len(tour.packing_list) >= 4 and all(item.strip() for item in tour.packing_list)
        assert tour.emergency_contacts
        for contact in tour.emergency_contacts:
            assert contact["name"].strip() and re.fullmatch(r"\+?[\d ]{3,}", contact["phone"])
        assert any("24-hour" in c["name"] for c in tour.emergency_contacts)


async def test_departures_are_future_frequent_and_sometimes_nearly_full(db: Database) -> None:
    today = harare_today()
    await load_demo_data(db, tz=HARARE)
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Tour.code, Departure.date, Departure.capacity, Departure.seats_left).join(
                    Tour, Tour.id == Departure.tour_id
                )
            )
        ).all()
    by_tour: dict[str, list[dt.date]] = {}
    for code, day, capacity, seats_left in rows:
        assert today < day <= today + dt.timedelta(days=DEPARTURE_DAYS)
        assert 8 <= capacity <= 16 and 0 <= seats_left <= capacity
        by_tour.setdefault(code, []).append(day)
    assert set(by_tour) == {content.code for content in CATALOGUE}
    for days in by_tour.values():
        assert len(days) >= DEPARTURE_DAYS // 7 * 3  # several a week
    nearly_full = [r for r in rows if r.seats_left <= 2]
    assert len(nearly_full) >= len(rows) // 10
    assert any(r.seats_left == r.capacity for r in rows)  # and some still empty


async def test_the_booking_dates_follow_the_business_timezone(db: Database) -> None:
    # UTC+14: its "today" is ahead of UTC's for most of each day.
    kiribati = ZoneInfo("Pacific/Kiritimati")
    data = await load_demo_data(db, tz=kiribati)
    today = dt.datetime.now(kiribati).date()
    assert data.today == today
    assert [b.tour_date - today for b in data.bookings] == [
        dt.timedelta(days=n) for n in (1, 3, 7)
    ]


async def test_a_second_run_creates_nothing_and_returns_the_same_objects(db: Database) -> None:
    first = await load_demo_data(db, tz=HARARE)
    counts = await row_counts(db)
    second = await load_demo_data(db, tz=HARARE)
    assert second.to_json() == first.to_json()
    assert json.dumps(second.to_json()) == json.dumps(first.to_json())
    assert await row_counts(db) == counts
    assert first.created.anything and not second.created.anything
    assert first.created.tours == counts["tours"] == len(CATALOGUE)
    assert first.created.departures == counts["departures"]
    assert counts["bookings"] == counts["payments"] == 3


async def test_a_later_day_adds_new_departures_and_keeps_the_bookings(db: Database) -> None:
    day = dt.date(2027, 3, 1)
    first = await load_demo_data(db, tz=HARARE, today=day)
    counts = await row_counts(db)
    later = await load_demo_data(db, tz=HARARE, today=day + dt.timedelta(days=3))
    assert [b.reference for b in later.bookings] == [b.reference for b in first.bookings]
    assert [b.tour_date for b in later.bookings] == [b.tour_date for b in first.bookings]
    assert [p.id for p in later.payments] == [p.id for p in first.payments]
    new_days = [day + dt.timedelta(days=DEPARTURE_DAYS + n) for n in (1, 2, 3)]
    expected = sum(d.weekday() in c.weekdays for c in CATALOGUE for d in new_days)
    assert later.created.departures == expected > 0
    assert later.created.tours == later.created.bookings == later.created.payments == 0
    after = await row_counts(db)
    assert after == {**counts, "departures": counts["departures"] + expected}
    again = await load_demo_data(db, tz=HARARE, today=day + dt.timedelta(days=3))
    assert not again.created.anything and again.to_json() == later.to_json()


async def test_existing_objects_are_kept_not_overwritten(db: Database) -> None:
    async with db.transaction() as session:
        contact = await get_or_create_contact(
            session, wa_id="263771234567", profile_name="Tendai M."
        )
        await operations.customer_for_contact(session, contact, name="Tendai Moyo-Banda")
    data = await load_demo_data(db, tz=HARARE)
    async with db.transaction() as session:
        customer = await session.scalar(select(Customer).where(Customer.phone == "+263771234567"))
        assert customer is not None and customer.name == "Tendai Moyo-Banda"
        contact_after = await session.scalar(
            select(Contact).where(Contact.wa_id == "263771234567")
        )
        assert contact_after is not None and contact_after.profile_name == "Tendai M."
        assert data.bookings[2].customer == "Tendai Moyo-Banda"
        # An operator edits a tour and cancels a demo booking: a rerun keeps both.
        tour = await session.scalar(select(Tour).where(Tour.code == CATALOGUE[0].code))
        assert tour is not None
        tour.price_per_person = Decimal("99.00")
        booking = await session.scalar(
            select(Booking).where(Booking.reference == data.bookings[0].reference)
        )
        assert booking is not None
        await operations.cancel_booking(session, booking.id, actor="ops", reason="test")
    again = await load_demo_data(db, tz=HARARE)
    assert not again.created.anything
    assert again.tours[0].price_per_person == Decimal("99.00")
    assert again.bookings[0].reference == data.bookings[0].reference
    assert again.bookings[0].status == "cancelled"


def test_seats_are_the_same_on_every_run() -> None:
    day = dt.date(2027, 1, 1)
    for content in CATALOGUE:
        for n in range(30):
            when = day + dt.timedelta(days=n)
            capacity, seats_left = seats_for(content, when)
            assert (capacity, seats_left) == seats_for(content, when)
            assert 8 <= capacity <= 16 and 1 <= seats_left <= capacity


def check_json_shape(payload: dict[str, Any], today: dt.date) -> None:
    assert {"bookings", "payments"} <= set(payload)
    assert len(payload["bookings"]) == 3
    payment_ids: list[int] = []
    references = set()
    for booking in payload["bookings"]:
        assert {"reference", "whatsapp", "tour", "tour_date", "payment_ids"} <= set(booking)
        assert isinstance(booking["reference"], str) and booking["reference"]
        assert isinstance(booking["whatsapp"], str) and booking["whatsapp"].isdigit()
        assert isinstance(booking["tour"], str) and booking["tour"]
        assert isinstance(booking["tour_date"], str) and JSON_DATE.match(booking["tour_date"])
        assert isinstance(booking["payment_ids"], list) and booking["payment_ids"]
        assert all(type(pid) is int for pid in booking["payment_ids"])
        payment_ids += booking["payment_ids"]
        references.add(booking["reference"])
    assert [b["tour_date"] for b in payload["bookings"]] == [
        (today + dt.timedelta(days=n)).isoformat() for n in (1, 3, 7)
    ]
    assert payload["bookings"][2]["whatsapp"] == "263771234567"
    assert [p["id"] for p in payload["payments"]] == payment_ids
    for payment in payload["payments"]:
        assert {"id", "booking_reference", "amount", "currency", "status"} <= set(payment)
        assert type(payment["id"]) is int
        assert payment["booking_reference"] in references
        assert isinstance(payment["amount"], str) and JSON_MONEY.match(payment["amount"])
        assert payment["currency"] == "USD" and payment["status"] == "approved"


async def test_json_has_the_documented_shape(db: Database) -> None:
    data = await load_demo_data(db, tz=HARARE)
    payload = json.loads(json.dumps(data.to_json()))
    check_json_shape(payload, data.today)
    assert set(payload) == {"today", "timezone", "tours", "bookings", "payments"}
    assert set(payload["bookings"][0]) == {
        "reference", "whatsapp", "customer", "tour", "tour_code", "tour_date", "travelers",
        "status", "total", "balance_due", "currency", "payment_ids",
    }  # fmt: skip
    assert set(payload["payments"][0]) == {
        "id", "booking_reference", "amount", "currency", "method", "status",
    }  # fmt: skip
    assert payload["bookings"][0]["total"] == "240.00"
    assert payload["bookings"][0]["balance_due"] == "120.00"
    assert payload["payments"][0]["amount"] == "120.00"
    assert payload["payments"][0]["id"] == payload["bookings"][0]["payment_ids"][0]
    by_key = {spec.key: spec for spec in DEMO_BOOKINGS}
    for booking, payment in zip(data.bookings, payload["payments"], strict=True):
        assert Decimal(payment["amount"]) == by_key[booking.key].amount


# ``nyala demo-data`` and the first-run load, as a user runs them.


def emptied(url: str) -> str:
    async def run() -> None:
        database = Database(url)
        try:
            await empty_tables(database)
        finally:
            await database.dispose()

    asyncio.run(run())
    return url


def test_demo_data_json_twice_prints_the_same_on_a_fresh_sqlite_database(tmp_path: Path) -> None:
    first = nyala("demo-bookings", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "nyala.db").exists()
    second = nyala("demo-bookings", "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    payload = json.loads(first.stdout)  # stdout is only the JSON
    check_json_shape(payload, harare_today())
    assert payload["payments"][0]["id"] == 1 and payload["payments"][0]["amount"] == "120.00"
    human = nyala("demo-bookings", cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "nothing new" in human.stdout
    for booking in payload["bookings"]:
        assert booking["reference"] in human.stdout
    summary = nyala("demo-data", cwd=tmp_path)  # the framework's command: the app's loader
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.startswith("4 tours, 3 bookings (nothing new")


def test_demo_data_json_on_each_backend(database_url: str, tmp_path: Path) -> None:
    url = emptied(database_url)
    runs = [
        nyala("demo-bookings", "--json", cwd=tmp_path, env={"DATABASE_URL": url}) for _ in "ab"
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    check_json_shape(json.loads(runs[0].stdout), harare_today())


def test_the_first_chat_on_a_fresh_sqlite_database_loads_the_demo_once(tmp_path: Path) -> None:
    first = nyala("chat", cwd=tmp_path, stdin="hi\n/quit\n")
    assert first.returncode == 0, first.stderr
    [loaded] = first.stderr.splitlines()
    assert loaded.startswith("loaded demo data: 4 tours, 3 bookings"), loaded
    assert "bot> Hello from Savannah Trails Safaris" in first.stdout
    second = nyala("chat", cwd=tmp_path, stdin="hi\n/quit\n")
    assert second.returncode == 0 and second.stderr == ""
    shown = nyala("demo-bookings", cwd=tmp_path)
    assert "nothing new" in shown.stdout and "+263771234567" in shown.stdout


def test_the_first_serve_on_a_fresh_sqlite_database_loads_the_demo(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "NYALA_", "DATA"))
    }
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(port)],
            cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "nyala: serving" not in log.read_text() and server.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(10)
    lines = log.read_text().splitlines()
    assert any(line.startswith("loaded demo data: 4 tours, 3 bookings") for line in lines)
    assert any(line.startswith("nyala: serving") for line in lines), lines


def test_no_automatic_load_on_postgresql_and_no_safari_demo_for_another_app(
    databases: Databases, tmp_path: Path
) -> None:
    postgres_url = databases.postgresql(app.migration_locations)
    on_postgres = nyala(
        "chat", cwd=tmp_path, stdin="/quit\n", env={"DATABASE_URL": emptied(postgres_url)}
    )
    assert on_postgres.returncode == 0 and on_postgres.stderr == "", on_postgres.stderr
    restaurant = ROOT / "examples" / "restaurant"
    other_app = nyala("--app", str(restaurant), "chat", cwd=tmp_path, stdin="/quit\n")
    # Another app loads its own demo data (if it has any), never the safari catalogue.
    assert other_app.returncode == 0, other_app.stderr
    assert "tours" not in other_app.stderr and "bookings" not in other_app.stderr


@pytest.mark.parametrize("flag", ["--json", "--bogus"])
def test_demo_data_arguments(tmp_path: Path, flag: str) -> None:
    result = nyala("demo-bookings", flag, cwd=tmp_path)
    if flag == "--bogus":
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    else:
        assert result.returncode == 0 and result.stderr == ""
