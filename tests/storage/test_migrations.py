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
    assert (before, after) == ("None", "0016_goal_events_at")
    assert await current_revisions(empty_db) == head_revisions() == {"0016_goal_events_at"}
    async with empty_db.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert tables == {*FRAMEWORK_TABLES, "alembic_version"}
    # Migrating again changes nothing.
    assert await migrate(empty_db) == ["0016_goal_events_at", "0016_goal_events_at"]


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


async def test_step_event_partitions_upgrade_and_downgrade_keep_every_row(
    empty_db: Database,
) -> None:
    """0014 converts a filled ``flow_step_events`` in place (PostgreSQL: partitioned by
    month; SQLite: one table, unchanged) and its downgrade converts it back, every row
    and id kept both ways, the id sequence still counting on."""
    import datetime as dt

    from alembic import command
    from sqlalchemy import text

    from storage.migrate import _config

    def run(target: str, *, down: bool = False) -> object:
        def step(connection: Connection) -> None:
            cfg = _config([], connection)
            (command.downgrade if down else command.upgrade)(cfg, target)

        return step

    async with empty_db.engine.begin() as conn:
        await conn.run_sync(run("0013_session_outcomes"))  # type: ignore[arg-type]
    rows = [(n, dt.datetime(2026, 8 + n, 3, 12, tzinfo=dt.UTC)) for n in range(1, 4)]
    async with empty_db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO contacts (id, wa_id, profile_name, attributes, created_at, "
                "updated_at) VALUES (1, '263700', 'A', '{}', :at, :at)"
            ),
            {"at": rows[0][1]},
        )
        await conn.execute(
            text(
                "INSERT INTO flow_sessions (id, contact_id, flow_name, flow_version, started_at, "
                "status, context_data, last_activity_at) "
                "VALUES (1, 1, 'f', '', :at, 'active', '{}', :at)"
            ),
            {"at": rows[0][1]},
        )
        for _, at in rows:
            await conn.execute(
                text(
                    "INSERT INTO flow_step_events (session_id, step_name, action, timestamp, "
                    "retry_count) VALUES (1, 's', 'entered', :at, 0)"
                ),
                {"at": at},
            )

    async def events() -> list[tuple[int, str]]:
        async with empty_db.engine.connect() as conn:
            found = await conn.execute(
                text("SELECT id, step_name FROM flow_step_events ORDER BY id")
            )
            return [(int(r[0]), str(r[1])) for r in found]

    async def partitioned() -> bool:
        if not empty_db.is_postgresql:
            return False
        async with empty_db.engine.connect() as conn:
            found = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_partitioned_table "
                    "WHERE partrelid = CAST('flow_step_events' AS regclass)"
                )
            )
            return bool(found)

    kept = await events()
    assert kept == [(1, "s"), (2, "s"), (3, "s")]
    await migrate(empty_db)
    assert await events() == kept
    assert await partitioned() is empty_db.is_postgresql
    async with empty_db.engine.begin() as conn:
        await conn.run_sync(run("0013_session_outcomes", down=True))  # type: ignore[arg-type]
    assert await events() == kept
    assert await partitioned() is False
    await migrate(empty_db)
    assert await partitioned() is empty_db.is_postgresql
    async with empty_db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO flow_step_events (session_id, step_name, action, timestamp, "
                "retry_count) VALUES (1, 'next', 'entered', :at, 0)"
            ),
            {"at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},
        )
    assert await events() == [*kept, (4, "next")]
    # And the models still match the migrated tables.
    async with empty_db.engine.connect() as conn:
        changes = await conn.run_sync(
            lambda c: list(compare_metadata(MigrationContext.configure(c), Base.metadata))
        )
    assert changes == []
