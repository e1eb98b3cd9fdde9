"""Statuses that overtake the sender's record of a message are applied afterwards."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.whatsapp.inbox import store_batch
from bot.whatsapp.payloads import parse_webhook
from bot.whatsapp.statuses import apply_early_statuses
from storage import (
    Database,
    IgnoredUpdate,
    OutboundMessage,
    OutboundStatus,
    get_or_create_contact,
    utcnow,
)
from tests.bot.webhooks import status_payload


async def test_an_early_status_waits_for_its_message(db: Database) -> None:
    async with db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id="263770000123")
        row = OutboundMessage(
            contact_id=contact.id,
            kind="text",
            payload={"body": "hi"},
            status=OutboundStatus.QUEUED,
            next_attempt_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        row_id = row.id
    for status in ("delivered", "sent"):
        batch = parse_webhook(status_payload("wamid.EARLY", status, "263770000123"))
        stored = await store_batch(db, batch, mark_read=False)
        assert stored.ignored == 1
    async with db.transaction() as session:
        sent = await session.get(OutboundMessage, row_id)
        assert sent is not None
        sent.wa_message_id = "wamid.EARLY"
        sent.status = OutboundStatus.SENT
        await session.flush()
        assert await apply_early_statuses(session, "wamid.EARLY", utcnow()) == 2
    async with db.read() as session:
        reloaded = await session.get(OutboundMessage, row_id)
        left = await session.scalar(select(func.count()).select_from(IgnoredUpdate))
    assert reloaded is not None and reloaded.status is OutboundStatus.DELIVERED  # never backwards
    assert left == 0
