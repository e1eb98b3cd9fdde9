"""Monthly partitions of the step events on PostgreSQL: created ahead, and retention.

Migration ``0014_step_event_partitions`` partitions ``flow_step_events`` by month of
``timestamp`` (SQLite keeps one table, and every function here does nothing there). The
migration creates the months up to three ahead; :func:`ensure_step_event_partitions`
keeps that horizon as time passes (the snapshot cron calls it) and gives a month of its
own to any rows that landed in the default partition (a backfill of old events, a clock
far off). :func:`drop_step_events_before` is retention: dropping a month is ``DROP
TABLE`` of its partition, not a ``DELETE`` of millions of rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import Database, lock_name, utcnow

log = logging.getLogger("nyala.analytics")

TABLE = "flow_step_events"
SCHEMA = "flow_step_event_months"
DEFAULT_PARTITION = f"{TABLE}_default"
MONTHS_AHEAD = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Month:
    """One monthly partition: its name and UTC bounds ``[start, end)``."""

    start: dt.date

    @property
    def end(self) -> dt.date:
        """The first day of the following month."""
        return (self.start + dt.timedelta(days=32)).replace(day=1)

    @property
    def name(self) -> str:
        """``flow_step_events_2026_12``."""
        return f"{TABLE}_{self.start:%Y_%m}"

    @staticmethod
    def of(day: dt.date) -> Month:
        """The month containing ``day``."""
        return Month(start=day.replace(day=1))

    def after(self, months: int) -> Month:
        """The month ``months`` later."""
        month = self
        for _ in range(months):
            month = Month(start=month.end)
        return month


def _bound(day: dt.date) -> str:
    return f"'{day.isoformat()} 00:00:00+00'"


async def is_partitioned(session: AsyncSession) -> bool:
    """Whether ``flow_step_events`` is a partitioned table (PostgreSQL after 0014)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    found = await session.scalar(
        text(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :table AND n.nspname = current_schema()"
        ),
        {"table": TABLE},
    )
    return found is not None


async def partition_names(session: AsyncSession) -> list[str]:
    """The names of the step events' partitions (the default one included), sorted."""
    rows = await session.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:table AS regclass) ORDER BY c.relname"
        ),
        {"table": TABLE},
    )
    return list(rows)


async def _add_month(session: AsyncSession, month: Month) -> None:
    """Create ``month``'s partition, moving its rows out of the default partition.

    PostgreSQL refuses a new partition while the default one holds rows of its range, so
    the month is built beside the table, filled from the default partition and attached.
    """
    qualified = f"{SCHEMA}.{month.name}"
    await session.execute(
        text(f"CREATE TABLE {qualified} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    )
    within = f'"timestamp" >= {_bound(month.start)} AND "timestamp" < {_bound(month.end)}'
    moved = f"DELETE FROM {SCHEMA}.{DEFAULT_PARTITION} WHERE {within} RETURNING *"  # noqa: S608
    move = f"WITH moved AS ({moved}) INSERT INTO {qualified} SELECT * FROM moved"  # noqa: S608
    await session.execute(text(move))
    await session.execute(
        text(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {qualified} "
            f"FOR VALUES FROM ({_bound(month.start)}) TO ({_bound(month.end)})"
        )
    )


async def ensure_step_event_partitions(
    db: Database,
    *,
    months_ahead: int = MONTHS_AHEAD,
    since: dt.date | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """Create the monthly partitions from this month to ``months_ahead`` ahead, and one
    for every month that has rows in the default partition.

    Args:
        since: also every month from this day's on (before loading old events).

    Idempotent and safe from several processes (under a named lock). Returns the names of
    the partitions created; nothing on SQLite or an unpartitioned table.
    """
    this_month = Month.of((now or utcnow()).astimezone(dt.UTC).date())
    first = Month.of(since) if since is not None and since < this_month.start else this_month
    async with db.transaction() as session:
        if not await is_partitioned(session):
            return []
        await lock_name(session, f"partitions:{TABLE}")
        existing = set(await partition_names(session))
        wanted = {this_month.after(k) for k in range(months_ahead + 1)}
        month = first
        while month.start < this_month.start:
            wanted.add(month)
            month = month.after(1)
        if DEFAULT_PARTITION in existing:
            month_of = "CAST(date_trunc('month', \"timestamp\" AT TIME ZONE 'UTC') AS date)"
            query = f"SELECT DISTINCT {month_of} FROM {SCHEMA}.{DEFAULT_PARTITION}"  # noqa: S608
            stray = await session.scalars(text(query))
            wanted |= {Month(start=day) for day in stray}
        created = []
        for month in sorted(wanted, key=lambda m: m.start):
            if month.name not in existing:
                await _add_month(session, month)
                created.append(month.name)
    if created:
        log.info("created step event partitions: %s", ", ".join(created))
    return created


async def drop_step_events_before(db: Database, day: dt.date) -> list[str]:
    """Retention: drop every monthly partition that ends on or before ``day`` (UTC).

    Only whole months go; the events of a month that ``day`` falls inside stay. Returns
    the names of the partitions dropped; nothing on SQLite or an unpartitioned table.
    """
    async with db.transaction() as session:
        if not await is_partitioned(session):
            return []
        await lock_name(session, f"partitions:{TABLE}")
        dropped = []
        for name in await partition_names(session):
            if name == DEFAULT_PARTITION:
                continue
            year, month = (int(part) for part in name.removeprefix(f"{TABLE}_").split("_"))
            if Month(start=dt.date(year, month, 1)).end <= day:
                await session.execute(text(f"DROP TABLE {SCHEMA}.{name}"))
                dropped.append(name)
    if dropped:
        log.info("dropped step event partitions: %s", ", ".join(dropped))
    return dropped
