"""Snapshots: the seed's fields, idempotent regeneration, weekly and monthly periods."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from analytics import (
    generate_daily_snapshot,
    generate_monthly_snapshot,
    generate_snapshots,
    generate_weekly_snapshot,
    list_snapshots,
)
from analytics.models import FlowMetricSnapshot, FlowStepMetricSnapshot, SnapshotPeriod
from analytics.periods import local_midnight
from storage import Database
from tests.analytics.fixed_events import FLOW, HARARE, NOW, load_fixed_events

LATER = NOW + dt.timedelta(days=1)


async def _count(db: Database, model: type[FlowMetricSnapshot | FlowStepMetricSnapshot]) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_daily_snapshot_has_the_seed_fields(db: Database) -> None:
    await load_fixed_events(db)
    day = dt.date(2026, 11, 24)  # S1 and S5 (which ends after local midnight)
    snapshot = await generate_daily_snapshot(FLOW, day, db=db, tz=HARARE, now=LATER)
    assert snapshot is not None
    assert snapshot.flow_name == FLOW
    assert snapshot.period is SnapshotPeriod.DAILY
    assert snapshot.period_start == local_midnight(day, HARARE)
    assert snapshot.period_start == dt.datetime(2026, 11, 23, 22, tzinfo=dt.UTC)
    assert snapshot.period_end == dt.datetime(2026, 11, 24, 22, tzinfo=dt.UTC)
    assert (snapshot.total_sessions, snapshot.completed_sessions) == (2, 2)
    assert (snapshot.abandoned_sessions, snapshot.error_sessions) == (0, 0)
    assert snapshot.avg_duration_seconds == 630.0
    assert (snapshot.total_errors, snapshot.error_rate) == (0, 0.0)
    assert (snapshot.converted_sessions, snapshot.returning_sessions) == (1, 1)
    steps = {s.step_name: s for s in snapshot.steps}
    assert steps["lead_traveler_name"].skipped == 2
    assert steps["choose_tour"].time_spent_total == 610.0


async def test_regenerating_replaces_never_duplicates(db: Database) -> None:
    await load_fixed_events(db)
    day = dt.date(2026, 11, 21)  # S4 (error) and S6 (handed off)
    first = await generate_daily_snapshot(FLOW, day, db=db, tz=HARARE, now=NOW)
    second = await generate_daily_snapshot(FLOW, day, db=db, tz=HARARE, now=LATER)
    assert first is not None and second is not None
    assert second.id == first.id
    assert await _count(db, FlowMetricSnapshot) == 1
    assert await _count(db, FlowStepMetricSnapshot) == len(second.steps) == 4
    assert (second.error_sessions, second.error_rate, second.total_errors) == (1, 50.0, 1)
    assert second.handed_off_sessions == 1
    assert second.created_at == LATER


async def test_weekly_and_monthly_periods(db: Database) -> None:
    await load_fixed_events(db)
    week = await generate_weekly_snapshot(FLOW, dt.date(2026, 11, 25), db=db, tz=HARARE)
    # Monday 23 … Sunday 29 November: S1, S2, S5, S7.
    assert week is not None
    assert week.period_start == local_midnight(dt.date(2026, 11, 23), HARARE)
    assert week.period_end == local_midnight(dt.date(2026, 11, 30), HARARE)
    assert (week.total_sessions, week.active_sessions) == (4, 1)
    month = await generate_monthly_snapshot(FLOW, dt.date(2026, 11, 3), db=db, tz=HARARE)
    assert month is not None
    assert month.period_end == local_midnight(dt.date(2026, 12, 1), HARARE)
    assert month.total_sessions == 9


async def test_every_flow_with_sessions_gets_one_row(db: Database) -> None:
    await load_fixed_events(db)
    day = dt.date(2026, 11, 24)
    for _ in range(2):  # cron-safe: a second run replaces
        written = await generate_snapshots(SnapshotPeriod.DAILY, day, db=db, tz=HARARE)
        assert sorted(s.flow_name for s in written) == ["booking_flow", "support_flow"]
    assert await _count(db, FlowMetricSnapshot) == 2
    quiet = await generate_snapshots("daily", dt.date(2026, 1, 1), db=db, tz=HARARE)
    assert quiet == []


async def test_an_unknown_flow_writes_nothing(db: Database) -> None:
    await load_fixed_events(db)
    assert await generate_daily_snapshot("nope", dt.date(2026, 11, 24), db=db) is None
    assert await _count(db, FlowMetricSnapshot) == 0


async def test_listing_snapshots_oldest_first(db: Database) -> None:
    await load_fixed_events(db)
    for day in (dt.date(2026, 11, 22), dt.date(2026, 11, 21), dt.date(2026, 11, 23)):
        await generate_daily_snapshot(FLOW, day, db=db, tz=HARARE)
    await generate_weekly_snapshot(FLOW, dt.date(2026, 11, 23), db=db, tz=HARARE)
    rows = await list_snapshots(FLOW, db=db, tz=HARARE)
    assert [r.period_start.astimezone(HARARE).date().day for r in rows] == [21, 22, 23]
    window = await list_snapshots(
        FLOW,
        date_from=dt.date(2026, 11, 22),
        date_to=dt.date(2026, 11, 22),
        with_steps=True,
        db=db,
        tz=HARARE,
    )
    assert [r.total_sessions for r in window] == [1]
    assert {s.step_name for s in window[0].steps} >= {"choose_tour", "done"}
    weekly = await list_snapshots(kind="weekly", db=db, tz=HARARE)
    assert len(weekly) == 1
