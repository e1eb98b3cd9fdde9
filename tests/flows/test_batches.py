"""Turns of many contacts in one transaction (Engine.process_batch): the same replies,
events and states as one at a time, in a few statements for the whole batch, and a
failing or refused turn never loses or repeats the others'."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select

from flows import App, ContactRef, Engine, FlowContext, UserMessage
from flows.messages import Reply, Text
from storage import (
    Conversation,
    Database,
    FlowStepEvent,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    try_lock_contacts,
)

CONTACTS = 12


def _body(replies: list[Reply]) -> list[str]:
    return [str(getattr(reply, "body", reply)) for reply in replies]


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every statement the database's engine sends while the block runs."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def _send_all(engine: Engine, ids: dict[int, str], text: str, n: int) -> None:
    for contact_id, wa_id in ids.items():
        await engine.receive(
            ContactRef(wa_id=wa_id), UserMessage(id=f"b.{contact_id}.{n}", kind="text", text=text)
        )


async def _contacts(engine: Engine) -> dict[int, str]:
    ids = {}
    for n in range(CONTACTS):
        wa_id = f"2637700{n:05d}"
        received = await engine.receive(
            ContactRef(wa_id=wa_id), UserMessage(id=f"b.start.{n}", kind="text", text="order")
        )
        ids[received.contact_id] = wa_id
    return ids


async def test_a_batch_answers_every_contact_as_one_at_a_time_would(
    cafe: App, db: Database
) -> None:
    engine = Engine(db, cafe)
    ids = await _contacts(engine)
    first = await engine.process_batch(ids)
    assert set(first.replies) == set(ids) and not first.more and not first.busy
    assert all(r == [Text("Your name?")] for r in first.replies.values())
    await _send_all(engine, ids, "Ada Lovelace", 1)
    with statements(db) as seen:
        second = await engine.process_batch(ids)
    assert all(_body(r) == ["Which size, Ada Lovelace?"] for r in second.replies.values())
    # The whole batch: the locks, the messages, the rows, the writes and the commit; not
    # a statement per contact (a savepoint alone would be three).
    assert len(seen) <= 10, seen
    async with db.read() as session:
        states = (await session.scalars(select(Conversation.state))).all()
        done = await session.scalar(
            select(func.count()).where(InboundMessage.status == InboundStatus.DONE)
        )
        events = await session.scalar(select(func.count()).select_from(FlowStepEvent))
    assert states == ["ask_size"] * CONTACTS
    assert done == 2 * CONTACTS
    # Per contact: entered ask_name; completed ask_name and entered ask_size.
    assert events == 3 * CONTACTS


async def test_a_crashing_turn_fails_alone_and_the_others_go_through_once(
    cafe: App, db: Database
) -> None:
    crash: dict[str, int | None] = {"contact": None}
    remember = cafe.registry.actions["remember_name"]

    async def remember_or_crash(ctx: FlowContext) -> None:
        if ctx.contact.id == crash["contact"]:
            raise RuntimeError("boom for one contact")
        done = remember(ctx)
        if done is not None:
            await done

    # Before the flow file is loaded: the loader binds the action it finds.
    cafe.registry.actions["remember_name"] = remember_or_crash
    engine = Engine(db, cafe)
    ids = await _contacts(engine)
    await engine.process_batch(ids)
    crashing = sorted(ids)[5]
    crash["contact"] = crashing
    others = [cid for cid in ids if cid != crashing]
    await _send_all(engine, ids, "Grace Hopper", 1)
    batch = await engine.process_batch(ids)
    assert batch.replies[crashing] == [Text(cafe.copy.text("apology"))]
    for contact_id in others:
        assert _body(batch.replies[contact_id]) == ["Which size, Grace Hopper?"]
    async with db.read() as session:
        failed = (
            await session.scalars(
                select(InboundMessage.contact_id).where(
                    InboundMessage.status == InboundStatus.FAILED
                )
            )
        ).all()
        sizes = await session.scalar(
            select(func.count()).where(
                OutboundMessage.payload["body"].as_string() == "Which size, Grace Hopper?"
            )
        )
    assert failed == [crashing]
    assert sizes == len(others)  # exactly once each


async def test_a_refused_action_reruns_its_turn_alone(cafe: App, db: Database) -> None:
    engine = Engine(db, cafe)
    ids = await _contacts(engine)
    for n, text in enumerate(["Ada Lovelace", "Large", "1"], 1):
        await engine.process_batch(ids)
        await _send_all(engine, ids, text, n)
    await engine.process_batch(ids)
    cafe.state["fail"] = "sold_out"  # type: ignore[attr-defined]
    async with db.read() as session:
        before = await session.scalar(select(func.count()).select_from(OutboundMessage))
    await _send_all(engine, ids, "Confirm", 9)
    batch = await engine.process_batch(ids)
    refusal = "Sorry, we just sold out of that. Please choose again."
    assert all(_body(replies)[0] == refusal for replies in batch.replies.values())
    async with db.read() as session:
        after = await session.scalar(select(func.count()).select_from(OutboundMessage))
        states = (await session.scalars(select(Conversation.state))).all()
    assert states == ["confirm"] * CONTACTS  # nothing of the refused attempts stayed
    assert after is not None and before is not None
    assert after - before == sum(len(r) for r in batch.replies.values())


async def test_contacts_held_elsewhere_are_left_for_later(cafe: App, db: Database) -> None:
    if not db.is_postgresql:
        pytest.skip("SQLite has one writer: a batch holds every contact")
    engine = Engine(db, cafe)
    ids = await _contacts(engine)
    held = sorted(ids)[:3]
    async with db.transaction() as other:
        assert await try_lock_contacts(other, held) == held
        batch = await engine.process_batch(ids)
    assert batch.busy == set(held)
    assert set(batch.replies) == set(ids) - set(held)
    again = await engine.process_batch(held)
    assert set(again.replies) == set(held) and not again.busy
