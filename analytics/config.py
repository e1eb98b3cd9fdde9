"""The database and timezone reports use when the caller names none.

Every report takes ``db=`` and ``tz=``. The seed calls them without either
(``await get_flow_completion_rate("order_flow", days=7)``): those read the context set by
:func:`using`, which a running app enters for its database and timezone
(``flows.runtime.Runtime.start`` does)::

    with analytics.using(db, tz=ZoneInfo("Europe/Lisbon")):
        metrics = await get_flow_completion_rate("order_flow", days=7)

The context is a :class:`contextvars.ContextVar`, not a module global: two apps (or two
tests) in one process each see their own, and tasks started inside the block inherit it.
Without any, a report opens the database named by ``DATABASE_URL`` (or the embedded
SQLite default) for the call and closes it afterwards, and reads dates in UTC.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import DEFAULT_DATABASE_URL, Database

__all__ = ["AnalyticsContext", "current", "database", "reading", "timezone", "using"]


@dataclass(frozen=True, slots=True)
class AnalyticsContext:
    """What reports use when a call names no database or timezone.

    Attributes:
        db: the database (owned by whoever entered :func:`using`).
        tz: the business's timezone; report periods are whole local days in it.
        flow_steps: each flow's steps in order (a running app's flow files), the
            funnel's default order.
    """

    db: Database | None = None
    tz: dt.tzinfo = dt.UTC
    flow_steps: Mapping[str, Sequence[str]] = field(default_factory=dict)


_OUTERMOST = AnalyticsContext()
_context: ContextVar[AnalyticsContext | None] = ContextVar("nyala_analytics", default=None)


def current() -> AnalyticsContext:
    """The analytics context in effect here."""
    return _context.get() or _OUTERMOST


@contextmanager
def using(
    db: Database | None = None,
    *,
    tz: dt.tzinfo | None = None,
    flow_steps: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[None]:
    """Make ``db`` and ``tz`` the defaults of reports called inside the block.

    Args:
        db: the database (the caller keeps ownership and disposes it); ``None`` keeps the
            enclosing context's.
        tz: the business's timezone, e.g. ``ZoneInfo("Europe/Lisbon")``; ``None`` keeps
            the enclosing context's (UTC at the outermost).
        flow_steps: each flow's steps in order, for funnels called without ``steps``;
            ``None`` keeps the enclosing context's.
    """
    outer = current()
    steps = outer.flow_steps if flow_steps is None else flow_steps
    token = _context.set(AnalyticsContext(db=db or outer.db, tz=tz or outer.tz, flow_steps=steps))
    try:
        yield
    finally:
        try:
            _context.reset(token)
        except ValueError:
            # Left in another context than it was entered (e.g. a fixture's teardown
            # runs in a task of its own): put the enclosing value back instead.
            _context.set(None if outer is _OUTERMOST else outer)


def timezone(tz: dt.tzinfo | None) -> dt.tzinfo:
    """``tz``, or the context's."""
    return tz or current().tz


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
            # No parallel workers: a report's statements already run side by side
            # (``aggregates.run_jobs``); a parallel plan of the week's step totals at 10
            # million events took as long as the serial one (55 ms) for three times the
            # CPU, which the other statements were waiting for.
            await session.execute(
                text(
                    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
                    "set_config('work_mem', '64MB', true), set_config('jit', 'off', true), "
                    "set_config('max_parallel_workers_per_gather', '0', true)"
                )
            )
        yield session


@asynccontextmanager
async def database(db: Database | None) -> AsyncIterator[Database]:
    """``db``, the context's, or a database opened for this call only."""
    chosen = db or current().db
    if chosen is not None:
        yield chosen
        return
    opened = Database(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    try:
        yield opened
    finally:
        await opened.dispose()
