"""The framework's migration branch: what a fresh database gets, and that the models and
the migrations agree (on SQLite and PostgreSQL, each in a database of its own)."""

from __future__ import annotations

import datetime as dt
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
    assert (before, after) == ("None", "0017_report_columns")
    assert await current_revisions(empty_db) == head_revisions() == {"0017_report_columns"}
    async with empty_db.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert tables == {*FRAMEWORK_TABLES, "alembic_version"}
    # Migrating again changes nothing.
    assert await migrate(empty_db) == ["0017_report_columns", "0017_report_columns"]


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
                "retry_count, flow_name, flow_version, session_started_at) "
                "VALUES (1, 'next', 'entered', :at, 0, 'f', '', :started)"
            ),
            {"at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "started": rows[0][1]},
        )
    assert await events() == [*kept, (4, "next")]
    # And the models still match the migrated tables.
    async with empty_db.engine.connect() as conn:
        changes = await conn.run_sync(
            lambda c: list(compare_metadata(MigrationContext.configure(c), Base.metadata))
        )
    assert changes == []


async def test_report_columns_are_filled_in_and_repeat_contacts_kept_by_the_database(
    empty_db: Database,
) -> None:
    """0017 copies each step event's session flow, version and start onto it and marks
    the sessions whose contact had started the flow before; from then on the database
    keeps that mark itself, whatever order sessions are inserted in. Its downgrade
    removes both, every row kept."""

    from alembic import command
    from sqlalchemy import text

    from storage.migrate import _config

    def run(target: str, *, down: bool = False) -> object:
        def step(connection: Connection) -> None:
            cfg = _config([], connection)
            (command.downgrade if down else command.upgrade)(cfg, target)

        return step

    def at(day: int) -> dt.datetime:
        return dt.datetime(2026, 11, day, 9, tzinfo=dt.UTC)

    session_sql = text(
        "INSERT INTO flow_sessions (id, contact_id, flow_name, flow_version, started_at, "
        "status, context_data, last_activity_at) "
        "VALUES (:id, :contact, :flow, :version, :at, 'active', '{}', :at)"
    )
    async with empty_db.engine.begin() as conn:
        await conn.run_sync(run("0016_goal_events_at"))  # type: ignore[arg-type]
    async with empty_db.engine.begin() as conn:
        for contact in (1, 2):
            await conn.execute(
                text(
                    "INSERT INTO contacts (id, wa_id, profile_name, attributes, created_at, "
                    "updated_at) VALUES (:id, :wa, 'C', '{}', :at, :at)"
                ),
                {"id": contact, "wa": f"26370{contact}", "at": at(1)},
            )
        # Contact 1: booking on the 5th (written first), on the 3rd, and a menu on the
        # 6th; contact 2: booking on the 4th only.
        for row in (
            {"id": 1, "contact": 1, "flow": "booking", "version": "v2", "at": at(5)},
            {"id": 2, "contact": 1, "flow": "booking", "version": "v1", "at": at(3)},
            {"id": 3, "contact": 1, "flow": "menu", "version": "", "at": at(6)},
            {"id": 4, "contact": 2, "flow": "booking", "version": "v1", "at": at(4)},
        ):
            await conn.execute(session_sql, row)
        for session_id, day in ((1, 5), (2, 3), (2, 4), (4, 4)):
            await conn.execute(
                text(
                    "INSERT INTO flow_step_events (session_id, step_name, action, timestamp, "
                    "retry_count) VALUES (:session, 'ask', 'entered', :at, 0)"
                ),
                {"session": session_id, "at": at(day)},
            )
    await migrate(empty_db)

    async def repeats() -> dict[int, bool]:
        async with empty_db.engine.connect() as conn:
            found = await conn.execute(text("SELECT id, repeat_contact FROM flow_sessions"))
            return {int(r[0]): bool(r[1]) for r in found}

    async def copied() -> list[tuple[int, str, str, dt.datetime]]:
        async with empty_db.engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT session_id, flow_name, flow_version, session_started_at "
                    "FROM flow_step_events ORDER BY id"
                )
            )
            return [(int(r[0]), r[1], r[2], _utc(r[3])) for r in found]

    assert await repeats() == {1: True, 2: False, 3: False, 4: False}
    assert await copied() == [
        (1, "booking", "v2", at(5)),
        (2, "booking", "v1", at(3)),
        (2, "booking", "v1", at(3)),
        (4, "booking", "v1", at(4)),
    ]
    # The database keeps the mark: a later session is a repeat at once; one written
    # after a contact's later session makes that one a repeat.
    async with empty_db.engine.begin() as conn:
        await conn.execute(
            session_sql, {"id": 5, "contact": 2, "flow": "booking", "version": "v1", "at": at(9)}
        )
        await conn.execute(
            session_sql, {"id": 6, "contact": 1, "flow": "menu", "version": "", "at": at(2)}
        )
    assert await repeats() == {1: True, 2: False, 3: True, 4: False, 5: True, 6: False}

    async with empty_db.engine.begin() as conn:
        await conn.run_sync(run("0016_goal_events_at", down=True))  # type: ignore[arg-type]
    async with empty_db.engine.connect() as conn:
        columns = await conn.run_sync(
            lambda c: {
                table: {column["name"] for column in inspect(c).get_columns(table)}
                for table in ("flow_sessions", "flow_step_events")
            }
        )
        events = await conn.scalar(text("SELECT count(*) FROM flow_step_events"))
        sessions = await conn.scalar(text("SELECT count(*) FROM flow_sessions"))
    assert "repeat_contact" not in columns["flow_sessions"]
    assert not {"flow_name", "flow_version", "session_started_at"} & columns["flow_step_events"]
    assert (events, sessions) == (4, 6)
    # A session inserted now sets nothing (the trigger went with the column).
    async with empty_db.engine.begin() as conn:
        await conn.execute(
            session_sql, {"id": 7, "contact": 2, "flow": "booking", "version": "v1", "at": at(10)}
        )
    await migrate(empty_db)
    assert (await repeats())[7] is True


def _utc(value: object) -> dt.datetime:
    """A timestamp read back: SQLite gives naive UTC text or datetimes, PostgreSQL aware."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
