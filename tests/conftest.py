"""Database fixtures: every storage and engine test runs on SQLite and on PostgreSQL.

Each test run creates its own PostgreSQL database (``nyala_test_<random>``), migrates it
once, empties its tables before each test and drops it at the end. SQLite tests copy a
migrated template file. PostgreSQL tests are skipped only when the server is unreachable
outside CI; in CI (``CI`` set) or with ``NYALA_REQUIRE_POSTGRES=1`` they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text

from flows import App
from storage import Database, migrate
from storage.models import Base
from tests.cafe import build_app

PG_ADMIN_URL = os.environ.get("NYALA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def _pg_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("NYALA_REQUIRE_POSTGRES") == "1"


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this test run, dropped afterwards."""
    name = f"nyala_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if _pg_required():
            pytest.fail(f"PostgreSQL is required but unreachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database on each backend."""
    if request.param == "sqlite":
        target = tmp_path / "nyala.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def empty_tables(db: Database) -> None:
    """Empty every table (PostgreSQL; SQLite tests get a fresh file instead)."""
    if not db.is_postgresql:
        return
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.transaction() as session:
        await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on each backend, empty at the start of the test."""
    database = Database(database_url)
    await empty_tables(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest_asyncio.fixture
async def nyala_db(db: Database) -> AsyncIterator[Database]:
    """Overrides the shipped plugin's SQLite-only fixture: both backends here."""
    yield db


@pytest.fixture
def cafe(tmp_path: Path) -> App:
    """A fresh test café app per test, its flow file in ``tmp_path / "flows"``."""
    return build_app(tmp_path / "flows")
