"""Conversion per goal from settled daily snapshots (``goal_sessions``): the same figures
as from the events, and snapshots from before they kept goals fall back to the events."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from analytics import generate_snapshots, get_kpis
from analytics.kpis import KpiReport
from storage import Database, FlowMetricSnapshot, SnapshotPeriod
from tests.analytics.fixed_events import FLOW, GOAL, HARARE, NOW, load_fixed_events

LATER = NOW + dt.timedelta(days=1)


def _conversions(report: KpiReport) -> dict[str, object]:
    return {k["name"]: k["details"] for k in report["kpis"] if k["name"].startswith("conversion")}


async def _snapshot_week(db: Database) -> None:
    for offset in range(1, 8):
        day = dt.date(2026, 11, 25) - dt.timedelta(days=offset)
        await generate_snapshots(SnapshotPeriod.DAILY, day, db=db, tz=HARARE, now=LATER)


async def test_snapshots_keep_sessions_per_goal(db: Database) -> None:
    await load_fixed_events(db)
    await _snapshot_week(db)
    async with db.read() as session:
        found_goals = await session.scalars(
            select(FlowMetricSnapshot.goal_sessions).where(FlowMetricSnapshot.flow_name == FLOW)
        )
        kept = list(found_goals)
    assert kept
    assert all(isinstance(found, dict) for found in kept)  # none left unknown (NULL)
    goals = [found or {} for found in kept]
    # Every goal reached by a completed session of the flow, none invented.
    assert sum(found.get(GOAL, 0) for found in goals) > 0
    assert {name for found in goals for name in found} <= {GOAL}


async def test_conversion_per_goal_reads_settled_days_from_snapshots(db: Database) -> None:
    await load_fixed_events(db)
    args = {"db": db, "tz": HARARE, "now": NOW, "goals": [GOAL, "never_reached"]}
    from_events = await get_kpis(FLOW, use_snapshots=False, **args)  # type: ignore[arg-type]
    await _snapshot_week(db)
    from_snapshots = await get_kpis(FLOW, **args)  # type: ignore[arg-type]
    assert from_snapshots["source"]["snapshot_days"] > 0
    assert _conversions(from_snapshots) == _conversions(from_events)
    assert from_snapshots["kpis"] == from_events["kpis"]

    # Snapshots written before 0014 have no goals: those days count them from the events.
    async with db.transaction() as session:
        await session.execute(update(FlowMetricSnapshot).values(goal_sessions=None))
    older = await get_kpis(FLOW, **args)  # type: ignore[arg-type]
    assert older["source"] == from_snapshots["source"]
    assert older["kpis"] == from_events["kpis"]
