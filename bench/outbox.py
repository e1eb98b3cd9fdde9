"""Outbox send rate: Nyala's sender against the fake Graph API, limited and unlimited.

The fake Graph API (``python -m bot fake-graph``) runs in its own process and validates
every request against Meta's spec. Each repetition queues ``messages`` text replies, one
per contact (so per-contact ordering never holds the sender back), then runs an
:class:`bot.whatsapp.outbox.Outbox` in this process until every row is sent. The rate is taken
from the rows' ``sent_at`` (when Meta accepted each one): ``(n - 1) / (last - first)``;
the busiest second is the most rows accepted within any one-second window.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import time
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import asyncpg
from sqlalchemy import Table, insert

from bot.metrics import Metrics
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox
from flows.messages import Text, reply_to_payload
from storage import Contact, Database, OutboundMessage, OutboundStatus, utcnow

TOKEN = "bench-graph-token"
PHONE_NUMBER_ID = "106540352242922"
_runs = itertools.count(1)


@dataclass(frozen=True, slots=True)
class SendResult:
    """One repetition of the sender."""

    messages: int
    sent: int
    failed: int
    rate: float  # messages accepted per second
    busiest_second: int  # most messages accepted within any one second
    seconds: float


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


async def _queue(db: Database, messages: int, tag: str) -> int:
    """Queue one text reply for each of ``messages`` new contacts; the first row's id."""
    now = utcnow()
    contacts, outbound = _table(Contact), _table(OutboundMessage)
    async with db.transaction() as session:
        ids = (
            await session.execute(
                insert(contacts).returning(contacts.c.id, sort_by_parameter_order=True),
                [
                    {"wa_id": f"2639{tag}{i:06d}", "profile_name": f"Out {i}", "attributes": {},
                     "last_inbound_at": now}
                    for i in range(messages)
                ],
            )
        ).scalars().all()  # fmt: skip
        first = (
            await session.execute(
                insert(outbound).returning(outbound.c.id, sort_by_parameter_order=True),
                [
                    {"contact_id": c, "kind": "text",
                     "payload": reply_to_payload(Text(f"Hello {i}")),
                     "status": OutboundStatus.QUEUED, "created_at": now, "next_attempt_at": now}
                    for i, c in enumerate(ids)
                ],
            )
        ).scalars().first()  # fmt: skip
    assert first is not None
    return int(first)


def busiest_second(stamps: list[float]) -> int:
    """The most of ``stamps`` (seconds, sorted) within any one second."""
    best, low = 0, 0
    for high, stamp in enumerate(stamps):
        while stamp - stamps[low] >= 1.0:
            low += 1
        best = max(best, high - low + 1)
    return best


async def send_run(
    db: Database,
    conn: asyncpg.Connection,
    base_url: str,
    *,
    messages: int,
    rate: float | None,
    within: float,
) -> SendResult:
    """Queue ``messages`` replies and send them all; ``rate`` is the configured limit."""
    tag = f"{next(_runs):03d}"
    first = await _queue(db, messages, tag)
    async with aiohttp.ClientSession() as http:
        client = GraphClient(
            http, base_url=base_url, access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID
        )
        outbox = Outbox(db, client, Metrics(), rate=rate, batch=200, poll_interval=0.05)
        started = time.perf_counter()
        task = asyncio.create_task(outbox.run())
        try:
            deadline = started + within
            while time.perf_counter() < deadline:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM outbound_messages WHERE id >= $1 AND status = 'queued'",
                    first,
                )
                if not waiting:
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        seconds = time.perf_counter() - started
    rows = await conn.fetch(
        "SELECT status, sent_at FROM outbound_messages WHERE id >= $1 ORDER BY sent_at", first
    )
    stamps = [
        cast(dt.datetime, r["sent_at"]).timestamp()
        for r in rows
        if r["status"] == "sent" and r["sent_at"] is not None
    ]
    failed = sum(1 for r in rows if r["status"] == "failed")
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    return SendResult(
        messages=messages,
        sent=len(stamps),
        failed=failed,
        rate=(len(stamps) - 1) / span if span else 0.0,
        busiest_second=busiest_second(stamps),
        seconds=seconds,
    )
