"""The outbox's claim takes, in due order, each contact's oldest queued row and nothing
behind it, however long the backlog (both databases)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from sqlalchemy import update

from bot.metrics import Metrics
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox
from flows.messages import Text, reply_to_payload
from storage import (
    Database,
    OutboundMessage,
    OutboundStatus,
    get_or_create_contact,
    utcnow,
)
from tests.bot.webhooks import ACCESS_TOKEN, PHONE_NUMBER_ID


@pytest_asyncio.fixture
async def outbox(db: Database) -> AsyncIterator[Outbox]:
    async with aiohttp.ClientSession() as http:
        client = GraphClient(
            http,
            base_url="http://127.0.0.1:9/v23.0",  # never called: these tests only claim
            access_token=ACCESS_TOKEN,
            phone_number_id=PHONE_NUMBER_ID,
        )
        yield Outbox(db, client, Metrics(), rate=None, batch=50)


async def _queue(
    db: Database, rows: list[tuple[str, dt.timedelta]], *, sandbox: frozenset[str] = frozenset()
) -> list[tuple[str, int]]:
    """Queue one text per (contact, due in) pair, in this order; (contact, row id)."""
    now = utcnow()
    queued: list[tuple[str, int]] = []
    async with db.transaction() as session:
        for who, due_in in rows:
            contact = await get_or_create_contact(session, wa_id=who)
            contact.last_inbound_at = now
            contact.sandbox = who in sandbox
            row = OutboundMessage(
                contact_id=contact.id, kind="text", payload=reply_to_payload(Text(who)),
                status=OutboundStatus.QUEUED, created_at=now, next_attempt_at=now + due_in,
            )  # fmt: skip
            session.add(row)
            await session.flush()
            queued.append((who, row.id))
    return queued


async def _set_status(db: Database, row_id: int, status: OutboundStatus) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == row_id)
            .values(status=status, in_flight=False)
        )


NOW = dt.timedelta(0)
LATER = dt.timedelta(hours=1)
EARLIER = dt.timedelta(seconds=-30)


async def test_each_contacts_oldest_due_row_and_nothing_behind_it(
    db: Database, outbox: Outbox
) -> None:
    a, b, c, d, e = (f"26377002000{n}" for n in range(5))
    rows = await _queue(
        db,
        [
            (a, NOW), (b, NOW), (a, NOW), (c, LATER), (b, EARLIER), (a, NOW), (d, NOW),
            (e, EARLIER),
        ],
        sandbox=frozenset({d}),
    )  # fmt: skip
    ids = {(who, n): row_id for n, (who, row_id) in enumerate(rows)}
    claimed = await outbox.claim()
    # b's second row is due before its first, but the first still waits: b's first goes.
    # c's row is not due; d is a sandbox contact (never sent). Due order: e, then a and b.
    assert [row.id for row in claimed] == [ids[(e, 7)], ids[(a, 0)], ids[(b, 1)]]
    # Leased: claimed rows are not due again, and nothing behind them moves.
    assert await outbox.claim() == []

    await _set_status(db, ids[(a, 0)], OutboundStatus.SENT)
    await _set_status(db, ids[(b, 1)], OutboundStatus.FAILED)  # finally refused: b moves on
    assert [row.id for row in await outbox.claim()] == [ids[(b, 4)], ids[(a, 2)]]


async def test_a_backlog_longer_than_a_batch_is_taken_a_contact_at_a_time(
    db: Database, outbox: Outbox
) -> None:
    contacts = [f"2637700210{n:02d}" for n in range(60)]
    # Three rows each, every contact's rows queued before the next contact's.
    rows = await _queue(db, [(who, NOW) for who in contacts for _ in range(3)])
    first_of = dict(reversed(rows))  # each contact's first row
    claimed = await outbox.claim()
    assert len(claimed) == 50
    assert [row.id for row in claimed] == [first_of[who] for who in contacts[:50]]
    rest = await outbox.claim()
    assert [row.id for row in rest] == [first_of[who] for who in contacts[50:]]
    assert await outbox.claim() == []
