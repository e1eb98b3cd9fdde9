"""What the restaurant brings beside its flows: its table and migration branch (and the
constraint that makes a double-booked table impossible, shown by guests racing for the
last table), its CLI command and its console page. Both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestServer
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.cli import cli
from bot.console.accounts import create_operator
from bot.server import create_app
from bot.settings import Settings
from examples.restaurant.app import app
from examples.restaurant.models import FLOOR, Reservation, ReservationStatus
from flows.testing import ChatFactory, ChatTester
from storage import Base, Database, new_metadata
from storage.operators import OperatorRole
from tests.conftest import empty_tables
from tests.examples.test_restaurant import open_chat, reach_review, taken

ROOT = Path(__file__).resolve().parents[2]
RESTAURANT = str(ROOT / "examples" / "restaurant")
WEDNESDAY = dt.date(2030, 4, 3)
TAKEN = (
    "Sorry, the last table for 6 at 19:30 on Wednesday 3 April has just been taken. "
    "Still free that day: 12:00, 13:30, 18:00. Tap *Change time* to pick one."
)


def reservation(table: str = "T6", *, reference: str = "MG-AAAAAA") -> Reservation:
    return Reservation(
        reference=reference,
        table_code=table,
        day=WEDNESDAY,
        sitting="19:30",
        party_size=6,
        guest_name="Rudo",
    )


# the table and its branch ------------------------------------------------------------------


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_a_restaurant_database_holds_only_framework_and_restaurant_tables(
    db: Database,
) -> None:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(_table_names)
    framework = set(Base.metadata.tables)
    assert names == framework | {"reservations", "alembic_version"}
    assert names - framework == {"reservations", "alembic_version"}
    for other_apps in ("tours", "departures", "bookings", "payments", "travelers", "customers"):
        assert other_apps not in names
    assert "document_counters" in names  # a framework table, for any app's numbering


def _differences(connection: Connection) -> list[object]:
    both = new_metadata()
    for metadata in (Base.metadata, *app.metadata):
        for table in metadata.tables.values():
            table.to_metadata(both)
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, both))


async def test_the_restaurant_branch_creates_exactly_its_models(db: Database) -> None:
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    assert version == "restaurant_0001"


async def test_a_table_cannot_be_confirmed_twice_at_one_sitting(db: Database) -> None:
    async with db.transaction() as session:
        session.add(reservation())
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            session.add(reservation(reference="MG-BBBBBB"))

    # Another table, or another sitting, is fine; cancelling frees the table.
    async with db.transaction() as session:
        session.add(reservation("T5", reference="MG-CCCCCC"))
        first = await session.scalar(select(Reservation).where(Reservation.table_code == "T6"))
        assert first is not None
        first.cancel(dt.datetime(2030, 4, 2, tzinfo=dt.UTC))
    async with db.transaction() as session:
        session.add(reservation(reference="MG-DDDDDD"))
    async with db.read() as session:
        rows = (await session.execute(select(Reservation.table_code, Reservation.status))).all()
    assert sorted(rows) == [
        ("T5", ReservationStatus.CONFIRMED),
        ("T6", ReservationStatus.CANCELLED),
        ("T6", ReservationStatus.CONFIRMED),
    ]


# guests racing for the last table ------------------------------------------------------------


async def two_guests_at_review(nyala_chat: ChatFactory) -> tuple[ChatTester, ChatTester]:
    """Ana and Ben, six each, at the review of Wednesday 19:30 where only T6 is left."""
    ana = await open_chat(nyala_chat, phone="263770000001")
    ben = await open_chat(nyala_chat, phone="263770000002")
    async with ana.engine.db.transaction() as session:
        session.add_all(
            taken(WEDNESDAY, "19:30", *(t.code for t in FLOOR.tables if t.code != "T6"))
        )
    await reach_review(ana, party="6", name="Ana Moyo", phone="0772000001")
    await reach_review(ben, party="6", name="Ben Dube", phone="0772000002")
    return ana, ben


async def confirmed_at_1930(db: Database) -> list[tuple[str, int | None]]:
    async with db.read() as session:
        rows = await session.execute(
            select(Reservation.table_code, Reservation.contact_id).where(
                Reservation.day == WEDNESDAY,
                Reservation.sitting == "19:30",
                Reservation.table_code == "T6",
            )
        )
        return [(code, contact) for code, contact in rows]


async def test_two_guests_confirm_the_last_table_at_once(nyala_chat: ChatFactory) -> None:
    ana, ben = await two_guests_at_review(nyala_chat)

    await asyncio.gather(ana.send(tap="Confirm booking"), ben.send(tap="Confirm booking"))

    first_lines = sorted([ana.texts[0], ben.texts[0]])
    assert first_lines[0] == TAKEN
    assert re.match(r"You're booked, (Ana|Ben)! Your reference is \*MG-", first_lines[1])
    assert len(await confirmed_at_1930(ana.engine.db)) == 1  # exactly one reservation row
    loser = ana if ana.texts[0] == TAKEN else ben
    assert loser.last_text.startswith("Please check your booking:")  # asked again: a retry
    assert ("review", "retry") in await loser.steps()
    assert "Change time" in loser.options


async def _wait_until_blocked(db: Database) -> None:
    """Until another connection of this database waits for a lock (PostgreSQL)."""
    for _ in range(500):
        async with db.read() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the guest's confirmation never waited for the other reservation")


async def test_the_unique_index_decides_when_both_saw_the_table_free(
    nyala_chat: ChatFactory,
) -> None:
    """Ana's check sees T6 free (the other reservation is not committed yet); her insert
    then waits on the unique index and fails once the other commits (on PostgreSQL: the
    constraint decides, not the check). SQLite runs one writer at a time, so there she
    waits for the other transaction and her check sees the table taken."""
    ana, _ben = await two_guests_at_review(nyala_chat)
    db = ana.engine.db
    async with db.transaction() as session:
        session.add(reservation())
        await session.flush()  # holds T6 at 19:30, not committed
        confirming = asyncio.create_task(ana.send(tap="Confirm booking"))
        if db.is_postgresql:
            await _wait_until_blocked(db)
        else:
            await asyncio.sleep(0)
    await confirming

    assert ana.texts[0] == TAKEN
    assert await confirmed_at_1930(db) == [("T6", None)]


# the command ---------------------------------------------------------------------------------


def test_the_restaurant_cli_lists_its_command_and_no_other_apps() -> None:
    result = CliRunner().invoke(cli, ["--app", RESTAURANT, "--help"])
    assert result.exit_code == 0, result.output
    commands = re.findall(r"^  ([a-z][a-z-]*)\s", result.output, re.MULTILINE)
    assert "reservations" in commands
    assert {"migrate", "chat", "serve"} <= set(commands)
    for safari_command in ("send-tour-summaries", "send-id-reminders", "tours", "bookings"):
        assert safari_command not in commands
    assert "tour" not in result.output.lower()


async def _add(url: str, *rows: Reservation) -> None:
    """Empty the database (as the ``db`` fixture does), then add ``rows``."""
    db = Database(url)
    try:
        await empty_tables(db)
        async with db.transaction() as session:
            session.add_all(rows)
    finally:
        await db.dispose()


def test_the_reservations_command_prints_the_day(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    late = reservation("T3", reference="MG-LATE01")
    late.guest_name, late.party_size, late.phone = "Rudo Chikwanha", 4, "+263772123456"
    early = reservation("T1", reference="MG-EARLY1")
    early.sitting, early.party_size, early.guest_name = "12:00", 2, "Ana Dube"
    gone = reservation("T5", reference="MG-GONE01")
    gone.status = ReservationStatus.CANCELLED
    other_day = reservation("T2", reference="MG-OTHER1")
    other_day.day = WEDNESDAY + dt.timedelta(days=1)
    asyncio.run(_add(database_url, late, early, gone, other_day))
    monkeypatch.setenv("DATABASE_URL", database_url)

    result = CliRunner().invoke(cli, ["--app", RESTAURANT, "reservations", "--day", "2030-04-03"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Wednesday 3 April 2030: 2 reservations, 6 guests"
    assert re.fullmatch(r"  12:00  T1\s+2 × Ana Dube\s+-\s+MG-EARLY1", lines[1])
    assert re.fullmatch(r"  19:30  T3\s+4 × Rudo Chikwanha\s+\+263772123456\s+MG-LATE01", lines[2])
    assert len(lines) == 3  # neither the cancelled one nor another day's

    empty = CliRunner().invoke(cli, ["--app", RESTAURANT, "reservations", "--day", "2030-04-09"])
    assert empty.output == "Tuesday 9 April 2030: no reservations\n"


# the console page ----------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


@pytest_asyncio.fixture
async def server(database_url: str, db: Database) -> AsyncIterator[str]:
    """``nyala serve`` of the restaurant (sandbox); its base URL."""
    running = TestServer(create_app(Settings(database_url=database_url), app), host="127.0.0.1")
    await running.start_server()
    try:
        yield str(running.make_url("")).rstrip("/")
    finally:
        await running.close()


async def login(http: ClientSession, base: str, db: Database, role: OperatorRole) -> None:
    """Log in as a new operator of ``role``."""
    await create_operator(db, role.value, PASSWORD, role, actor="test")
    async with http.get(f"{base}/console/login") as page:
        token = _CSRF.search(await page.text())
    assert token is not None
    form = {"username": role.value, "password": PASSWORD, "csrf_token": token[1]}
    async with http.post(f"{base}/console/login", data=form, allow_redirects=False) as done:
        assert done.status == 303


async def test_the_console_lists_a_days_reservations_and_cancels_one(
    server: str, db: Database
) -> None:
    await _add_async(db)
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        await login(http, server, db, OperatorRole.AGENT)
        async with http.get(f"{server}/console/") as home:
            assert 'href="/console/reservations"' in await home.text()  # in the navigation
        async with http.get(f"{server}/console/reservations?day=2030-04-03") as page:
            assert page.status == 200
            html = await page.text()
        assert "Wednesday 03 April 2030: 2 tables, 8 guests" in html
        assert html.index("MG-EARLY1") < html.index("MG-LATE01")  # by sitting
        token = _CSRF.search(html)
        assert token is not None

        async with http.post(
            f"{server}/console/reservations/MG-LATE01/cancel",
            data={"csrf_token": token[1]},
            allow_redirects=False,
        ) as cancelled:
            assert cancelled.status == 303
            assert cancelled.headers["Location"] == "/console/reservations?day=2030-04-03"
        async with http.get(f"{server}/console/reservations?day=2030-04-03") as page:
            html = await page.text()
        assert "1 table, 2 guests" in html
        assert "Cancelled MG-LATE01: table T6 is free." in html

    async with db.read() as session:
        row = await session.scalar(select(Reservation).where(Reservation.reference == "MG-LATE01"))
    assert row is not None
    assert row.status is ReservationStatus.CANCELLED


async def test_a_viewer_sees_the_reservations_but_cannot_cancel(server: str, db: Database) -> None:
    await _add_async(db)
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        await login(http, server, db, OperatorRole.VIEWER)
        async with http.get(f"{server}/console/reservations?day=2030-04-03") as page:
            html = await page.text()
        assert "MG-LATE01" in html
        assert "/cancel" not in html
        token = _CSRF.search(html)
        assert token is not None
        async with http.post(
            f"{server}/console/reservations/MG-LATE01/cancel", data={"csrf_token": token[1]}
        ) as refused:
            assert refused.status == 403


async def _add_async(db: Database) -> None:
    late = reservation("T6", reference="MG-LATE01")
    early = reservation("T1", reference="MG-EARLY1")
    early.sitting, early.party_size = "12:00", 2
    async with db.transaction() as session:
        session.add_all([late, early])
