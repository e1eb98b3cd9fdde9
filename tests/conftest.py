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
from argon2 import PasswordHasher
from sqlalchemy import text

from bot.console import passwords
from flows import App
from storage import Database, migrate
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


async def _migrate(url: str, locations: tuple[Path, ...] = ()) -> None:
    db = Database(url)
    try:
        await migrate(db, locations)
    finally:
        await db.dispose()


class Databases:
    """Migrated databases for this test run, one per set of migration branches (the
    framework's alone, or with an app's): a PostgreSQL database each, dropped at the end,
    and a SQLite template file each that every test copies."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._pg: dict[tuple[Path, ...], str] = {}
        self._sqlite: dict[tuple[Path, ...], Path] = {}

    def sqlite(self, target: Path, locations: tuple[Path, ...] = ()) -> str:
        """A copy of the migrated SQLite template at ``target``; its URL."""
        template = self._sqlite.get(locations)
        if template is None:
            template = self._tmp.mktemp("sqlite") / "template.db"
            asyncio.run(_migrate(f"sqlite+aiosqlite:///{template}", locations))
            self._sqlite[locations] = template
        shutil.copyfile(template, target)
        return f"sqlite+aiosqlite:///{target}"

    def postgresql(self, locations: tuple[Path, ...] = ()) -> str:
        """The URL of this run's PostgreSQL database migrated with ``locations``."""
        url = self._pg.get(locations)
        if url is None:
            name = f"nyala_test_{uuid.uuid4().hex[:12]}"
            try:
                asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                if _pg_required():
                    pytest.fail(f"PostgreSQL is required but unreachable at {PG_ADMIN_URL}: {exc}")
                pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")
            url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
            self._pg[locations] = url
            asyncio.run(_migrate(url, locations))
        return url

    def url(self, backend: str, tmp_path: Path, locations: tuple[Path, ...] = ()) -> str:
        """An empty, migrated database on ``backend`` (``sqlite`` or ``postgresql``)."""
        if backend == "sqlite":
            return self.sqlite(tmp_path / "nyala.db", locations)
        return self.postgresql(locations)

    def drop_all(self) -> None:
        for url in self._pg.values():
            name = url.rsplit("/", 1)[1]
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` (tens of seconds each) first: with ``-n 2`` a worker
    starts them at once and the other tests fill both workers around them, instead of a
    slow test begun last keeping one worker busy alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashes() -> Iterator[None]:
    """Operator passwords hashed with argon2id at its lowest cost in the test process.

    The real cost (64 MiB, three passes) takes ~0.2 s a hash and every console test logs
    in; what the tests check is the logic around the hash, not its cost. ``nyala``
    subprocesses still hash at the real cost, and argon2 verifies either kind."""
    patch = pytest.MonkeyPatch()
    patch.setattr(
        passwords, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    try:
        yield
    finally:
        patch.undo()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """This run's migrated databases (see :class:`Databases`)."""
    found = Databases(tmp_path_factory)
    try:
        yield found
    finally:
        found.drop_all()


@pytest.fixture(scope="session")
def postgres_url(databases: Databases) -> str:
    """A PostgreSQL database migrated with the framework's branch only, for this run."""
    return databases.postgresql()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, databases: Databases) -> str:
    """The URL of an empty database with the framework's tables, on each backend.

    A test folder whose app brings tables overrides this fixture with the app's
    migration folders (``databases.url(request.param, tmp_path, app.migration_locations)``).
    """
    return databases.url(str(request.param), tmp_path)


async def empty_tables(db: Database) -> None:
    """Empty every table but Alembic's (PostgreSQL; SQLite tests get a fresh file instead)."""
    if not db.is_postgresql:
        return
    async with db.transaction() as session:
        rows = await session.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        )
        names = ", ".join(f'"{name}"' for (name,) in rows)
        if names:
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
