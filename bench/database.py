"""The benchmark's own PostgreSQL databases: created, migrated, always dropped.

A database holds the tables of one app (:func:`storage.migrate`): the message-path
benchmarks run the test café on one migrated with the framework's branch alone; the
safari app's phases (receipts, summaries, console) use one with the safari branch too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from storage import Database, migrate

ADMIN_URL = os.environ.get("NYALA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str, admin_url: str = ADMIN_URL) -> str:
    """The URL of database ``name`` on the admin URL's server (its host, port and query
    kept: ``?host=/var/run/postgresql`` is PostgreSQL's Unix socket)."""
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def _admin(sql: str, admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str, locations: tuple[Path, ...] = ()) -> None:
    db = Database(url)
    try:
        await migrate(db, locations)
    finally:
        await db.dispose()


async def settle(url: str, *, within: float = 120.0) -> None:
    """Let PostgreSQL finish the housekeeping a phase left it before the next measures:
    write out every dirty page now (``CHECKPOINT``), then wait (up to ``within`` seconds)
    until no autovacuum worker runs. After the phases that write millions of rows either
    would otherwise run during the next measurement (seen once: PostgreSQL at 1.6 cores
    during an end-to-end run, at a fifth of the usual rate)."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute("CHECKPOINT")
        for _ in range(round(within)):  # a poll a second
            if not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            ):
                break
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


async def server_version(url: str) -> str:
    """PostgreSQL's ``server_version``."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    """Drop the database, disconnecting whoever is still connected."""
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_url))


@contextmanager
def bench_database(admin_url: str = ADMIN_URL, locations: tuple[Path, ...] = ()) -> Iterator[str]:
    """Create ``nyala_bench_<random>``, migrate it (the framework's branch and
    ``locations``); yield its URL; drop it at the end.

    The drop also runs on errors and Ctrl-C (the caller ignores a second Ctrl-C while it
    runs).
    """
    name = f"nyala_bench_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"', admin_url))
        url = database_url(name, admin_url)
        asyncio.run(_migrate(url, locations))
        yield url
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            drop_database(name, admin_url)
        finally:
            signal.signal(signal.SIGINT, previous)


@asynccontextmanager
async def app_database(
    locations: tuple[Path, ...], admin_url: str = ADMIN_URL
) -> AsyncIterator[str]:
    """:func:`bench_database` from inside an event loop: ``nyala_bench_<random>`` migrated
    with the framework's branch and an app's (``app.migration_locations``); dropped at the
    end, also on errors."""
    name = f"nyala_bench_{secrets.token_hex(6)}"
    await _admin(f'CREATE DATABASE "{name}"', admin_url)
    try:
        url = database_url(name, admin_url)
        await _migrate(url, locations)
        yield url
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_url)
