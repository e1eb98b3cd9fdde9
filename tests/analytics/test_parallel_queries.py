"""A report's queries over the events run at once on PostgreSQL, one after another on
SQLite, and add up to the same totals either way."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from analytics import config
from analytics.aggregates import FlowTotals, Job, run_jobs
from storage import Database


def _jobs(seen: list[str], together: asyncio.Barrier | None) -> list[Job]:
    async def job(session: AsyncSession, n: int) -> dict[str, FlowTotals]:
        connection = await session.connection()
        seen.append(str(id(await connection.get_raw_connection())))
        if together is not None:
            async with asyncio.timeout(10):  # one after another, it would wait forever
                await together.wait()
        await session.execute(text("SELECT 1"))
        return {"": FlowTotals(total=n, completed=1), f"v{n}": FlowTotals(total=1)}

    async def first(session: AsyncSession) -> dict[str, FlowTotals]:
        return await job(session, 1)

    async def second(session: AsyncSession) -> dict[str, FlowTotals]:
        return await job(session, 2)

    async def third(session: AsyncSession) -> dict[str, FlowTotals]:
        return await job(session, 3)

    return [first, second, third]


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
