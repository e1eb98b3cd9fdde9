"""Storage: URLs, UTC timestamps, SQLite concurrency settings, migrations, errors."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Column, MetaData, Table, func, insert, select, text

from storage import (
    Contact,
    Database,
    DatabaseUnavailableError,
    FlowSession,
    IdBlock,
    SessionStatus,
    StorageError,
    get_or_create_contact,
    lock_contacts,
    migrate,
    try_lock_contacts,
)
from storage.base import Money, UTCDateTime
from storage.database import normalize_url
from storage.migrate import current_revisions, head_revisions


def test_plain_postgres_urls_mean_asyncpg() -> None:
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"


def test_unsupported_or_garbage_urls_are_one_line_errors() -> None:
    with pytest.raises(StorageError, match="unsupported database 'mysql'"):
        normalize_url("mysql://h/db")
    with pytest.raises(StorageError, match="invalid DATABASE_URL"):
        normalize_url("not a url")


def test_display_url_hides_the_password() -> None:
    db = Database("postgresql://nyala:s3cret@db.example:5432/nyala")
    assert "s3cret" not in db.display_url
    assert "***" in db.display_url


async def test_unreachable_database_names_url_without_password() -> None:
    db = Database("postgresql://nyala:s3cret@127.0.0.1:1/nyala")
    with pytest.raises(DatabaseUnavailableError) as info:
        await db.check()
    await db.dispose()
    message = str(info.value)
    assert "s3cret" not in message
    assert "127.0.0.1:1" in message
    assert "\n" not in message


async def test_migrate_is_idempotent_and_reaches_head(db: Database) -> None:
    heads = head_revisions()
    assert heads == {"0017_report_columns"}
    assert await current_revisions(db) == heads
    before, after = await migrate(db)
    assert before == after == "0017_report_columns"


async def test_timestamps_are_aware_utc_on_both_backends(db: Database) -> None:
    harare = dt.timezone(dt.timedelta(hours=2))
    started = dt.datetime(2026, 7, 1, 10, 0, tzinfo=harare)
    async with db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id="263770000009")
        row = FlowSession(
            contact_id=contact.id, flow_name="f", started_at=started, last_activity_at=started
        )
        session.add(row)
    async with db.read() as session:
        loaded = await session.scalar(select(FlowSession))
    assert loaded is not None
    assert loaded.started_at.tzinfo is not None
    assert loaded.started_at == started
    assert loaded.started_at.utcoffset() == dt.timedelta(0)
    assert loaded.status is SessionStatus.ACTIVE


async def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        async with db.transaction() as session:
            contact = await get_or_create_contact(session, wa_id="263770000010")
            session.add(
                FlowSession(
                    contact_id=contact.id,
                    flow_name="f",
                    started_at=dt.datetime(2026, 1, 1),  # noqa: DTZ001
                )
            )
            await session.flush()


async def test_money_is_an_exact_decimal(db: Database) -> None:
    table = Table(
        "money_probe", MetaData(), Column("amount", Money()), Column("at", UTCDateTime())
    )
    async with db.engine.begin() as conn:
        await conn.run_sync(table.create)
        await conn.execute(insert(table).values(amount=Decimal("1234.57")))
        value = (await conn.execute(select(table.c.amount))).scalar_one()
        await conn.run_sync(table.drop)
    assert value == Decimal("1234.57")
    assert isinstance(value, Decimal)


async def test_contacts_are_found_by_number_or_user_id(db: Database) -> None:
    async with db.transaction() as session:
        first = await get_or_create_contact(session, wa_id="263771111111", profile_name="A")
        by_user = await get_or_create_contact(session, wa_id=None, user_id="ZW.abc123")
        same = await get_or_create_contact(session, wa_id="263771111111", user_id="ZW.zzz")
        assert same.id == first.id
        assert same.user_id == "ZW.zzz"
        assert by_user.id != first.id
    with pytest.raises(ValueError, match="wa_id or a user_id"):
        async with db.transaction() as session:
            await get_or_create_contact(session, wa_id=None)


async def test_sqlite_is_set_up_for_concurrent_use(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    await migrate(db)
    async with db.read() as session:
        mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
        timeout = (await session.execute(text("PRAGMA busy_timeout"))).scalar_one()
        fks = (await session.execute(text("PRAGMA foreign_keys"))).scalar_one()
    assert (mode, fks) == ("wal", 1)
    assert timeout >= 5000

    # Two engines on one file (a server and a CLI command): concurrent read-modify-write
    # transactions never fail with "database is locked" and lose no update.
    other = Database(f"sqlite:///{tmp_path / 'c.db'}")
    async with db.transaction() as session:
        session.add(Contact(wa_id="1", attributes={"n": 0}))

    async def bump(database: Database) -> None:
        for _ in range(20):
            async with database.transaction() as session:
                contact = await session.scalar(select(Contact).where(Contact.wa_id == "1"))
                assert contact is not None
                contact.attributes = {"n": contact.attributes["n"] + 1}

    await asyncio.gather(bump(db), bump(other))
    async with db.read() as session:
        contact = await session.scalar(select(Contact))
    assert contact is not None and contact.attributes["n"] == 40
    await db.dispose()
    await other.dispose()


async def test_wait_ready_gives_up_at_once_on_a_refused_address() -> None:
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nothing")
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(DatabaseUnavailableError):
            await db.wait_ready(within=30.0)
        # Not a timing assertion on speed: it must not have waited out the 30 s.
        assert asyncio.get_running_loop().time() - started < 30.0
    finally:
        await db.dispose()


async def test_wait_ready_waits_while_postgresql_is_starting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PostgreSQL answers "the database system is starting up" for a moment after a
    (re)start: the server waits for it instead of exiting."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ready.db'}")
    real_check = db.check
    answers = iter(["the database system is starting up"] * 2)

    async def starting_then_ready() -> None:
        reason = next(answers, None)
        if reason is not None:
            raise DatabaseUnavailableError(f"cannot reach the database: {reason}")
        await real_check()

    monkeypatch.setattr(db, "check", starting_then_ready)
    try:
        await db.wait_ready(within=30.0)
        assert next(answers, None) is None
    finally:
        await db.dispose()


async def test_a_connection_closed_by_the_server_is_never_handed_out(postgres_url: str) -> None:
    """No pre-ping round trips: a pooled connection the server closed (a restart, an
    operator's ``pg_terminate_backend``) is found by the driver and replaced at checkout,
    so the next transaction works on a new connection instead of failing."""
    db = Database(postgres_url)
    admin = Database(postgres_url)
    try:
        async with db.transaction() as session:
            first = await session.scalar(text("SELECT pg_backend_pid()"))
        async with admin.transaction() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await asyncio.sleep(0.2)  # the driver reads the server's goodbye on the next poll
        async with db.transaction() as session:
            second = await session.scalar(text("SELECT pg_backend_pid()"))
        assert second is not None
        assert second != first
    finally:
        await db.dispose()
        await admin.dispose()


async def test_a_checkout_costs_no_round_trip(postgres_url: str) -> None:
    db = Database(postgres_url)
    sent: list[str] = []
    try:
        async with db.engine.connect() as conn:  # the first connect sets the dialect up
            await conn.execute(text("SELECT 1"))
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            driver.add_query_logger(lambda query: sent.append(query.query))
        for _ in range(3):
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 2"))
        # asyncpg logs the transaction's own BEGIN and ROLLBACK (a prepared SELECT is
        # not logged); a pre-ping would add its own BEGIN, ";" and ROLLBACK each time.
        assert sent.count("BEGIN;") == 3, sent
        assert ";" not in sent, sent
    finally:
        await db.dispose()


async def test_contacts_locked_together_are_held_until_the_transaction_ends(
    postgres_url: str,
) -> None:
    db = Database(postgres_url)
    try:
        async with db.transaction() as holder:
            await lock_contacts(holder, [3, 1, 2])  # one statement, any order given
            async with db.transaction() as other:
                assert await try_lock_contacts(other, [2, 4, 1]) == [4]
        async with db.transaction() as other:
            assert await try_lock_contacts(other, [2, 4, 1]) == [2, 4, 1]
    finally:
        await db.dispose()


async def test_ids_taken_beforehand_never_clash_with_rows_inserted_otherwise(db: Database) -> None:
    """A batch takes new flow sessions' ids before inserting them (PostgreSQL: from the
    sequence); a row inserted another way meanwhile (an app's own code in the same
    transaction) gets another id. SQLite takes none: the row gets its id on insert."""
    blocks = IdBlock(cast(Table, FlowSession.__table__), block=4)
    now = dt.datetime.now(dt.UTC)

    def session_row(contact_id: int, **fields: Any) -> FlowSession:
        return FlowSession(
            contact_id=contact_id, flow_name="f", flow_version="1", started_at=now,
            last_activity_at=now, status=SessionStatus.ACTIVE, context_data={}, **fields,
        )  # fmt: skip

    async with db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id="263770009001")
        taken = [await blocks.take(session) for _ in range(3)]
        if db.is_sqlite:
            assert taken == [None, None, None]
            return
        assert len(set(taken)) == 3
        other = session_row(contact.id)  # the database's own next id
        session.add(other)
        await session.flush()
        assert other.id not in taken
        session.add_all(session_row(contact.id, id=taken_id) for taken_id in taken)
        await session.flush()  # no clash
    async with db.read() as session:
        count = await session.scalar(select(func.count()).select_from(FlowSession))
    assert count == 4
