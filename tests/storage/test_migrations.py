"""The framework's migration branch: what a fresh database gets, and that the models and
the migrations agree (on SQLite and PostgreSQL, each in a database of its own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage import Database, migrate
from storage.migrate import current_revisions, head_revisions
from storage.models import Base
from tests.conftest import BACKENDS, PG_ADMIN_URL, _pg_admin, _pg_required

# Every table the framework owns; no app's (no catalogue, orders, payments, customers).
FRAMEWORK_TABLES = {
    "audit_log",
    "console_login_attempts",
    "console_sessions",
    "contacts",
    "conversations",
    "document_counters",
    "flow_metric_snapshots",
    "flow_sessions",
    "flow_step_events",
    "flow_step_metric_snapshots",
    "goal_events",
    "ignored_updates",
    "inbound_messages",
    "media_downloads",
    "operators",
    "outbound_messages",
    "stored_files",
}


@pytest_asyncio.fixture(params=BACKENDS)
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with nothing in it yet (not the run's shared migrated ones)."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        try:
            yield db
        finally:
            await db.dispose()
        return
    name = f"nyala_test_{uuid.uuid4().hex[:12]}"
    try:
        await _pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if _pg_required():
            pytest.fail(f"PostgreSQL is required but unreachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")
    db = Database(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    try:
        yield db
    finally:
        await db.dispose()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_a_fresh_database_gets_the_framework_tables_only(empty_db: Database) -> None:
    before, after = await migrate(empty_db)
    assert (before, after) == ("None", "0014_step_event_partitions")
    assert await current_revisions(empty_db) == head_revisions() == {"0014_step_event_partitions"}
    async with empty_db.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert tables == {*FRAMEWORK_TABLES, "alembic_version"}
    # Migrating again changes nothing.
    assert await migrate(empty_db) == ["0014_step_event_partitions", "0014_step_event_partitions"]


def test_the_framework_models_are_the_framework_tables() -> None:
    assert set(Base.metadata.tables) == FRAMEWORK_TABLES


async def test_the_framework_migrations_match_the_models(empty_db: Database) -> None:
    """Alembic finds nothing to generate for the framework's branch: every model change
    has its migration (and no migration creates a table the models lack)."""
    await migrate(empty_db)

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection)
        return list(compare_metadata(context, Base.metadata))

    async with empty_db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []
