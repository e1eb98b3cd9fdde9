"""A safari database made before apps had their own branches upgrades in place.

The database is built at the old head (``0009_pair_rate_strikes``) with the revisions as
they were then (kept in ``tests/storage/legacy_migrations``), every table gets rows, and
``storage.migrate`` with the safari app's branch brings it to the new layout. Then:
every row is still there, unchanged; the receipt counters became the ``RCT`` series of
``document_counters``; every booking became a ``booking`` goal event (in the flow session
it was made in); the snapshots' ``booked_sessions`` are their ``converted_sessions``; and
the schema is the one a fresh safari database gets.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, Table, inspect, select, text
from sqlalchemy.engine import Connection

from bot.apps import load_app
from storage import Database, migrate
from storage.migrate import current_revisions, head_revisions
from tests.conftest import BACKENDS, PG_ADMIN_URL

LEGACY = Path(__file__).parent / "legacy_migrations"
OLD_HEAD = "0009_pair_rate_strikes"
SAFARI = load_app("apps.safari")

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)

Rows = dict[str, list[dict[str, Any]]]


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def _legacy_upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(LEGACY))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, OLD_HEAD)


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _new_database(backend: str, folder: Path, name: str) -> AsyncIterator[Database]:
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{folder / name}.db")
        try:
            yield db
        finally:
            await db.dispose()
        return
    database = f"nyala_legacy_{name}_{uuid.uuid4().hex[:10]}"
    try:
        await _pg(f'CREATE DATABASE "{database}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")
    db = Database(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{database}")
    try:
        yield db
    finally:
        await db.dispose()
        await _pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def old_db(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database at the old head, on each backend."""
    async for db in _new_database(backend, tmp_path, "old"):
        async with db.engine.begin() as conn:
            await conn.run_sync(_legacy_upgrade)
        yield db


@pytest_asyncio.fixture
async def fresh_db(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A database made today for the safari app."""
    async for db in _new_database(backend, tmp_path, "fresh"):
        await migrate(db, SAFARI.migration_locations)
        yield db


# the old database's rows ------------------------------------------------------------------


def legacy_rows() -> Rows:
    """Rows for every table of the old layout, in the order their foreign keys need."""
    json_doc = {"a": [1, 2], "b": "x"}
    # fmt: off
    return {
        "contacts": [
            {"id": 1, "wa_id": "263770000001", "user_id": None, "profile_name": "Ana",
             "attributes": {"lang": "en"}, "last_inbound_at": at(9), "created_at": at(0),
             "updated_at": at(9)},
            {"id": 2, "wa_id": "263770000002", "user_id": "ZW.2", "profile_name": "Ben",
             "attributes": {}, "last_inbound_at": None, "created_at": at(1), "updated_at": at(1)},
            {"id": 3, "wa_id": "263770000003", "user_id": None, "profile_name": None,
             "attributes": {}, "last_inbound_at": None, "created_at": at(2), "updated_at": at(2)},
        ],
        "stored_files": [
            {"id": 1, "filename": "receipt.pdf", "mime_type": "application/pdf", "size": 4,
             "sha256": "a" * 64, "data": b"%PDF", "created_at": at(30)},
            {"id": 2, "filename": "id.jpg", "mime_type": "image/jpeg", "size": 3,
             "sha256": "b" * 64, "data": b"\xff\xd8\xff", "created_at": at(31)},
        ],
        "flow_sessions": [
            # Ana books in her first session (between 08:00 and 08:10).
            {"id": 1, "contact_id": 1, "flow_name": "booking_flow", "flow_version": "v1",
             "started_at": at(0), "completed_at": at(10), "status": "completed",
             "context_data": json_doc, "error_message": None, "current_step": "done",
             "last_activity_at": at(10), "ended_reason": None},
            # Ben abandons his; his booking is made later by an operator.
            {"id": 2, "contact_id": 2, "flow_name": "booking_flow", "flow_version": "v1",
             "started_at": at(1), "completed_at": None, "status": "abandoned",
             "context_data": {}, "error_message": None, "current_step": "choose_tour",
             "last_activity_at": at(5), "ended_reason": "idle"},
            # Ana again, in another flow, without booking.
            {"id": 3, "contact_id": 1, "flow_name": "enquiry", "flow_version": "v2",
             "started_at": at(20), "completed_at": at(25), "status": "completed",
             "context_data": {}, "error_message": None, "current_step": None,
             "last_activity_at": at(25), "ended_reason": None},
        ],
        "flow_step_events": [
            {"id": 1, "session_id": 1, "step_name": "choose_tour", "action": "entered",
             "timestamp": at(0), "time_spent": None, "input_value": None,
             "output_value": None, "error_message": None, "retry_count": 0},
            {"id": 2, "session_id": 1, "step_name": "choose_tour", "action": "completed",
             "timestamp": at(2), "time_spent": 120.5, "input_value": "1",
             "output_value": "VF", "error_message": None, "retry_count": 0},
            {"id": 3, "session_id": 2, "step_name": "choose_tour", "action": "retry",
             "timestamp": at(3), "time_spent": None, "input_value": "??",
             "output_value": None, "error_message": "Please pick a tour", "retry_count": 1},
        ],
        "inbound_messages": [
            {"id": 1, "wa_message_id": "wamid.in1", "contact_id": 1, "kind": "text",
             "payload": {"text": {"body": "hi"}}, "received_at": at(0), "status": "done",
             "processed_at": at(0), "error": None, "sent_at": at(0)},
            {"id": 2, "wa_message_id": "wamid.in2", "contact_id": 2, "kind": "text",
             "payload": {"text": {"body": "book"}}, "received_at": at(1), "status": "failed",
             "processed_at": None, "error": "boom", "sent_at": None},
        ],
        "outbound_messages": [
            {"id": 1, "contact_id": 1, "inbound_id": 1, "kind": "text",
             "payload": {"text": "Welcome"}, "status": "delivered", "created_at": at(0),
             "wa_message_id": "wamid.out1", "attempts": 1, "next_attempt_at": None,
             "last_error": None, "error_code": None, "ambiguous_resends": 0,
             "in_flight": False, "media_id": None, "fallback": None, "sent_at": at(0),
             "status_at": at(1), "pair_rate_strikes": 0},
            {"id": 2, "contact_id": 2, "inbound_id": None, "kind": "document",
             "payload": {"document": {"id": 1}}, "status": "queued", "created_at": at(40),
             "wa_message_id": None, "attempts": 2, "next_attempt_at": at(45),
             "last_error": "rate limited", "error_code": 131056, "ambiguous_resends": 1,
             "in_flight": False, "media_id": "media-1", "fallback": {"name": "receipt"},
             "sent_at": None, "status_at": None, "pair_rate_strikes": 2},
        ],
        "conversations": [
            {"contact_id": 1, "flow_name": None, "flow_version": None, "state": None,
             "data": {}, "flow_session_id": None, "step_entered_at": None, "retry_count": 0,
             "last_activity_at": at(25), "handed_off_at": None, "handoff_reason": None,
             "created_at": at(0), "updated_at": at(25)},
            {"contact_id": 2, "flow_name": "booking_flow", "flow_version": "v1",
             "state": "choose_tour", "data": {"tour_id": 1}, "flow_session_id": 2,
             "step_entered_at": at(3), "retry_count": 1, "last_activity_at": at(3),
             "handed_off_at": at(4), "handoff_reason": "asked for a person",
             "created_at": at(1), "updated_at": at(4)},
        ],
        "ignored_updates": [
            {"id": 1, "received_at": at(6), "what": "reaction", "reason": "not handled",
             "payload": json_doc},
        ],
        "flow_metric_snapshots": [
            {"id": 1, "flow_name": "booking_flow", "flow_version": "v1", "period": "daily",
             "period_start": at(0), "period_end": at(24 * 60), "total_sessions": 2,
             "completed_sessions": 1, "abandoned_sessions": 1, "error_sessions": 0,
             "avg_duration_seconds": 600.0, "total_errors": 0, "error_rate": 0.0,
             "created_at": at(24 * 60), "active_sessions": 0, "total_retries": 1,
             "retried_sessions": 1, "recovered_sessions": 0, "handed_off_sessions": 1,
             "booked_sessions": 1, "returning_sessions": 0},
        ],
        "flow_step_metric_snapshots": [
            {"id": 1, "snapshot_id": 1, "step_name": "choose_tour", "sessions": 2,
             "completed": 1, "skipped": 0, "retries": 1, "errors": 0,
             "time_spent_total": 120.5, "time_spent_count": 1, "avg_offset_seconds": 0.0,
             "abandoned_here": 1, "errored_here": 0, "handed_off_here": 1},
        ],
        "operators": [
            {"id": 1, "username": "admin", "password_hash": "scrypt$x", "role": "admin",
             "active": True, "created_at": at(0), "password_changed_at": at(0),
             "last_login_at": at(50)},
            {"id": 2, "username": "viewer", "password_hash": "scrypt$y", "role": "viewer",
             "active": False, "created_at": at(0), "password_changed_at": at(0),
             "last_login_at": None},
        ],
        "console_sessions": [
            {"id": 1, "token_hash": "c" * 64, "operator_id": 1, "csrf_token": "d" * 64,
             "created_at": at(50), "last_seen_at": at(55), "expires_at": at(50 + 720),
             "ip": "127.0.0.1", "user_agent": "pytest"},
        ],
        "console_login_attempts": [
            {"id": 1, "at": at(49), "username": "admin", "ip": "127.0.0.1", "success": False},
            {"id": 2, "at": at(50), "username": "admin", "ip": "127.0.0.1", "success": True},
        ],
        "audit_log": [
            {"id": 1, "at": at(60), "actor": "admin", "action": "payment.approve",
             "target": "payment 2", "details": "bank transfer seen"},
        ],
        "tours": [
            {"id": 1, "code": "VF", "name": "Victoria Falls", "description": "The falls",
             "duration_minutes": 180, "start_time": dt.time(8, 30), "meeting_point": "Lodge",
             "meeting_address": "1 Park Way", "meeting_latitude": -17.92,
             "meeting_longitude": 25.85, "guide_name": "Tendai", "guide_phone": "263771111111",
             "price_per_person": Decimal("1200.00"), "currency": "USD",
             "packing_list": ["hat", "water"], "clothing_advice": "Light",
             "weather_outlook": "Sunny", "park_rules": "Stay on paths",
             "safety_guidelines": "Listen to the guide", "emergency_contacts": {"park": "999"},
             "cancellation_policy": "7 days", "active": True, "created_at": at(0),
             "updated_at": at(0)},
        ],
        "customers": [
            {"id": 1, "contact_id": 1, "name": "Ana Moyo", "email": "ana@example.com",
             "phone": "263770000001", "created_at": at(5), "updated_at": at(5)},
            {"id": 2, "contact_id": 2, "name": "Ben Dube", "email": None,
             "phone": "263770000002", "created_at": at(30), "updated_at": at(30)},
            {"id": 3, "contact_id": None, "name": "Walk-in", "email": None, "phone": None,
             "created_at": at(35), "updated_at": at(35)},
        ],
        "departures": [
            {"id": 1, "tour_id": 1, "date": dt.date(2026, 12, 24), "capacity": 12,
             "seats_left": 7},
            {"id": 2, "tour_id": 1, "date": dt.date(2026, 12, 26), "capacity": 12,
             "seats_left": 12},
        ],
        "bookings": [
            {"id": 1, "reference": "SF-AAAA11", "customer_id": 1, "tour_id": 1,
             "departure_id": 1, "travelers_count": 2, "total_cost": Decimal("2400.00"),
             "currency": "USD", "status": "confirmed", "cancelled_at": None, "notes": None,
             "created_at": at(6), "updated_at": at(6)},
            {"id": 2, "reference": "SF-BBBB22", "customer_id": 2, "tour_id": 1,
             "departure_id": 1, "travelers_count": 2, "total_cost": Decimal("2400.00"),
             "currency": "USD", "status": "pending", "cancelled_at": None,
             "notes": "booked by phone", "created_at": at(30), "updated_at": at(30)},
            {"id": 3, "reference": "SF-CCCC33", "customer_id": 3, "tour_id": 1,
             "departure_id": 1, "travelers_count": 1, "total_cost": Decimal("1200.00"),
             "currency": "USD", "status": "cancelled", "cancelled_at": at(40), "notes": None,
             "created_at": at(35), "updated_at": at(40)},
        ],
        "payments": [
            {"id": 1, "booking_id": 1, "amount": Decimal("2400.00"), "currency": "USD",
             "method": "omari", "status": "confirmed", "provider_reference": "OM-1",
             "mobile_number": "263770000001", "proof_file_id": None, "proof_media_id": None,
             "paid_at": at(8), "approved_by": None, "approved_at": None,
             "rejected_reason": None, "created_at": at(7), "updated_at": at(8)},
            {"id": 2, "booking_id": 2, "amount": Decimal("2400.00"), "currency": "USD",
             "method": "bank_transfer", "status": "approved", "provider_reference": None,
             "mobile_number": None, "proof_file_id": 2, "proof_media_id": "media-2",
             "paid_at": at(58), "approved_by": "admin", "approved_at": at(60),
             "rejected_reason": None, "created_at": at(31), "updated_at": at(60)},
        ],
        "travelers": [
            {"id": 1, "booking_id": 1, "position": 1, "full_name": "Ana Moyo",
             "id_status": "verified", "id_file_id": 2, "id_media_id": "media-3",
             "id_uploaded_at": at(9)},
            {"id": 2, "booking_id": 1, "position": 2, "full_name": "Tino Moyo",
             "id_status": "missing", "id_file_id": None, "id_media_id": None,
             "id_uploaded_at": None},
        ],
        "provider_events": [
            {"id": 1, "provider": "omari", "event_id": "evt-1", "payment_id": 1,
             "status": "SUCCESS", "outcome": "confirmed", "received_at": at(8)},
        ],
        "receipt_counters": [
            {"year": 2025, "last_seq": 41},
            {"year": 2026, "last_seq": 7},
        ],
        "receipts": [
            {"id": 1, "payment_id": 1, "number": "RCT-2026-0007", "year": 2026, "seq": 7,
             "issued_at": at(9), "file_id": 1, "sha256": "a" * 64},
        ],
        "notifications": [
            {"id": 1, "booking_id": 1, "kind": "summary", "key": "2026-12-17",
             "created_at": at(70)},
            {"id": 2, "booking_id": 1, "kind": "id_reminder", "key": "1", "created_at": at(71)},
        ],
    }
    # fmt: on


# reading and writing tables by reflection -----------------------------------------------


def _tables(connection: Connection) -> dict[str, Table]:
    metadata = MetaData()
    metadata.reflect(connection)
    return dict(metadata.tables)


def _stored(value: Any, dialect: str) -> Any:
    # SQLite has no time zones: the framework stores naive UTC there.
    if isinstance(value, dt.datetime) and dialect == "sqlite":
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _insert(connection: Connection, rows: Rows) -> None:
    tables = _tables(connection)
    dialect = connection.dialect.name
    for name, table_rows in rows.items():
        stored = [{k: _stored(v, dialect) for k, v in row.items()} for row in table_rows]
        connection.execute(tables[name].insert(), stored)
    if dialect == "postgresql":
        # Rows were given ids: move each identity on past them, as the app's inserts would.
        for name, table_rows in rows.items():
            if "id" in table_rows[0]:
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )


def _dump(connection: Connection) -> Rows:
    """Every row of every table, ordered by primary key."""
    result: Rows = {}
    for name, table in _tables(connection).items():
        if name == "alembic_version":
            continue
        query = select(table).order_by(*table.primary_key.columns)
        result[name] = [dict(row) for row in connection.execute(query).mappings()]
    return result


def _schema(connection: Connection) -> dict[str, Any]:
    """What a table is made of: columns, keys, unique constraints, indexes, checks."""
    inspector = inspect(connection)
    schema: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        columns = {
            c["name"]: (type(c["type"]).__name__, str(c["type"]), c["nullable"])
            for c in inspector.get_columns(name)
        }
        schema[name] = {
            "columns": columns,
            "pk": tuple(inspector.get_pk_constraint(name)["constrained_columns"]),
            "fks": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    (fk.get("options") or {}).get("ondelete"),
                )
                for fk in inspector.get_foreign_keys(name)
            ),
            "uniques": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(name)
            ),
            "indexes": sorted(
                (i["name"], tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(name)
            ),
            "checks": sorted(c["name"] or "" for c in inspector.get_check_constraints(name)),
        }
    return schema


async def _run(db: Database, work: Callable[[Connection], Any]) -> Any:
    async with db.engine.begin() as conn:
        return await conn.run_sync(work)


# the upgrade ------------------------------------------------------------------------------


async def test_an_old_safari_database_upgrades_with_every_row_kept(
    old_db: Database, fresh_db: Database
) -> None:
    assert await current_revisions(old_db) == {OLD_HEAD}
    rows = legacy_rows()
    await _run(old_db, lambda conn: _insert(conn, rows))
    before: Rows = await _run(old_db, _dump)
    assert {name for name, found in before.items() if not found} == set()  # all filled
    assert set(before) == set(rows)

    await migrate(old_db, SAFARI.migration_locations, metadata=SAFARI.metadata)
    after: Rows = await _run(old_db, _dump)

    assert await current_revisions(old_db) == await current_revisions(fresh_db)
    assert "safari_0003_customer_reference" in head_revisions(SAFARI.migration_locations)

    # every row kept, unchanged; columns added since are empty; one column renamed
    renamed = {"flow_metric_snapshots": {"booked_sessions": "converted_sessions"}}
    # added columns that are not nullable, with their server defaults
    defaults: dict[str, dict[str, Any]] = {
        "contacts": {"sandbox": False},
        "inbound_messages": {"held": False},
        "flow_metric_snapshots": {"cancelled_sessions": 0, "nothing_to_do_sessions": 0},
        # no contact started a flow twice here (0017's own test covers the repeats)
        "flow_sessions": {"repeat_contact": False},
    }
    # added columns copied from another row: each step event's session's (0017)
    sessions = {row["id"]: row for row in after["flow_sessions"]}
    copied = {
        event["id"]: {
            "flow_name": sessions[event["session_id"]]["flow_name"],
            "flow_version": sessions[event["session_id"]]["flow_version"],
            "session_started_at": sessions[event["session_id"]]["started_at"],
        }
        for event in after["flow_step_events"]
    }
    for name, old_rows in before.items():
        if name == "receipt_counters":
            continue
        new_rows = after[name]
        assert len(new_rows) == len(old_rows), name
        for old, new in zip(old_rows, new_rows, strict=True):
            names = renamed.get(name, {})
            kept = {names.get(column, column): value for column, value in old.items()}
            assert {column: new[column] for column in kept} == kept, name
            added = {column: value for column, value in new.items() if column not in kept}
            expected = {column: defaults.get(name, {}).get(column) for column in added}
            if name == "flow_step_events":
                expected |= copied[new["id"]]
            assert added == expected, name
    assert after["flow_metric_snapshots"][0]["converted_sessions"] == 1
    assert "error_code" in after["flow_step_events"][0]  # the column 0010 added

    # the receipt counters are the document counters' series RCT
    assert "receipt_counters" not in after
    counters = sorted((c["series"], c["year"], c["last_seq"]) for c in after["document_counters"])
    assert counters == [("RCT", 2025, 41), ("RCT", 2026, 7)]

    # every booking of a known contact is a goal 'booking', in the session it was made in
    goals = sorted(
        (g["goal"], g["contact_id"], g["session_id"], g["reference"]) for g in after["goal_events"]
    )
    assert goals == [
        ("booking", 1, 1, "SF-AAAA11"),  # made during Ana's completed session
        ("booking", 2, None, "SF-BBBB22"),  # made by an operator, after Ben's session
    ]  # the walk-in's booking has no contact: no goal event
    by_reference = {g["reference"]: g for g in after["goal_events"]}
    booked_at = {b["reference"]: b["created_at"] for b in after["bookings"]}
    assert all(by_reference[ref]["at"] == booked_at[ref] for ref in by_reference)

    # the sessions old analytics counted as booked are those converted now
    old_rule = """
        SELECT s.id FROM flow_sessions s WHERE s.status = 'completed' AND EXISTS (
          SELECT 1 FROM bookings b JOIN customers c ON c.id = b.customer_id
           WHERE c.contact_id = s.contact_id
             AND b.created_at >= s.started_at AND b.created_at <= s.completed_at)
    """
    async with old_db.read() as session:
        booked = set((await session.scalars(text(old_rule))).all())
        converted = set(
            (
                await session.scalars(
                    text(
                        "SELECT DISTINCT g.session_id FROM goal_events g "
                        "JOIN flow_sessions s ON s.id = g.session_id "
                        "WHERE g.goal = 'booking' AND s.status = 'completed'"
                    )
                )
            ).all()
        )
    assert booked == converted == {1}

    # new rows go on from the old ones
    async with old_db.transaction() as session:
        new_id = await session.scalar(
            text(
                "INSERT INTO audit_log (at, actor, action, target) "
                "VALUES (:at, 'admin', 'x', 'y') RETURNING id"
            ),
            {"at": _stored(at(90), old_db.engine.dialect.name)},
        )
    assert new_id == 2

    # and the schema is the one a database made today gets
    upgraded, fresh = await _run(old_db, _schema), await _run(fresh_db, _schema)
    assert sorted(upgraded) == sorted(fresh)
    for name in fresh:
        assert upgraded[name] == fresh[name], name


async def test_upgrading_twice_changes_nothing(old_db: Database) -> None:
    await _run(old_db, lambda conn: _insert(conn, legacy_rows()))
    await migrate(old_db, SAFARI.migration_locations)
    first: Rows = await _run(old_db, _dump)
    before, after = await migrate(old_db, SAFARI.migration_locations)
    assert before == after
    assert await _run(old_db, _dump) == first
