"""Group commit: concurrent webhook deliveries share one transaction, each stored once."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest
from sqlalchemy import func, select, text

from bot.metrics import Metrics
from bot.whatsapp.inbox import GroupCommit, Stored, store_batches
from bot.whatsapp.payloads import Sender, WebhookBatch, parse_webhook
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
    # One transaction for the group; on PostgreSQL its message went first, in a statement
    # that commits by itself (bot.whatsapp.inbox._pg_store_messages).
    assert group.commits == (2 if db.is_postgresql else 1)
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


async def test_each_commit_is_counted_in_the_metrics(db: Database) -> None:
    metrics = Metrics()
    group = GroupCommit(db, mark_read=False, metrics=metrics)
    first = [_delivery("263770000077", f"wamid.M{i}") for i in range(6)]
    await asyncio.gather(*(group.store(batch) for batch in first))
    await group.store(_delivery("263770000078", "wamid.M6"))
    counted = metrics.registry.get_sample_value("nyala_inbound_commits_total")
    assert (group.commits, counted) == (2, 2.0)


def _as(batch: WebhookBatch, sender: Sender) -> WebhookBatch:
    return WebhookBatch(messages=(dataclasses.replace(batch.messages[0], sender=sender),))


async def _rows(db: Database) -> list[tuple[str, int]]:
    """(wamid, contact id) of every stored message, in id order."""
    async with db.read() as session:
        rows = await session.execute(
            select(InboundMessage.wa_message_id, InboundMessage.contact_id).order_by(
                InboundMessage.id
            )
        )
        return [(wamid, contact_id) for wamid, contact_id in rows]


async def test_one_group_of_known_changed_new_and_redelivered_senders(db: Database) -> None:
    await store_batches(
        db,
        [_delivery("263770000501", "wamid.K0", name="Ada"),
         _delivery("263770000502", "wamid.C0", name="Bo")],
        mark_read=False,
    )  # fmt: skip
    group = [
        _delivery("263770000501", "wamid.K1", name="Ada"),  # known, unchanged
        _delivery("263770000502", "wamid.C1", name="Bo Bell"),  # known, new name
        _delivery("263770000503", "wamid.N1", name="Cy"),  # new
        _delivery("263770000501", "wamid.K0", name="Ada"),  # stored before
        _delivery("263770000501", "wamid.K2", name="Ada"),
    ]
    results = await store_batches(db, group, mark_read=True)
    assert [(r.new_messages, r.duplicates) for r in results] == [
        (1, 0), (1, 0), (1, 0), (0, 1), (1, 0)
    ]  # fmt: skip
    async with db.read() as session:
        contacts = dict((await session.execute(select(Contact.wa_id, Contact.id))).all())
        names = dict((await session.execute(select(Contact.wa_id, Contact.profile_name))).all())
    assert names == {"263770000501": "Ada", "263770000502": "Bo Bell", "263770000503": "Cy"}
    rows = dict(await _rows(db))
    assert rows == {
        "wamid.K0": contacts["263770000501"], "wamid.C0": contacts["263770000502"],
        "wamid.K1": contacts["263770000501"], "wamid.C1": contacts["263770000502"],
        "wamid.N1": contacts["263770000503"], "wamid.K2": contacts["263770000501"],
    }  # fmt: skip
    assert [r.contacts for r in results] == [
        {contacts["263770000501"]}, {contacts["263770000502"]}, {contacts["263770000503"]},
        set(), {contacts["263770000501"]},
    ]  # fmt: skip


async def test_each_contacts_messages_keep_their_order_in_a_group(db: Database) -> None:
    await store_batches(db, [_delivery("263770000601", "wamid.O0", name="Ada")], mark_read=False)
    group = [
        _delivery("263770000601", "wamid.O1", name="Ada Lovelace"),  # renames the contact
        _delivery("263770000602", "wamid.P1"),
        _delivery("263770000601", "wamid.O2", name="Ada"),  # the old name again
        _delivery("263770000601", "wamid.O3", name="Ada"),
    ]
    await store_batches(db, group, mark_read=False)
    order = [wamid for wamid, _ in await _rows(db) if wamid.startswith("wamid.O")]
    assert order == ["wamid.O0", "wamid.O1", "wamid.O2", "wamid.O3"]


async def test_a_sender_known_by_user_id_alone_keeps_the_order_of_its_contact(
    db: Database,
) -> None:
    both = Sender(wa_id="263770000701", user_id="US.7001", profile_name="Ada")
    await store_batches(db, [_as(_delivery("263770000701", "wamid.U0"), both)], mark_read=False)
    alone = Sender(wa_id=None, user_id="US.7001", profile_name="Ada")
    group = [
        _as(_delivery("263770000701", "wamid.U1"), alone),
        _as(_delivery("263770000701", "wamid.U2"), both),
    ]
    results = await store_batches(db, group, mark_read=False)
    assert [r.new_messages for r in results] == [1, 1]
    rows = await _rows(db)
    assert [wamid for wamid, _ in rows] == ["wamid.U0", "wamid.U1", "wamid.U2"]
    assert len({contact_id for _, contact_id in rows}) == 1


async def test_a_held_connection_that_died_costs_a_retry_not_a_delivery(db: Database) -> None:
    if not db.is_postgresql:
        pytest.skip("the writer holds a connection on PostgreSQL only")
    group = GroupCommit(db, mark_read=False)
    held = await db.engine.connect()
    pid = await held.scalar(text("SELECT pg_backend_pid()"))
    await held.commit()
    async with db.engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await other.commit()
    results, kept = await group._store_group([_delivery("263770000801", "wamid.D1")], held)
    assert kept is None  # given back; the next group takes a fresh, checked one
    assert [r.new_messages for r in results] == [1]
    assert dict(await _rows(db)).keys() == {"wamid.D1"}
    results, kept = await group._store_group([_delivery("263770000801", "wamid.D2")], None)
    assert kept is not None and [r.new_messages for r in results] == [1]
    await kept.close()


async def test_with_a_connection_of_its_own_the_shared_pool_is_not_used(db: Database) -> None:
    group = GroupCommit(db, mark_read=False, own_connection=True)
    try:
        await asyncio.gather(
            *(group.store(_delivery("263770000901", f"wamid.W{i}")) for i in range(3))
        )
        await group.store(_delivery("263770000902", "wamid.W3"))
        assert group.commits == 2
        if db.is_postgresql:  # kept between groups, outside the shared pool
            assert group._kept is not None
            assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await group.close()
    assert group._kept is None
    assert len(await _rows(db)) == 4
    await group.store(_delivery("263770000902", "wamid.W4"))  # after close: the shared pool
    assert group._kept is None and len(await _rows(db)) == 5


async def test_a_connection_of_its_own_that_died_is_replaced(db: Database) -> None:
    if not db.is_postgresql:
        pytest.skip("the connection of its own is PostgreSQL's")
    group = GroupCommit(db, mark_read=False, own_connection=True)
    try:
        await group.store(_delivery("263770000951", "wamid.X1"))
        assert group._kept is not None
        pid = await group._kept.scalar(text("SELECT pg_backend_pid()"))
        await group._kept.commit()
        async with db.engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await other.commit()
        result = await group.store(_delivery("263770000951", "wamid.X2"))
        assert result.new_messages == 1
        await group.store(_delivery("263770000951", "wamid.X3"))
        assert group._kept is not None
    finally:
        await group.close()
    assert [wamid for wamid, _ in await _rows(db)] == ["wamid.X1", "wamid.X2", "wamid.X3"]


async def test_the_contacts_stored_are_announced_with_them(db: Database) -> None:
    """With processing in other processes, a group's contacts are announced (NOTIFY) in
    the transaction that stores their messages: heard once it commits, once a group, and
    not at all for a group that failed (its deliveries, stored one by one, announce
    themselves). Redeliveries announce nobody."""
    if not db.is_postgresql:
        pytest.skip("announcements are PostgreSQL's NOTIFY")

    heard: list[set[int]] = []
    url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    listener = await asyncpg.connect(url)
    try:
        await listener.add_listener(
            "test_inbound",
            lambda _c, _p, _ch, payload: heard.append({int(x) for x in payload.split(",")}),
        )
        group = GroupCommit(db, mark_read=False, announce="test_inbound", own_connection=True)
        batches = [_delivery(f"26377300{i % 3:04d}", f"wamid.AN{i}") for i in range(9)]
        results = await asyncio.gather(*(group.store(b) for b in batches))
        contacts = {c for r in results for c in r.contacts}
        assert len(contacts) == 3
        for _ in range(50):
            if heard:
                break
            await asyncio.sleep(0.02)
        assert heard == [contacts]  # one announcement for the group's one commit
        # A group with a bad delivery fails whole; each is then stored (and announced)
        # on its own, the bad one not at all.
        heard.clear()
        good = _delivery("263773000100", "wamid.AN.OK")
        template = _delivery("263773000199", "wamid.AN.BAD")
        nobody = dataclasses.replace(template.messages[0].sender, wa_id=None, user_id=None)
        bad = WebhookBatch(messages=(dataclasses.replace(template.messages[0], sender=nobody),))
        stores = (group.store(good), group.store(bad))
        outcomes = await asyncio.gather(*stores, return_exceptions=True)
        assert isinstance(outcomes[1], ValueError)
        stored = outcomes[0]
        assert isinstance(stored, Stored)
        await group.store(good)  # a redelivery: nothing new to announce
        await asyncio.sleep(0.3)
        assert heard == [stored.contacts]
        await group.close()
    finally:
        await listener.close()
