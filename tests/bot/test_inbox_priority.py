"""Webhooks first: while requests are in flight, processing narrows but never stops."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.metrics import Metrics
from bot.whatsapp.processing import Processor
from flows import App, ContactRef, Engine, UserMessage
from storage import Database, InboundMessage, InboundStatus, utcnow


async def pending_for(engine: Engine, contacts: int) -> list[int]:
    ids = []
    for i in range(contacts):
        ref = ContactRef(wa_id=f"26377100{i:04d}", profile_name=f"P{i}")
        message = UserMessage(id=f"wamid.PRIO{i}", kind="text", text="hi", timestamp=utcnow())
        ids.append((await engine.receive(ref, message)).contact_id)
    return ids


async def statuses(db: Database) -> list[InboundStatus]:
    async with db.read() as session:
        return list((await session.scalars(select(InboundMessage.status))).all())


async def test_processing_goes_on_while_webhooks_are_in_flight(db: Database, cafe: App) -> None:
    engine = Engine(db, cafe, sandbox=True)
    inbox = Processor(engine, Metrics(), batch_size=2, workers=4, busy_workers=1)
    contact_ids = await pending_for(engine, 6)
    with inbox.acknowledging():  # a webhook request that never ends while we wait
        assert inbox.busy
        inbox.kick(contact_ids)
        await asyncio.wait_for(inbox.drain(), timeout=60)
    assert await statuses(db) == [InboundStatus.DONE] * 6


def _busy(inbox: Processor) -> bool:
    return inbox.busy


async def test_busy_ends_shortly_after_the_last_request(db: Database, cafe: App) -> None:
    inbox = Processor(Engine(db, cafe), Metrics(), busy_window=0.0)
    assert not _busy(inbox)
    with inbox.acknowledging():
        with inbox.acknowledging():
            assert _busy(inbox)
        assert _busy(inbox)  # one still in flight
    assert not _busy(inbox)
