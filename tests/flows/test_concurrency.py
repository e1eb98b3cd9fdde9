"""Two workers on one contact's messages: each processed once, strictly in order."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from flows import App, ContactRef, Engine, UserMessage
from storage import (
    Database,
    FlowStepEvent,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
)


async def test_concurrent_workers_keep_one_contacts_messages_in_order(
    cafe: App, db: Database
) -> None:
    # A second engine with its own connection pool, like a second server process.
    second_db = Database(db.url.render_as_string(hide_password=False))
    workers = [Engine(db, cafe), Engine(second_db, cafe)]
    script = [
        UserMessage(id="c1", kind="text", text="order"),
        UserMessage(id="c2", kind="text", text="Ada Lovelace"),
        UserMessage(id="c3", kind="reply", reply_id="large", text="Large"),
        UserMessage(id="c4", kind="text", text="2"),
        UserMessage(id="c5", kind="reply", reply_id="yes", text="Confirm"),
    ]
    for rounds in range(3):
        contact = ContactRef(wa_id=f"26377999999{rounds}")
        messages = [
            UserMessage(id=f"{m.id}.{rounds}", kind=m.kind, text=m.text, reply_id=m.reply_id)
            for m in script
        ]
        received = [await workers[0].receive(contact, m) for m in messages]
        contact_id = received[0].contact_id
        # Both workers race for the same contact, several times each.
        await asyncio.gather(*(workers[i % 2].process_pending(contact_id) for i in range(6)))
        async with db.read() as session:
            inbound = (
                await session.scalars(
                    select(InboundMessage)
                    .where(InboundMessage.contact_id == contact_id)
                    .order_by(InboundMessage.id)
                )
            ).all()
            outbound = (
                await session.scalars(
                    select(OutboundMessage)
                    .where(OutboundMessage.contact_id == contact_id)
                    .order_by(OutboundMessage.id)
                )
            ).all()
            events = (
                await session.scalars(select(FlowStepEvent).order_by(FlowStepEvent.id))
            ).all()
        assert [m.status for m in inbound] == [InboundStatus.DONE] * 5
        processed = [m.processed_at for m in inbound if m.processed_at is not None]
        assert len(processed) == len(inbound)
        assert processed == sorted(processed)  # strictly in arrival order
        # Each message answered exactly once, and replies follow message order.
        answered = [o.inbound_id for o in outbound if o.inbound_id is not None]
        assert len(answered) == len(outbound)
        assert answered == sorted(answered)
        assert sorted(set(answered)) == [m.id for m in inbound]
        assert outbound[-1].payload["body"] == "Order placed, Ada Lovelace!"
        recent = [(e.step_name, e.action) for e in events][-9:]
        assert recent == [
            ("ask_name", "entered"), ("ask_name", "completed"),
            ("ask_size", "entered"), ("ask_size", "completed"),
            ("ask_count", "entered"), ("ask_count", "completed"),
            ("confirm", "entered"), ("confirm", "completed"), ("done", "entered"),
        ]  # fmt: skip
    await second_db.dispose()
