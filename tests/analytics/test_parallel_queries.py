"""A report's queries over the events run at once on PostgreSQL, one after another on
SQLite, and add up to the same totals either way."""

from __future__ import annotations

import asyncio
import functools

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from analytics import config
from analytics.aggregates import PARALLEL_QUERIES, FlowTotals, Job, Scope, event_jobs, run_jobs
from analytics.kpis import kpi_rows
from analytics.periods import resolve_period
from storage import Database
from tests.analytics.fixed_events import FLOW, HARARE, NOW, load_fixed_events


def _jobs(seen: list[str], together: asyncio.Barrier | None) -> list[Job]:
    async def job(session: AsyncSession, n: int) -> dict[str, FlowTotals]:
        connection = await session.connection()
        seen.append(str(id(await connection.get_raw_connection())))
        if together is not None:
            async with asyncio.timeout(10):  # one after another, it would wait forever
                await together.wait()
        await session.execute(text("SELECT 1"))
        return {"": FlowTotals(total=n, completed=1), f"v{n}": FlowTotals(total=1)}

    return [functools.partial(job, n=n) for n in (1, 2, 3)]


async def test_the_jobs_run_at_once_on_postgresql_else_in_turn(db: Database) -> None:
    seen: list[str] = []
    together = asyncio.Barrier(3) if db.is_postgresql else None
    async with config.reading(db) as session:
        totals = await run_jobs(session, _jobs(seen, together), db=db)
    assert {version: (t.total, t.completed) for version, t in totals.items()} == {
        "": (6, 3),
        "v1": (1, 0),
        "v2": (1, 0),
        "v3": (1, 0),
    }
    # PostgreSQL: three connections; SQLite: the report's own, three times.
    assert len(set(seen)) == (3 if db.is_postgresql else 1)


async def test_without_the_database_they_run_in_turn_on_the_session(db: Database) -> None:
    seen: list[str] = []
    async with config.reading(db) as session:
        totals = await run_jobs(session, _jobs(seen, None))
    assert totals[""].total == 6
    assert len(set(seen)) == 1


async def test_at_most_four_run_at_once(db: Database) -> None:
    running = 0
    most = 0

    async def job(session: AsyncSession) -> dict[str, FlowTotals]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await session.execute(text("SELECT 1"))
        await asyncio.sleep(0.05)  # long enough for every job to have started if allowed
        running -= 1
        return {"": FlowTotals(total=1)}

    async with config.reading(db) as session:
        totals = await run_jobs(session, [job] * 12, db=db)
    assert totals[""].total == 12
    assert most == (PARALLEL_QUERIES if db.is_postgresql else 1)


async def test_the_steps_cut_in_stretches_of_time_add_up_to_the_whole(db: Database) -> None:
    """Sessions count in the stretch they started in: cut or not, the same figures."""
    await load_fixed_events(db)
    period = resolve_period(days=7, tz=HARARE, now=NOW)
    scope = Scope(flow=FLOW)
    async with config.reading(db) as session:
        whole = await run_jobs(session, event_jobs(scope, period.start, period.end), db=db)
        cut = await run_jobs(
            session, event_jobs(scope, period.start, period.end, step_slices=5), db=db
        )
    assert whole[""].total > 0 and len(whole[""].steps) > 2
    assert kpi_rows(cut[""]) == kpi_rows(whole[""])
    assert {name: step.first_seen for name, step in cut[""].steps.items()} == {
        name: step.first_seen for name, step in whole[""].steps.items()
    }
