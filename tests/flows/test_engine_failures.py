"""How the engine treats a message whose work fails (beyond a raising action)."""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from flows import App, FlowContext
from flows.testing import ChatFactory
from storage import Database, InboundMessage, InboundStatus, OutboundMessage
from tests.flows.test_engine import order_until_confirm


async def test_a_lost_database_connection_leaves_the_message_for_a_retry(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    if not nyala_db.is_postgresql:
        pytest.skip("ending the session's own backend needs PostgreSQL")
    place_order = cafe.registry.actions["place_order"]
    outage = {"on": False}

    async def place_order_or_lose_the_connection(ctx: FlowContext) -> None:
        if outage["on"]:
            await ctx.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        done = place_order(ctx)
        if inspect.isawaitable(done):
            await done

    # Before the flow file is loaded: the loader binds the action it finds.
    cafe.registry.actions["place_order"] = place_order_or_lose_the_connection
    chat = await nyala_chat(cafe)
    await order_until_confirm(chat)
    async with nyala_db.read() as s:
        replies_before = len((await s.scalars(select(OutboundMessage.id))).all())
    outage["on"] = True
    with pytest.raises(DBAPIError):
        await chat.send(tap="Confirm")
    async with nyala_db.read() as s:
        last = await s.scalar(select(InboundMessage).order_by(InboundMessage.id.desc()))
        replies = len((await s.scalars(select(OutboundMessage.id))).all())
    assert last is not None and last.status is InboundStatus.PENDING  # not "failed"
    assert replies == replies_before  # no apology for an outage
    outage["on"] = False
    await chat.engine.process_pending(last.contact_id)  # the retry goes through
    async with nyala_db.read() as s:
        again = await s.get(InboundMessage, last.id)
    assert again is not None and again.status is InboundStatus.DONE
