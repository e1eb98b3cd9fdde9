"""Benchmark of the operator console's pages on millions of step events (PostgreSQL).

``python -m bench.console [--events 10000000] [--reps 5]``

Creates its own database (``nyala_bench_console_<random>`` on ``NYALA_BENCH_PG_URL``),
migrates it with the framework's and the safari app's branches, fills it with
:func:`bench.reports.generate` (90 days of sessions, step events and goal events, set
based) and a safari booking behind every ``booking`` goal reached, backfills the 90 days'
daily snapshots in the business timezone (as the schedule would have), adds a payment
awaiting approval, starts the real ``nyala serve`` application of the safari app on
loopback, logs in as an admin and times every console page (server time as the browser
sees it: one GET, body read). The target is < 200 ms per page. The database is dropped
at the end, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import re
import secrets
import statistics
import sys
import time
from decimal import Decimal

import asyncpg
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from analytics import generate_snapshots
from analytics.periods import today_in
from apps.safari import app as safari
from apps.safari.models import Booking, Payment, PaymentMethod, PaymentStatus
from bench.database import ADMIN_URL, database_url
from bench.reports import GOAL, generate
from bot.console.accounts import create_operator
from bot.server import create_app
from bot.settings import Settings
from storage import (
    ConflictError,
    Contact,
    Database,
    FlowSession,
    SnapshotPeriod,
    migrate,
    utcnow,
)
from storage.operators import OperatorRole

TARGET_MS = 200.0
PASSWORD = "bench password 1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _pages(db: Database, reference: str, payment_id: int) -> list[str]:
    async with db.read() as session:
        session_id = await session.scalar(select(func.max(FlowSession.id)))
        wa_id = await session.scalar(
            select(Contact.wa_id).where(Contact.wa_id.is_not(None)).limit(1)
        )
    today = dt.datetime.now(dt.UTC).date()
    week = (today - dt.timedelta(days=6)).isoformat()
    return [
        "/console/",
        "/console/?flow=booking_flow&days=90",
        "/console/funnel?flow=booking_flow&days=7",
        "/console/funnel?flow=booking_flow&days=90",
        "/console/sessions",
        "/console/sessions?flow=booking_flow&status=abandoned",
        f"/console/sessions?flow=booking_flow&from={week}&sort=status",
        "/console/sessions?flow=booking_flow&stopped_at=step_3&days=30",
        f"/console/sessions?q={wa_id}",
        "/console/sessions?page=200",
        f"/console/sessions/{session_id}",
        "/console/events",
        "/console/events?action=error",
        "/console/events?flow=support_flow&step=step_2",
        f"/console/events?from={week}&action=retry",
        "/console/snapshots?flow=booking_flow",
        "/console/bookings",
        f"/console/bookings?q={reference}",
        f"/console/bookings/{reference}",
        "/console/payments",
        f"/console/payments/{payment_id}",
        "/console/conversations",
        "/console/outbox",
        "/console/summaries?days=7",
        "/console/audit",
    ]


async def _bookings(conn: AsyncConnection) -> None:
    """The safari app's rows behind the generated goal events: a tour, a departure, a
    customer per contact and a confirmed booking for every session that reached the
    ``booking`` goal, made when the goal was reached (PostgreSQL)."""
    now = utcnow().replace(microsecond=0)
    await conn.execute(
        text(
            "INSERT INTO tours (id, code, name, description, duration_minutes, start_time, "
            "meeting_point, meeting_address, guide_name, guide_phone, price_per_person, "
            "currency, packing_list, clothing_advice, weather_outlook, park_rules, "
            "safety_guidelines, emergency_contacts, cancellation_policy, active, created_at, "
            "updated_at) VALUES (1, 'bench', 'Bench tour', '', 60, '08:00:00', 'Gate', '', "
            "'', '', 50, 'USD', '[]', '', '', '', '', '[]', '', true, :now, :now)"
        ),
        {"now": now},
    )
    await conn.execute(
        text(
            "INSERT INTO departures (id, tour_id, date, capacity, seats_left) "
            "VALUES (1, 1, :day, 1000000, 1000000)"
        ),
        {"day": now.date()},
    )
    await conn.execute(
        text(
            "INSERT INTO customers (id, contact_id, name, created_at, updated_at) "
            "SELECT DISTINCT g.contact_id, g.contact_id, 'Bench customer', "
            "CAST(:now AS timestamptz), CAST(:now AS timestamptz) "
            "FROM goal_events g WHERE g.goal = :goal"
        ),
        {"now": now, "goal": GOAL},
    )
    await conn.execute(
        text(
            "INSERT INTO bookings (reference, customer_id, tour_id, departure_id, "
            "travelers_count, total_cost, currency, status, created_at, updated_at) "
            "SELECT g.reference, g.contact_id, 1, 1, 2, 100, 'USD', 'confirmed', g.at, g.at "
            "FROM goal_events g WHERE g.goal = :goal"
        ),
        {"goal": GOAL},
    )
    await conn.execute(
        text("SELECT setval(pg_get_serial_sequence('customers', 'id'), max(id)) FROM customers")
    )


async def _pending_payment(db: Database) -> tuple[str, int]:
    """A bank transfer waiting for approval on the newest generated booking."""
    async with db.transaction() as session:
        booking = await session.scalar(select(Booking).order_by(Booking.id.desc()).limit(1))
        assert booking is not None
        payment = Payment(
            booking_id=booking.id,
            amount=Decimal("50.00"),
            currency=booking.currency,
            method=PaymentMethod.BANK_TRANSFER,
            status=PaymentStatus.PENDING,
        )
        session.add(payment)
        await session.flush()
        return booking.reference, payment.id


async def _login(http: ClientSession, base: str) -> None:
    async with http.get(base + "/console/login") as response:
        token = _CSRF.search(await response.text())
    assert token is not None
    data = {"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)}
    async with http.post(base + "/console/login", data=data, allow_redirects=False) as response:
        assert response.status == 303, response.status


async def _bench(
    url: str, events: int, reps: int, *, fill: bool = True
) -> list[tuple[str, float, float, float]]:
    db = Database(url)
    try:
        await migrate(db, safari.migration_locations)
        if not fill:
            reference, payment_id = await _pending_payment(db)
            with contextlib.suppress(ConflictError):
                await create_operator(db, "bench", PASSWORD, OperatorRole.ADMIN, actor="bench")
            pages = await _pages(db, reference, payment_id)
            return await _serve_and_time(url, pages, reps)
        started = time.perf_counter()
        written = await generate(db, events)
        async with db.engine.begin() as conn:
            await _bookings(conn)
        seconds = time.perf_counter() - started
        print(f"generated {written:,} step events in {seconds:.0f} s", file=sys.stderr)
        tz = safari.timezone  # the business day, as the schedule uses
        today = today_in(tz)
        for offset in range(1, 91):
            await generate_snapshots(
                SnapshotPeriod.DAILY, today - dt.timedelta(days=offset), db=db, tz=tz
            )
        reference, payment_id = await _pending_payment(db)
        await create_operator(db, "bench", PASSWORD, OperatorRole.ADMIN, actor="bench")
        pages = await _pages(db, reference, payment_id)
    finally:
        await db.dispose()
    return await _serve_and_time(url, pages, reps)


async def _serve_and_time(
    url: str, pages: list[str], reps: int
) -> list[tuple[str, float, float, float]]:
    server = TestServer(create_app(Settings(database_url=url), safari), host="127.0.0.1")
    await server.start_server()
    results = []
    try:
        base = str(server.make_url("")).rstrip("/")
        async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
            await _login(http, base)
            for page in pages:
                samples = []
                for rep in range(reps + 1):
                    start = time.perf_counter()
                    async with http.get(base + page) as response:
                        await response.read()
                        assert response.status == 200, (page, response.status)
                    if rep:  # the first request warms caches and the pool
                        samples.append((time.perf_counter() - start) * 1000)
                results.append((page, statistics.median(samples), min(samples), max(samples)))
                print(f"{statistics.median(samples):8.1f} ms  {page}", file=sys.stderr)
    finally:
        await server.close()
    return results


async def run(
    events: int, reps: int, admin_url: str = ADMIN_URL
) -> list[tuple[str, float, float, float]]:
    """Create a database, fill it, time the pages, drop it."""
    name = f"nyala_bench_console_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        return await _bench(database_url(name, admin_url), events, reps)
    finally:
        admin = await asyncpg.connect(admin_url, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.console``: 0 when every page is under the target, else 1."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.console", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="step events to generate")
    parser.add_argument("--reps", type=int, default=5, help="timed requests per page")
    parser.add_argument(
        "--url",
        help="time the pages on this already filled database (nothing generated or dropped)",
    )
    args = parser.parse_args(argv)
    if args.events < 1000 or args.reps < 1:
        parser.error("--events must be at least 1000 and --reps at least 1")
    if args.url:
        results = asyncio.run(_bench(args.url, 0, args.reps, fill=False))
    else:
        results = asyncio.run(run(args.events, args.reps))
    print("\n| page | median ms | min | max |\n|---|---:|---:|---:|")
    for page, median, low, high in results:
        flag = "" if median < TARGET_MS else " ⚠"
        print(f"| `{page}` | {median:.1f}{flag} | {low:.1f} | {high:.1f} |")
    slow = [page for page, median, _low, _high in results if median >= TARGET_MS]
    print(f"\n{len(results)} pages, {len(slow)} at or over {TARGET_MS:.0f} ms", file=sys.stderr)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
