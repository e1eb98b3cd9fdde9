"""A group of plain messages is stored by one statement on PostgreSQL (no BEGIN, no
COMMIT: it commits by itself), with the same rows the general way writes (SQLite, and
PostgreSQL for whatever the statement leaves)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from bot.whatsapp.inbox import GroupCommit, Stored
from bot.whatsapp.message_bodies import mark_read_body
from bot.whatsapp.outbox import MARK_READ
from bot.whatsapp.payloads import WebhookBatch, parse_webhook
from storage import (
    Contact,
    Database,
    IgnoredUpdate,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
)
from tests.bot.webhooks import message, messages_payload, status_payload


def _delivery(wa_id: str, *wamids: str, name: str = "Test User") -> WebhookBatch:
    items = [message(wa_id, text=f"hi {w}", wamid=w) for w in wamids]
    return parse_webhook(messages_payload(*items, name=name))


def _reaction(wa_id: str, wamid: str, to: str) -> WebhookBatch:
    item = message(wa_id, text="x", wamid=wamid)
    del item["text"]
    item |= {"type": "reaction", "reaction": {"message_id": to, "emoji": "👍"}}
    return parse_webhook(messages_payload(item, name="Rea"))


def _url(db: Database) -> str:
    return db.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _count(db: Database, model: Any) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_new_known_and_reacting_senders_get_their_rows_and_receipts(db: Database) -> None:
    group = GroupCommit(db, mark_read=True, own_connection=True)
    try:
        await group.store(_delivery("263774000001", "wamid.K0", name="Ada"))
        results = await asyncio.gather(
            group.store(_delivery("263774000001", "wamid.K1", "wamid.K2", name="Ada")),
            group.store(_delivery("263774000002", "wamid.N1", name="Bo")),
            group.store(_reaction("263774000003", "wamid.R1", to="wamid.OUT")),
            group.store(_delivery("263774000001", "wamid.K0", name="Ada")),  # redelivered
        )
    finally:
        await group.close()
    assert [(r.new_messages, r.duplicates) for r in results] == [(2, 0), (1, 0), (1, 0), (0, 1)]
    assert all(len(r.contacts) == 1 for r in results[:3]) and not results[3].contacts
    async with db.read() as session:
        rows = await session.execute(select(Contact.wa_id, Contact.profile_name))
        contacts = {str(row[0]): row[1] for row in rows}
        inbound = (
            await session.execute(
                select(
                    InboundMessage.wa_message_id,
                    InboundMessage.contact_id,
                    InboundMessage.kind,
                    InboundMessage.status,
                    InboundMessage.held,
                ).order_by(InboundMessage.id)
            )
        ).all()
        receipts = (
            await session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))
        ).all()
    assert contacts == {"263774000001": "Ada", "263774000002": "Bo", "263774000003": "Rea"}
    assert [row.wa_message_id for row in inbound] == [
        "wamid.K0", "wamid.K1", "wamid.K2", "wamid.N1", "wamid.R1",
    ]  # fmt: skip
    assert {row.kind for row in inbound} == {"text", "reaction"}
    assert {(row.status, row.held) for row in inbound} == {(InboundStatus.PENDING, False)}
    by_wamid = {row.wa_message_id: row for row in inbound}
    # A read receipt for every message but the reaction, before any reply, due now.
    assert [r.payload for r in receipts] == [
        mark_read_body(w) for w in ("wamid.K0", "wamid.K1", "wamid.K2", "wamid.N1")
    ]
    for receipt in receipts:
        wamid = str(receipt.payload["message_id"])
        assert (receipt.inbound_id, receipt.contact_id) == (
            await _inbound_id(db, wamid),
            by_wamid[wamid].contact_id,
        )
        assert receipt.kind == MARK_READ and receipt.status == OutboundStatus.QUEUED
        counters = (receipt.attempts, receipt.ambiguous_resends, receipt.pair_rate_strikes)
        assert counters == (0, 0, 0)
        assert receipt.in_flight is False and receipt.wa_message_id is None
        assert receipt.next_attempt_at == receipt.created_at
        assert isinstance(receipt.created_at, dt.datetime) and receipt.created_at.tzinfo


async def _inbound_id(db: Database, wamid: str) -> int:
    async with db.read() as session:
        found = await session.scalar(
            select(InboundMessage.id).where(InboundMessage.wa_message_id == wamid)
        )
    assert found is not None
    return int(found)


async def test_a_group_of_plain_messages_is_one_round_trip(db: Database) -> None:
    if not db.is_postgresql:
        pytest.skip("SQLite stores a group in a transaction of its own")
    group = GroupCommit(db, mark_read=True, own_connection=True, announce="test_one")
    try:
        await group.store(_delivery("263774000101", "wamid.O0", name="Ada"))
        assert group._kept is not None
        raw = await group._kept.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, asyncpg.Connection)
        queries: list[str] = []
        driver.add_query_logger(lambda record: queries.append(record.query))
        results = await asyncio.gather(
            group.store(_delivery("263774000101", "wamid.O1", name="Ada")),  # known
            *(group.store(_delivery(f"26377400020{i}", f"wamid.O2{i}")) for i in range(4)),
        )
        assert group.commits == 2
    finally:
        await group.close()
    assert [r.new_messages for r in results] == [1, 1, 1, 1, 1]
    # Looking up and creating the senders, inserting the messages and their receipts,
    # announcing the contacts: one statement, which commits by itself.
    assert len(queries) == 1, queries
    assert "INSERT INTO inbound_messages" in queries[0] and "pg_notify" in queries[0]
    assert await _count(db, OutboundMessage) == 6


async def test_a_contact_another_process_is_creating_is_waited_for(db: Database) -> None:
    """Two processes meet a new sender at once: the statement waits for the other's
    insert, leaves the message, and the general way stores it for that contact."""
    if not db.is_postgresql:
        pytest.skip("SQLite has one writer at a time")
    other = await asyncpg.connect(_url(db))
    group = GroupCommit(db, mark_read=False, own_connection=True)
    try:
        transaction = other.transaction()
        await transaction.start()
        contact_id = await other.fetchval(
            "INSERT INTO contacts (wa_id, profile_name, attributes, created_at, updated_at) "
            "VALUES ('263774000301', 'Cy', '{}'::jsonb, now(), now()) RETURNING id"
        )
        delivery = _delivery("263774000301", "wamid.C1", name="Cy")
        storing = asyncio.create_task(group.store(delivery))
        await asyncio.sleep(0.3)
        assert not storing.done()  # waits on the other's row (unique wa_id)
        await transaction.commit()
        result = await asyncio.wait_for(storing, 10)
    finally:
        await group.close()
        await other.close()
    assert (result.new_messages, result.contacts) == (1, {contact_id})
    assert group.commits == 2  # the statement's own, then the general way's
    assert await _count(db, Contact) == 1
    async with db.read() as session:
        stored = await session.scalar(select(InboundMessage.contact_id))
    assert stored == contact_id


async def test_a_failure_after_the_first_statement_stores_each_delivery_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction after the statement fails (a restart, say): the deliveries the
    statement stored whole are answered as stored, not as duplicates; the others are
    stored again, once."""
    if not db.is_postgresql:
        pytest.skip("SQLite stores a group in one transaction")
    group = GroupCommit(db, mark_read=False, own_connection=True)
    real = group._store_rest_on
    failures: list[bool] = []

    async def fails_once(*args: Any) -> None:
        if not failures:
            failures.append(True)
            raise ConnectionResetError("the server closed the connection")
        await real(*args)

    monkeypatch.setattr(group, "_store_rest_on", fails_once)
    try:
        results = await asyncio.gather(
            group.store(_delivery("263774000401", "wamid.F1", "wamid.F2")),
            group.store(parse_webhook(status_payload("wamid.OUT9", "read", "263774000401"))),
            group.store(_delivery("263774000402", "wamid.F3")),
        )
    finally:
        await group.close()
    assert failures == [True]
    assert group.commits == 2  # the statement's, then the deliveries stored again
    assert isinstance(results[0], Stored)
    assert [(r.new_messages, r.duplicates, r.ignored) for r in results] == [
        (2, 0, 0), (0, 0, 1), (1, 0, 0),
    ]  # fmt: skip
    assert all(r.contacts for r in (results[0], results[2]))
    assert await _count(db, InboundMessage) == 3
    assert await _count(db, IgnoredUpdate) == 1
