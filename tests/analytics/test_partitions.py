"""Step events by month: PostgreSQL partitions (created ahead, strays given a month of
their own, retention by dropping months), one plain table on SQLite, the same reports."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, text

from analytics import (
    drop_step_events_before,
    ensure_step_event_partitions,
    generate_snapshots,
    get_flow_completion_rate,
    get_step_funnel,
)
from analytics.partitions import DEFAULT_PARTITION, SCHEMA, is_partitioned, partition_names
from storage import Database, FlowStepEvent, SnapshotPeriod
from tests.analytics.fixed_events import FLOW, HARARE, NOW, load_fixed_events


async def _names(db: Database) -> list[str]:
    async with db.read() as session:
        return await partition_names(session)


async def _rows_in(db: Database, partition: str) -> int:
    async with db.read() as session:
        found = await session.scalar(text(f"SELECT count(*) FROM {SCHEMA}.{partition}"))
        return int(found or 0)


async def _events(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(FlowStepEvent)) or 0)


async def test_postgresql_partitions_by_month_and_sqlite_keeps_one_table(db: Database) -> None:
    async with db.read() as session:
        partitioned = await is_partitioned(session)
    assert partitioned is db.is_postgresql
    if not db.is_postgresql:
        # Nothing to maintain: every function is a no-op, the table stays as it is.
        assert await ensure_step_event_partitions(db, now=NOW) == []
        assert await drop_step_events_before(db, dt.date(2100, 1, 1)) == []
        await load_fixed_events(db)
        assert await _events(db) > 0
        return
    names = await _names(db)
    assert DEFAULT_PARTITION in names
    # The migration made this month's partition and three more ahead.
    today = dt.datetime.now(dt.UTC).date()
    assert f"flow_step_events_{today:%Y_%m}" in names


async def test_months_are_created_ahead_and_strays_get_their_own(db: Database) -> None:
    if not db.is_postgresql:
        return
    await load_fixed_events(db)  # November 2026
    total = await _events(db)
    far = dt.datetime(2031, 5, 10, tzinfo=dt.UTC)
    created = await ensure_step_event_partitions(db, now=far, months_ahead=2)
    assert created[-3:] == [
        "flow_step_events_2031_05",
        "flow_step_events_2031_06",
        "flow_step_events_2031_07",
    ]
    # Idempotent: a second run (another process, the next cron) creates nothing.
    assert await ensure_step_event_partitions(db, now=far, months_ahead=2) == []
    names = await _names(db)
    assert "flow_step_events_2026_11" in names
    # November's events are in November's partition, none left in the default one.
    assert await _rows_in(db, "flow_step_events_2026_11") == total
    assert await _rows_in(db, DEFAULT_PARTITION) == 0
    assert await _events(db) == total


async def test_reports_read_the_same_figures_across_partitions(db: Database) -> None:
    await load_fixed_events(db)
    events = {"db": db, "tz": HARARE, "now": NOW, "use_snapshots": False}
    before = await get_flow_completion_rate(FLOW, **events)  # type: ignore[arg-type]
    funnel = await get_step_funnel(FLOW, **events)  # type: ignore[arg-type]
    # The snapshot cron keeps the partitions ahead and moves strays: same numbers after,
    # from the events and from the snapshot.
    await generate_snapshots(SnapshotPeriod.DAILY, dt.date(2026, 11, 24), db=db, tz=HARARE)
    assert await get_flow_completion_rate(FLOW, **events) == before  # type: ignore[arg-type]
    assert await get_step_funnel(FLOW, **events) == funnel  # type: ignore[arg-type]
    snapshot_backed = await get_flow_completion_rate(FLOW, db=db, tz=HARARE, now=NOW)
    assert snapshot_backed["source"] == {"snapshot_days": 1, "event_days": 6}
    assert {**snapshot_backed, "source": before["source"]} == before
    assert before["total_sessions"] > 0
    if db.is_postgresql:
        assert "flow_step_events_2026_11" in await _names(db)


async def test_retention_drops_whole_months_only(db: Database) -> None:
    if not db.is_postgresql:
        return
    await load_fixed_events(db)
    await ensure_step_event_partitions(db, since=dt.date(2026, 10, 1), now=NOW)
    total = await _events(db)
    # 30 November is inside November: November stays, October (empty) goes.
    dropped = await drop_step_events_before(db, dt.date(2026, 11, 30))
    assert "flow_step_events_2026_10" in dropped
    assert "flow_step_events_2026_11" not in dropped
    assert await _events(db) == total
    # From 1 December, November is whole: its partition goes, and its events with it.
    assert "flow_step_events_2026_11" in await drop_step_events_before(db, dt.date(2026, 12, 1))
    assert await _events(db) == 0
    assert DEFAULT_PARTITION in await _names(db)
    # The shared test database gets its months back for the tests that follow.
    await ensure_step_event_partitions(db, since=dt.date(2026, 10, 1))
