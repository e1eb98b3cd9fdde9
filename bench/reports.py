"""Benchmark of the analytics reports on millions of synthetic step events.

``python -m bench.reports [--events N] [--backend postgresql|sqlite] [--reps 5]``

Creates its own database (PostgreSQL: ``nyala_bench_reports_<random>`` on
``NYALA_BENCH_PG_URL``; SQLite: a temporary file), migrates it, fills it set-based
(``generate_series`` on PostgreSQL, recursive CTEs on SQLite; no rows built in Python)
with 90 days of sessions of four flows, about 8 step events each, and times every
report over the last 7 and 90 days, from the events and from settled daily snapshots.
The database is dropped at the end, also on errors.

:func:`run_report_bench` is the entry point for the main benchmark runner.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from analytics import (
    ensure_step_event_partitions,
    generate_snapshots,
    get_error_analysis,
    get_flow_completion_rate,
    get_kpis,
    get_step_funnel,
)
from analytics.periods import today_in
from bench.database import ADMIN_URL, database_url
from storage import Database, SnapshotPeriod, migrate, utcnow

FLOWS = ("booking_flow", "payment_flow", "support_flow", "id_upload_flow")
STEPS_PER_FLOW = 5
DAYS = 90
# Completed sessions give 9 events, abandoned ~4, errors ~6, plus a retry in 10%.
EVENTS_PER_SESSION = 7.7
REPORTED_FLOW = "booking_flow"
GOAL = "booking"  # the conversion goal the KPIs count (one per declared goal)

# Deterministic per-session "random" numbers from the session id (same on both backends).
R_STATUS = "((s.id * 2654435761) % 1000)"
R_DEPTH = "((s.id * 40503) % 997)"
R_EXTRA = "((s.id * 69069) % 1000)"
STATUS = (
    f"CASE WHEN {R_STATUS} < 700 THEN 'completed' WHEN {R_STATUS} < 920 THEN 'abandoned' "
    f"WHEN {R_STATUS} < 970 THEN 'error' ELSE 'abandoned' END"
)
DEPTH = (
    f"CASE WHEN {R_STATUS} < 700 THEN {STEPS_PER_FLOW} "
    f"WHEN {R_STATUS} >= 920 AND {R_STATUS} < 970 THEN 1 + {R_DEPTH} % {STEPS_PER_FLOW} "
    f"ELSE 1 + {R_DEPTH} % {STEPS_PER_FLOW - 1} END"
)


@dataclass(frozen=True, slots=True)
class Timing:
    """One report over one range: milliseconds over the repetitions."""

    report: str
    range: str
    source: str
    median_ms: float
    min_ms: float
    max_ms: float


@dataclass(slots=True)
class ReportBenchResult:
    """What one benchmark run measured."""

    backend: str
    events: int
    sessions: int
    reps: int
    generate_seconds: float
    snapshot_seconds: float
    server: str
    timings: list[Timing] = field(default_factory=list)
    # The machine's 1-minute load average before and after the run (2 cores here: above
    # 2 means other work shared them).
    load_before: float = 0.0
    load_after: float = 0.0

    def table(self) -> str:
        """The timings as a Markdown table."""
        lines = [
            f"{self.backend}, {self.events:,} events ({self.sessions:,} sessions, "
            f"{len(FLOWS)} flows, {DAYS} days), {self.reps} repetitions; "
            f"generated in {self.generate_seconds:.0f} s, "
            f"{DAYS}-day daily snapshots of every flow in {self.snapshot_seconds:.1f} s; "
            f"load average {self.load_before:.2f} before, {self.load_after:.2f} after",
            "",
            "| report | range | source | median ms | min–max ms |",
            "|---|---|---|---:|---:|",
        ]
        lines += [
            f"| {t.report} | {t.range} | {t.source} | {t.median_ms:.1f} | "
            f"{t.min_ms:.1f}–{t.max_ms:.1f} |"
            for t in self.timings
        ]
        return "\n".join(lines)


def _pg_time(offset_seconds: str) -> str:
    return f"(CAST(:t0 AS timestamptz) + ({offset_seconds}) * interval '1 second')"


def _sqlite_time(offset_seconds: str) -> str:
    return f"datetime(:t0_julian + ({offset_seconds}) / 86400.0)"


def _numbers(postgresql: bool, name: str, count: str) -> str:
    """A row source ``name(n)`` of 1 … count."""
    if postgresql:
        return f"generate_series(1, {count}) AS {name}(n)"
    return f"{name}"


def _sqlite_with(name: str, count: str) -> str:
    return (
        f"WITH RECURSIVE {name}(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM {name} "
        f"WHERE n < {count}) "
    )


async def _fill(conn: AsyncConnection, *, postgresql: bool, sessions: int) -> None:
    """Write contacts, sessions, events and bookings, all in SQL."""
    contacts = max(1, sessions // 3)
    now = utcnow().replace(microsecond=0)
    t0 = now - dt.timedelta(days=DAYS)
    span = DAYS * 86400 - 3600  # every session ended an hour before now
    params: dict[str, Any] = {
        "contacts": contacts,
        "sessions": sessions,
        "t0": t0 if postgresql else None,
        "t0_julian": t0.timestamp() / 86400.0 + 2440587.5,
        "span": span,
        "created": now if postgresql else now.strftime("%Y-%m-%d %H:%M:%S"),
    }
    at = _pg_time if postgresql else _sqlite_time
    pre = "" if postgresql else _sqlite_with("g", ":contacts")
    await conn.execute(
        text(
            f"{pre}INSERT INTO contacts (id, wa_id, profile_name, attributes, created_at, "
            "updated_at) SELECT g.n, '2637' || CAST(g.n AS TEXT), 'Bench', '{}', :created, "
            f":created FROM {_numbers(postgresql, 'g', ':contacts')}"
        ),
        params,
    )
    steps = ", ".join(
        f"('{flow}', {k}, '{flow.removesuffix('_flow')}_step_{k}')"
        for flow in FLOWS
        for k in range(1, STEPS_PER_FLOW + 1)
    )
    await conn.execute(
        text("CREATE TEMPORARY TABLE bench_steps (flow_name TEXT, k INT, step TEXT)")
    )
    await conn.execute(text(f"INSERT INTO bench_steps VALUES {steps}"))
    flow_case = "CASE s.id % 4 " + " ".join(f"WHEN {i} THEN '{f}'" for i, f in enumerate(FLOWS))
    started = at(
        "CAST(s.id AS REAL) * :span / :sessions"
        if not postgresql
        else "s.id::float8 * :span / :sessions"
    )
    ended = at(
        (
            "CAST(s.id AS REAL) * :span / :sessions"
            if not postgresql
            else "s.id::float8 * :span / :sessions"
        )
        + f" + ({DEPTH}) * 40 + {R_EXTRA} % 60"
    )
    pre = "" if postgresql else _sqlite_with("s", ":sessions")
    source = (
        "generate_series(CAST(1 AS BIGINT), :sessions) AS s(id)" if postgresql else "s_ids AS s"
    )
    if not postgresql:
        pre = (
            _sqlite_with("s_ids", ":sessions")
            .replace("s_ids(n)", "s_ids(id)")
            .replace("SELECT n + 1", "SELECT id + 1")
            .replace("WHERE n <", "WHERE id <")
        )
    await conn.execute(
        text(
            f"{pre}INSERT INTO flow_sessions (id, contact_id, flow_name, flow_version, "
            "started_at, completed_at, status, context_data, current_step, last_activity_at, "
            "ended_reason) "
            f"SELECT s.id, 1 + (s.id * 7919) % :contacts, {flow_case} END, "
            "CASE WHEN s.id * 5 > :sessions * 4 THEN 'v2' ELSE 'v1' END, "
            f"{started}, {ended}, {STATUS}, '{{}}', "
            f"(SELECT step FROM bench_steps b WHERE b.flow_name = ({flow_case} END) "
            f"AND b.k = ({DEPTH})), {ended}, "
            f"CASE WHEN ({STATUS}) = 'abandoned' AND {R_EXTRA} BETWEEN 500 AND 560 "
            "THEN 'handed to a person: the user asked for a person' "
            f"WHEN ({STATUS}) = 'abandoned' THEN 'timed out after 30 min without a reply' "
            f"WHEN ({STATUS}) = 'error' THEN 'RuntimeError: bench' END FROM {source}"
        ),
        params,
    )
    # Events: entered at every step reached; completed at every step left; an error at the
    # last step of error sessions; a retry at the second step (or the first) in 10%; errors
    # and retries carry their stable code, as the tracker writes it.
    offset = (
        "EXTRACT(EPOCH FROM s.started_at - CAST(:t0 AS timestamptz))"
        if postgresql
        else "(julianday(s.started_at) - :t0_julian) * 86400.0"
    )
    nums = "generate_series(1, 5) AS k(n)" if postgresql else "k"
    pre = "" if postgresql else _sqlite_with("k", "5")
    joined = "FROM flow_sessions s JOIN bench_steps b ON b.flow_name = s.flow_name"
    depth = f"({DEPTH})"
    session = "s.flow_name, s.flow_version, s.started_at"
    await conn.execute(
        text(
            f"{pre}INSERT INTO flow_step_events (session_id, step_name, action, timestamp, "
            "time_spent, input_value, output_value, error_message, retry_count, error_code, "
            "flow_name, flow_version, session_started_at) "
            f"SELECT s.id, b.step, 'entered', {at(f'{offset} + (b.k - 1) * 40')}, NULL, NULL, "
            f"NULL, NULL, 0, NULL, {session} {joined} AND b.k <= {depth} "
            f"UNION ALL SELECT s.id, b.step, 'completed', "
            f"{at(f'{offset} + (b.k - 1) * 40 + 5 + (s.id + b.k) % 30')}, "
            f"5 + (s.id + b.k) % 30, 'answer', NULL, NULL, 0, NULL, {session} "
            f"{joined} AND (b.k < {depth} AND (s.status <> 'completed' OR b.k < "
            f"{STEPS_PER_FLOW})) "
            f"UNION ALL SELECT s.id, b.step, 'error', {at(f'{offset} + b.k * 40')}, NULL, "
            f"NULL, NULL, 'RuntimeError: bench', 0, 'RuntimeError', {session} "
            f"{joined} AND s.status = 'error' AND b.k = {depth} "
            f"UNION ALL SELECT s.id, b.step, 'retry', {at(f'{offset} + (b.k - 1) * 40 + 2')}, "
            "NULL, 'lots', NULL, '“lots” isn''t a number I understand. Please send a whole "
            f"number from 1 to 8, for example 2.', 1, 'integer.not_a_number', {session} "
            f"{joined} AND {R_EXTRA} < 100 AND b.k = CASE WHEN {depth} >= 2 THEN 2 ELSE 1 END"
        ).bindparams(),
        params,
    )
    del nums


async def _goal_events(conn: AsyncConnection, *, postgresql: bool) -> None:
    """The goal ``booking`` reached in 40% of completed booking sessions, 100 seconds
    after each started (the goal events an app records with ``ctx.reach_goal``)."""
    reached_at = (
        "s.started_at + interval '100 seconds'"
        if postgresql
        else "datetime(julianday(s.started_at) + 100 / 86400.0)"
    )
    await conn.execute(
        text(
            "INSERT INTO goal_events (goal, contact_id, session_id, reference, at) "
            f"SELECT :goal, s.contact_id, s.id, 'B' || CAST(s.id AS TEXT), {reached_at} "
            "FROM flow_sessions s WHERE s.flow_name = :flow AND s.status = 'completed' "
            "AND s.id % 5 < 2"
        ),
        {"goal": GOAL, "flow": REPORTED_FLOW},
    )


async def _without_event_indexes(
    db: Database, work: Callable[[AsyncConnection], Awaitable[None]]
) -> None:
    """Run ``work`` with flow_step_events' secondary indexes dropped, then rebuild them
    (one sort per index is much faster than maintaining six while loading)."""
    from storage.models import Base

    table = Base.metadata.tables["flow_step_events"]
    async with db.engine.begin() as conn:
        for index in table.indexes:
            await conn.run_sync(index.drop)
        await work(conn)
        for index in table.indexes:
            await conn.run_sync(index.create)


async def generate(db: Database, events: int) -> int:
    """Fill ``db`` with about ``events`` step events; returns how many were written."""
    sessions = max(1, round(events / EVENTS_PER_SESSION))
    # On PostgreSQL the events go straight to their monthly partitions (the migration
    # made only this month's and those ahead), as on a database that has been live.
    await ensure_step_event_partitions(db, since=(utcnow() - dt.timedelta(days=DAYS)).date())

    async def fill(conn: AsyncConnection) -> None:
        await _fill(conn, postgresql=db.is_postgresql, sessions=sessions)
        await _goal_events(conn, postgresql=db.is_postgresql)

    await _without_event_indexes(db, fill)
    async with db.engine.begin() as conn:
        if db.is_postgresql:
            await conn.execute(
                text("SELECT setval(pg_get_serial_sequence('flow_sessions', 'id'), :n)"),
                {"n": sessions},
            )
        written = int(
            (await conn.execute(text("SELECT count(*) FROM flow_step_events"))).scalar_one()
        )
    # Fresh statistics, as autovacuum would have gathered on a live database.
    async with db.engine.connect() as plain:
        conn = await plain.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE" if db.is_postgresql else "ANALYZE"))
    return written


async def _time(work: Callable[[], Awaitable[object]], reps: int) -> tuple[float, float, float]:
    await work()  # warm the caches and the connection pool
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples), max(samples)


async def _measure(db: Database, reps: int, *, snapshots: bool) -> list[Timing]:
    flow = REPORTED_FLOW
    source = "snapshots + today's events" if snapshots else "events"
    reports: dict[str, Callable[[int], Awaitable[object]]] = {
        "completion": lambda days: get_flow_completion_rate(
            flow, days=days, db=db, use_snapshots=snapshots
        ),
        "funnel": lambda days: get_step_funnel(flow, days=days, db=db, use_snapshots=snapshots),
        "kpis": lambda days: get_kpis(
            flow, days=days, db=db, use_snapshots=snapshots, goals=[GOAL]
        ),
    }
    if not snapshots:
        reports["errors"] = lambda days: get_error_analysis(flow, days=days, db=db)
    timings = []
    for name, report in reports.items():
        for days in (7, DAYS):
            median, low, high = await _time(functools.partial(report, days), reps)
            timings.append(Timing(name, f"{days} days", source, median, low, high))
    return timings


async def _bench(url: str, backend: str, events: int, reps: int, server: str) -> ReportBenchResult:
    db = Database(url)
    load_before = os.getloadavg()[0]
    try:
        await migrate(db)
        started = time.perf_counter()
        written = await generate(db, events)
        generated = time.perf_counter() - started
        sessions = round(events / EVENTS_PER_SESSION)
        result = ReportBenchResult(
            backend=backend,
            events=written,
            sessions=sessions,
            reps=reps,
            generate_seconds=generated,
            snapshot_seconds=0.0,
            server=server,
            load_before=load_before,
        )
        result.timings += await _measure(db, reps, snapshots=False)
        # Backfill the daily snapshots of the 90 days (yesterday and before are settled).
        started = time.perf_counter()
        today = today_in(dt.UTC)
        for offset in range(1, DAYS + 1):
            await generate_snapshots(
                SnapshotPeriod.DAILY, today - dt.timedelta(days=offset), db=db
            )
        result.snapshot_seconds = time.perf_counter() - started
        result.timings += await _measure(db, reps, snapshots=True)
        result.load_after = os.getloadavg()[0]
        return result
    finally:
        await db.dispose()


async def run_report_bench(
    *,
    events: int = 1_000_000,
    backend: str = "postgresql",
    reps: int = 5,
    admin_url: str = ADMIN_URL,
) -> ReportBenchResult:
    """Create a database, fill it, time the reports, drop it; returns the figures."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="nyala-bench-reports-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            import sqlite3

            return await _bench(url, backend, events, reps, f"SQLite {sqlite3.sqlite_version}")
    name = f"nyala_bench_reports_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        server = f"PostgreSQL {await admin.fetchval('SHOW server_version')}"
    finally:
        await admin.close()
    try:
        return await _bench(database_url(name, admin_url), backend, events, reps, server)
    finally:
        admin = await asyncpg.connect(admin_url, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.reports``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.reports", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="step events to generate")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per report (≥ 5)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.events < 1000:
        parser.error("--events must be at least 1000")
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    try:
        result = asyncio.run(
            run_report_bench(events=args.events, backend=args.backend, reps=args.reps)
        )
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"bench.reports: {exc}", file=sys.stderr)
        return 1
    print(result.table())
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
