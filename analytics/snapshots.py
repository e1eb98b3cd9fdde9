"""Periodic metric snapshots: one row per flow and day, week or month.

Generating is idempotent and safe to run from cron at any frequency: the row for a
flow, period and start is replaced, never duplicated (under a named lock, so two runs at
the same moment serialise). Sessions count for the period in which they started, in the
business's timezone. A daily snapshot taken after its day ended, with no session of
that day still open, is *settled*: reports over long ranges read it instead of the
events (:func:`analytics.aggregates.collect`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from analytics import config
from analytics.aggregates import (
    ALL_VERSIONS,
    FlowTotals,
    Job,
    Scope,
    event_jobs,
    flow_known,
    goal_totals,
    run_jobs,
)
from analytics.partitions import ensure_step_event_partitions
from analytics.periods import Period, snapshot_period
from storage import (
    Database,
    FlowMetricSnapshot,
    FlowSession,
    SnapshotPeriod,
    lock_name,
    utcnow,
)
from storage.flow_sessions import FlowStepMetricSnapshot

log = logging.getLogger("nyala.analytics")


def _fill(row: FlowMetricSnapshot, totals: FlowTotals, now: dt.datetime) -> None:
    row.total_sessions = totals.total
    row.completed_sessions = totals.completed
    row.cancelled_sessions = totals.cancelled
    row.nothing_to_do_sessions = totals.nothing_to_do
    row.abandoned_sessions = totals.abandoned
    row.error_sessions = totals.error
    row.active_sessions = totals.active
    row.avg_duration_seconds = totals.avg_duration
    row.total_errors = totals.errors
    row.total_retries = totals.retries
    row.error_rate = round(100.0 * totals.error / totals.total, 2) if totals.total else 0.0
    row.retried_sessions = totals.retried_sessions
    row.recovered_sessions = totals.recovered_sessions
    row.handed_off_sessions = totals.handed_off
    row.converted_sessions = totals.converted
    row.returning_sessions = totals.returning
    row.goal_sessions = dict(sorted(totals.goals.items()))
    row.created_at = now


def _step_rows(totals: FlowTotals) -> list[FlowStepMetricSnapshot]:
    return [
        FlowStepMetricSnapshot(
            step_name=step.step_name,
            sessions=step.sessions,
            completed=step.completed,
            skipped=step.skipped,
            retries=step.retries,
            errors=step.errors,
            time_spent_total=step.time_spent_total,
            time_spent_count=step.time_spent_count,
            avg_offset_seconds=step.avg_offset,
            abandoned_here=step.abandoned_here,
            errored_here=step.errored_here,
            handed_off_here=step.handed_off_here,
        )
        for step in sorted(totals.steps.values(), key=lambda s: s.step_name)
    ]


async def _generate(
    db: Database,
    flow: str,
    kind: SnapshotPeriod,
    period: Period,
    now: dt.datetime,
) -> FlowMetricSnapshot:
    async with db.read() as session:
        # Scope's default leaves sandbox contacts out: a snapshot never holds their sessions.
        scope = Scope(flow=flow)
        # Every goal reached too, so that reports read conversion per goal from here.
        every_goal = functools.partial(
            goal_totals, scope=scope, start=period.start, end=period.end, goals=None,
            by_version=False,
        )  # fmt: skip
        jobs: list[Job] = [*event_jobs(scope, period.start, period.end), every_goal]
        totals = (await run_jobs(session, jobs)).get(ALL_VERSIONS, FlowTotals())
    async with db.transaction() as session:
        await lock_name(session, f"snapshot:{flow}:{kind}:{period.start.isoformat()}")
        row = await session.scalar(
            select(FlowMetricSnapshot)
            .where(
                FlowMetricSnapshot.flow_name == flow,
                FlowMetricSnapshot.flow_version == ALL_VERSIONS,
                FlowMetricSnapshot.period == kind,
                FlowMetricSnapshot.period_start == period.start,
            )
            .options(selectinload(FlowMetricSnapshot.steps))
        )
        if row is None:
            row = FlowMetricSnapshot(
                flow_name=flow,
                flow_version=ALL_VERSIONS,
                period=kind,
                period_start=period.start,
                period_end=period.end,
                steps=[],
            )
            session.add(row)
        else:
            row.period_end = period.end
            row.steps.clear()
            # Delete the old step rows before inserting their replacements, which reuse
            # the (snapshot, step) key.
            await session.flush()
        _fill(row, totals, now)
        row.steps.extend(_step_rows(totals))
        await session.flush()
    return row


async def generate_snapshot(
    flow: str,
    kind: SnapshotPeriod | str,
    day: dt.date,
    *,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
    now: dt.datetime | None = None,
) -> FlowMetricSnapshot | None:
    """Write (or replace) ``flow``'s snapshot of the day, week or month containing ``day``.

    Returns:
        The snapshot, with its ``steps`` loaded; ``None`` (nothing written) when no
        session of ``flow`` was ever recorded, so a mistyped name leaves no rows.
    """
    period_kind = SnapshotPeriod(kind)
    period = snapshot_period(period_kind, day, config.timezone(tz))
    async with config.database(db) as database:
        async with database.read() as session:
            if not await flow_known(session, flow):
                log.warning("no snapshot of %r: no sessions of it were ever recorded", flow)
                return None
        return await _generate(database, flow, period_kind, period, now or utcnow())


async def generate_daily_snapshot(
    flow: str,
    day: dt.date,
    *,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
    now: dt.datetime | None = None,
) -> FlowMetricSnapshot | None:
    """The seed's ``generate_daily_snapshot(flow, date)``: see :func:`generate_snapshot`."""
    return await generate_snapshot(flow, SnapshotPeriod.DAILY, day, db=db, tz=tz, now=now)


async def generate_weekly_snapshot(
    flow: str,
    day: dt.date,
    *,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
    now: dt.datetime | None = None,
) -> FlowMetricSnapshot | None:
    """The snapshot of the ISO week (Monday–Sunday) containing ``day``."""
    return await generate_snapshot(flow, SnapshotPeriod.WEEKLY, day, db=db, tz=tz, now=now)


async def generate_monthly_snapshot(
    flow: str,
    day: dt.date,
    *,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
    now: dt.datetime | None = None,
) -> FlowMetricSnapshot | None:
    """The snapshot of the calendar month containing ``day``."""
    return await generate_snapshot(flow, SnapshotPeriod.MONTHLY, day, db=db, tz=tz, now=now)


async def flows_with_sessions(db: Database, period: Period) -> list[str]:
    """The flows with at least one session started in ``period``."""
    async with db.read() as session:
        return list(
            await session.scalars(
                select(FlowSession.flow_name)
                .where(FlowSession.started_at >= period.start, FlowSession.started_at < period.end)
                .distinct()
                .order_by(FlowSession.flow_name)
            )
        )


async def generate_snapshots(
    kind: SnapshotPeriod | str,
    day: dt.date,
    *,
    flows: Sequence[str] | None = None,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
    now: dt.datetime | None = None,
) -> list[FlowMetricSnapshot]:
    """Snapshot every flow with sessions in the period containing ``day`` (cron-safe),
    after making sure the step events' partitions reach three months ahead
    (:func:`analytics.partitions.ensure_step_event_partitions`).

    Args:
        flows: only these flows (still only those with sessions in the period).
    """
    period_kind = SnapshotPeriod(kind)
    period = snapshot_period(period_kind, day, config.timezone(tz))
    async with config.database(db) as database:
        # The cron that writes snapshots also keeps the step events' monthly partitions
        # created ahead (PostgreSQL; nothing to do on SQLite).
        await ensure_step_event_partitions(database, now=now)
        names = await flows_with_sessions(database, period)
        if flows is not None:
            names = [name for name in names if name in set(flows)]
        written = [
            await _generate(database, name, period_kind, period, now or utcnow()) for name in names
        ]
    if written:
        log.info("wrote %d %s snapshots for %s", len(written), period_kind, period.describe())
    return written


async def list_snapshots(
    flow: str | None = None,
    kind: SnapshotPeriod | str = SnapshotPeriod.DAILY,
    *,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    with_steps: bool = False,
    limit: int = 400,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
) -> list[FlowMetricSnapshot]:
    """Stored snapshots, oldest first, for trend charts.

    Args:
        flow: one flow's (default: every flow's).
        kind: daily, weekly or monthly.
        date_from: periods starting on or after this local day.
        date_to: periods starting on or before this local day.
        with_steps: load each snapshot's per-step rows (``snapshot.steps``).
        limit: at most this many, the most recent kept.
    """
    period_kind = SnapshotPeriod(kind)
    zone = config.timezone(tz)
    query = select(FlowMetricSnapshot).where(
        FlowMetricSnapshot.period == period_kind,
        FlowMetricSnapshot.flow_version == ALL_VERSIONS,
    )
    if flow is not None:
        query = query.where(FlowMetricSnapshot.flow_name == flow)
    if date_from is not None:
        first = snapshot_period(SnapshotPeriod.DAILY, date_from, zone).start
        query = query.where(FlowMetricSnapshot.period_start >= first)
    if date_to is not None:
        last = snapshot_period(SnapshotPeriod.DAILY, date_to, zone).end
        query = query.where(FlowMetricSnapshot.period_start < last)
    if with_steps:
        query = query.options(selectinload(FlowMetricSnapshot.steps))
    query = query.order_by(
        FlowMetricSnapshot.period_start.desc(), FlowMetricSnapshot.flow_name
    ).limit(limit)
    async with config.database(db) as database, database.read() as session:
        rows = list((await session.scalars(query)).all())
    rows.reverse()
    return rows
