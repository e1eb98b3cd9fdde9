"""The outbox records what Meta accepted in groups: one transaction for the sends that
finished together, every row still recorded once with its own message id, and a status
that arrived before its message id is applied (both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest_asyncio
from sqlalchemy import event, select

from bot.metrics import Metrics
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox
from bot.whatsapp.statuses import apply_early_statuses_of
from flows.messages import Text, reply_to_payload
from storage import (
    Database,
    IgnoredUpdate,
    OutboundMessage,
    OutboundStatus,
    get_or_create_contact,
    utcnow,
)
from testing.fake_graph import FakeGraph
from tests.bot.webhooks import ACCESS_TOKEN, PHONE_NUMBER_ID

CONTACTS = 20


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(token=ACCESS_TOKEN, phone_number_id=PHONE_NUMBER_ID) as graph:
        yield graph


@contextmanager
def commits(db: Database) -> Iterator[list[int]]:
    """Counts the commits the database's engine makes while the block runs."""
    seen: list[int] = []

    def count(_conn: Any) -> None:
        seen.append(1)

    event.listen(db.engine.sync_engine, "commit", count)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "commit", count)


async def _queue(db: Database) -> list[int]:
    ids = []
    async with db.transaction() as session:
        for n in range(CONTACTS):
            contact = await get_or_create_contact(session, wa_id=f"2637700199{n:02d}")
            contact.last_inbound_at = utcnow()
            row = OutboundMessage(
                contact_id=contact.id, kind="text", payload=reply_to_payload(Text(f"Hi {n}")),
                status=OutboundStatus.QUEUED, created_at=utcnow(), next_attempt_at=utcnow(),
            )  # fmt: skip
            session.add(row)
            await session.flush()
            ids.append(row.id)
    return ids


async def test_sends_that_finish_together_are_recorded_together(
    db: Database, fake: FakeGraph
) -> None:
    ids = await _queue(db)
    async with aiohttp.ClientSession() as http:
        client = GraphClient(
            http, base_url=str(fake.base_url), access_token=ACCESS_TOKEN,
            phone_number_id=PHONE_NUMBER_ID,
        )  # fmt: skip
        outbox = Outbox(db, client, Metrics(), rate=None)
        with commits(db) as seen:
            assert await outbox.send_due() == CONTACTS
    # The claim, then the records: far fewer than one transaction per message.
    assert len(seen) < CONTACTS // 2, len(seen)
    async with db.read() as session:
        rows = (
            await session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(ids)))
        ).all()
    assert {r.status for r in rows} == {OutboundStatus.SENT}
    assert not any(r.in_flight for r in rows)
    wamids = {r.wa_message_id for r in rows}
    assert None not in wamids and len(wamids) == CONTACTS
    assert wamids == {s.wamid for s in fake.sent}


async def test_statuses_that_came_first_are_applied_for_a_whole_group(db: Database) -> None:
    ids = await _queue(db)
    wamids = [f"wamid.GROUP{n:02d}" for n in range(len(ids))]
    async with db.transaction() as session:
        for row_id, wamid in zip(ids, wamids, strict=True):
            row = await session.get(OutboundMessage, row_id)
            assert row is not None
            row.status, row.wa_message_id = OutboundStatus.SENT, wamid
        # Meta's "delivered" for two of them arrived before their ids were recorded.
        for wamid in wamids[3:5]:
            session.add(
                IgnoredUpdate(
                    what=f"early status of {wamid}",
                    reason="status before its message id",
                    payload={"id": wamid, "status": "delivered", "timestamp": None},
                )
            )
    async with db.transaction() as session:
        # Locks for every id of the group in one statement (PostgreSQL), then one query.
        assert await apply_early_statuses_of(session, list(reversed(wamids)), utcnow()) == 2
    async with db.read() as session:
        rows = (
            await session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.id.in_(ids))
                .order_by(OutboundMessage.id)
            )
        ).all()
        left = (await session.scalars(select(IgnoredUpdate))).all()
    statuses = [r.status for r in rows]
    assert statuses[3:5] == [OutboundStatus.DELIVERED] * 2
    assert statuses[:3] + statuses[5:] == [OutboundStatus.SENT] * (len(ids) - 2)
    assert left == []
