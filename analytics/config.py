"""The database and timezone reports use when the caller names none.

The seed calls reports without either (``await get_flow_completion_rate("booking_flow",
days=7)``). Applications call :func:`configure` once at start-up; without it a report
opens the database named by ``DATABASE_URL`` (or the embedded SQLite default) for the
call and closes it afterwards, and reads dates in UTC.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import DEFAULT_DATABASE_URL, Database


@dataclass(slots=True)
class _Defaults:
    db: Database | None = None
    tz: dt.tzinfo = dt.UTC


_defaults = _Defaults()


def configure(db: Database | None = None, *, tz: dt.tzinfo | None = None) -> None:
    """Set the database and the business's timezone used when a call names none.

    Args:
        db: the database (the caller keeps ownership and disposes it).
        tz: the business's timezone, e.g. ``ZoneInfo("Africa/Harare")``; periods are
            whole local days.
    """
    _defaults.db = db
    _defaults.tz = tz or dt.UTC


def timezone(tz: dt.tzinfo | None) -> dt.tzinfo:
    """``tz``, or the configured default."""
    return tz or _defaults.tz


@asynccontextmanager
async def reading(db: Database) -> AsyncIterator[AsyncSession]:
    """A read-only transaction for a report.

    On PostgreSQL every statement is planned for its own parameters (asyncpg prepares
    statements, and after five runs PostgreSQL may switch to a generic plan that cannot
    see how narrow a date range is).
    """
    async with db.read() as session:
        if db.is_postgresql:
            # Also: aggregations sort and hash in memory instead of spilling to disk, and
            # skip JIT compilation, which costs more than it saves on queries this short.
            await session.execute(
                text(
                    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
                    "set_config('work_mem', '64MB', true), set_config('jit', 'off', true)"
                )
            )
        yield session


@asynccontextmanager
async def database(db: Database | None) -> AsyncIterator[Database]:
    """``db``, the configured one, or a database opened for this call only."""
    chosen = db or _defaults.db
    if chosen is not None:
        yield chosen
        return
    opened = Database(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    try:
        yield opened
    finally:
        await opened.dispose()
