"""The benchmark's own PostgreSQL database: created, migrated, always dropped."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from storage import Database, migrate

ADMIN_URL = os.environ.get("NYALA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str, admin_url: str = ADMIN_URL) -> str:
    """The URL of database ``name`` on the admin URL's server."""
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


async def _admin(sql: str, admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


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
def bench_database(admin_url: str = ADMIN_URL) -> Iterator[str]:
    """Create and migrate ``nyala_bench_<random>``; yield its URL; drop it at the end.

    The drop also runs on errors and Ctrl-C (the caller ignores a second Ctrl-C while it
    runs).
    """
    name = f"nyala_bench_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"', admin_url))
        url = database_url(name, admin_url)
        asyncio.run(_migrate(url))
        yield url
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            drop_database(name, admin_url)
        finally:
            signal.signal(signal.SIGINT, previous)
