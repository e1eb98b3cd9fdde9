"""What the chaos run found in the outbox, pinned down one fault at a time (both backends).

The outbox's own file belongs to another engineer; a finding that is still open is an
``xfail(strict=True)`` here, so CI stays green and turns red the day it is fixed (then the
marker goes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from sqlalchemy import select

from bot.metrics import Metrics
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox
from flows.messages import Text, reply_to_payload
from storage import Database, OutboundMessage, OutboundStatus, get_or_create_contact
from testing.fake_graph import FakeGraph, FaultKind
from tests.bot.webhooks import ACCESS_TOKEN, PHONE_NUMBER_ID


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(token=ACCESS_TOKEN, phone_number_id=PHONE_NUMBER_ID, hang=2.0) as graph:
        yield graph


async def _queue(db: Database, clock: Clock) -> int:
    async with db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id="263770009911")
        contact.last_inbound_at = clock()
        row = OutboundMessage(
            contact_id=contact.id, kind="text", payload=reply_to_payload(Text("Hello")),
            status=OutboundStatus.QUEUED, created_at=clock(), next_attempt_at=clock(),
        )  # fmt: skip
        session.add(row)
        await session.flush()
        return row.id


async def _attempt(outbox: Outbox, db: Database, clock: Clock, row_id: int) -> OutboundMessage:
    """Move the clock to the row's next attempt and let the sender try once."""
    async with db.read() as session:
        row = await session.get(OutboundMessage, row_id)
        assert row is not None and row.next_attempt_at is not None
        clock.now = max(clock.now, row.next_attempt_at)
    assert await outbox.send_due() == 1
    async with db.read() as session:
        done = await session.scalar(select(OutboundMessage).where(OutboundMessage.id == row_id))
        assert done is not None
        return done


async def test_a_first_pair_rate_limit_backs_off_seconds_not_minutes(
    db: Database, fake: FakeGraph
) -> None:
    clock = Clock()
    async with aiohttp.ClientSession() as http:
        client = GraphClient(http, base_url=str(fake.base_url), access_token=ACCESS_TOKEN,
                             phone_number_id=PHONE_NUMBER_ID, timeout=1.0)  # fmt: skip
        outbox = Outbox(db, client, Metrics(), rate=None, clock=clock)
        row_id = await _queue(db, clock)
        fake.fail_next(4, FaultKind.SERVER_ERROR)
        fake.fail_next(1, FaultKind.PAIR_RATE_LIMIT)
        for _ in range(5):
            row = await _attempt(outbox, db, clock, row_id)
    assert row.error_code == 131056 and row.attempts == 5
    assert row.next_attempt_at is not None
    waits = (row.next_attempt_at - clock.now).total_seconds()
    assert waits <= 16, f"a first 131056 waits {waits:.0f} s"


async def test_transient_errors_give_up_after_eight_attempts(
    db: Database, fake: FakeGraph
) -> None:
    """Documents the limit the chaos run can hit: after 8 retryable failures in a row
    (about four minutes of backoff) a reply is marked failed, visible for a retry in the
    console's outbox, not sent."""
    clock = Clock()
    async with aiohttp.ClientSession() as http:
        client = GraphClient(http, base_url=str(fake.base_url), access_token=ACCESS_TOKEN,
                             phone_number_id=PHONE_NUMBER_ID, timeout=1.0)  # fmt: skip
        outbox = Outbox(db, client, Metrics(), rate=None, clock=clock)
        row_id = await _queue(db, clock)
        fake.fail_next(8, FaultKind.UNAVAILABLE)
        for _ in range(8):
            row = await _attempt(outbox, db, clock, row_id)
    assert row.status is OutboundStatus.FAILED
    assert row.error_code == 2
    assert fake.sent == []
