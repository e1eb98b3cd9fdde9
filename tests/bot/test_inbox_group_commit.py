"""Group commit: concurrent webhook deliveries share one transaction, each stored once."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import func, select

from bot.whatsapp.inbox import GroupCommit, Stored
from bot.whatsapp.payloads import WebhookBatch, parse_webhook
from storage import Contact, Database, IgnoredUpdate, InboundMessage, InboundStatus
from tests.bot.webhooks import message, messages_payload, status_payload


def _delivery(wa_id: str, wamid: str, text: str = "hi", name: str = "Test User") -> WebhookBatch:
    return parse_webhook(messages_payload(message(wa_id, text=text, wamid=wamid), name=name))


async def _count(db: Database, model: type[InboundMessage] | type[Contact]) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_concurrent_deliveries_share_one_commit(db: Database) -> None:
    group = GroupCommit(db, mark_read=False)
    batches = [_delivery(f"26377000{i % 5:04d}", f"wamid.GC{i}") for i in range(20)]
    results = await asyncio.gather(*(group.store(b) for b in batches))
    assert group.commits == 1
    assert all(r.new_messages == 1 and r.duplicates == 0 for r in results)
    assert len({next(iter(r.contacts)) for r in results}) == 5
    assert await _count(db, InboundMessage) == 20
    assert await _count(db, Contact) == 5
    async with db.read() as session:
        statuses = set((await session.scalars(select(InboundMessage.status))).all())
    assert statuses == {InboundStatus.PENDING}


async def test_a_redelivery_in_the_same_group_is_stored_once(db: Database) -> None:
    group = GroupCommit(db, mark_read=False)
    first = _delivery("263770000001", "wamid.SAME")
    results = await asyncio.gather(group.store(first), group.store(first))
    assert sorted((r.new_messages, r.duplicates) for r in results) == [(0, 1), (1, 0)]
    again = await group.store(first)  # and in a later transaction
    assert (again.new_messages, again.duplicates) == (0, 1)
    assert await _count(db, InboundMessage) == 1


async def test_a_new_profile_name_updates_the_known_contact(db: Database) -> None:
    group = GroupCommit(db, mark_read=False)
    await group.store(_delivery("263770000002", "wamid.N1", name="Ada"))
    await group.store(_delivery("263770000002", "wamid.N2", name="Ada Lovelace"))
    async with db.read() as session:
        names = (await session.scalars(select(Contact.profile_name))).all()
    assert names == ["Ada Lovelace"]


async def test_one_bad_delivery_does_not_fail_the_others(db: Database) -> None:
    group = GroupCommit(db, mark_read=False)
    good = [_delivery(f"2637700001{i:02d}", f"wamid.OK{i}") for i in range(3)]
    template = _delivery("263770000199", "wamid.BAD")
    nobody = dataclasses.replace(template.messages[0].sender, wa_id=None, user_id=None)
    bad = WebhookBatch(messages=(dataclasses.replace(template.messages[0], sender=nobody),))
    outcomes = await asyncio.gather(
        *(group.store(b) for b in (good[0], bad, good[1], good[2])), return_exceptions=True
    )
    assert isinstance(outcomes[1], ValueError)
    stored = [o for o in outcomes if isinstance(o, Stored)]
    assert len(stored) == 3 and all(s.new_messages == 1 for s in stored)
    assert await _count(db, InboundMessage) == 3


async def test_statuses_and_messages_in_one_group(db: Database) -> None:
    group = GroupCommit(db, mark_read=False)
    results = await asyncio.gather(
        group.store(parse_webhook(status_payload("wamid.OUT2", "delivered", "263770000300"))),
        group.store(_delivery("263770000300", "wamid.IN1")),
        group.store(parse_webhook(status_payload("wamid.OUT1", "read", "263770000300"))),
    )
    assert group.commits == 1
    assert [(r.new_messages, r.ignored) for r in results] == [(0, 1), (1, 0), (0, 1)]
    async with db.read() as session:
        early = await session.scalar(select(func.count()).select_from(IgnoredUpdate))
    assert early == 2  # statuses that overtook their message wait for it


@pytest.mark.parametrize("size", [1, 600])
async def test_large_groups_are_stored_whole(db: Database, size: int) -> None:
    group = GroupCommit(db, mark_read=True, max_group=1000)
    payload = messages_payload(
        *(message("263770000400", text="x", wamid=f"wamid.L{size}.{i}") for i in range(size))
    )
    result = await group.store(parse_webhook(payload))
    assert result.new_messages == size
    assert await _count(db, InboundMessage) == size
