"""The durable inbox: store a webhook's messages and statuses, then process them.

Storing happens in one transaction before the webhook answers 200: each message once
(unique on its WhatsApp id; a redelivery is a no-op), statuses applied to outbound rows
(never backwards), anything else recorded as ignored. Processing runs right after, in
this process, per contact (the engine takes the contact's lock, then that contact's
oldest pending message); a recovery loop picks up rows a crash left pending, so any number
of processes can share one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.metrics import Metrics
from bot.outbox import mark_read_row
from bot.payloads import IncomingMessage, WebhookBatch
from bot.statuses import apply_status
from flows import Engine
from storage import (
    Database,
    IgnoredUpdate,
    InboundMessage,
    InboundStatus,
    get_or_create_contact,
    utcnow,
)

log = logging.getLogger("nyala.inbox")

Clock = Callable[[], dt.datetime]


@dataclass
class Stored:
    """What storing one webhook delivery did."""

    contacts: set[int] = field(default_factory=set)
    new_messages: int = 0
    duplicates: int = 0
    statuses: int = 0
    ignored: int = 0


async def store_batch(
    db: Database,
    batch: WebhookBatch,
    *,
    mark_read: bool,
    clock: Clock = utcnow,
) -> Stored:
    """Store a parsed webhook delivery in one transaction (retried on a unique clash)."""
    for attempt in range(3):
        try:
            async with db.transaction() as session:
                return await _store(session, batch, mark_read=mark_read, now=clock())
        except IntegrityError:
            # Another process stored the same message or contact at this moment.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _store(
    session: AsyncSession, batch: WebhookBatch, *, mark_read: bool, now: dt.datetime
) -> Stored:
    result = Stored()
    ids = [m.message.id for m in batch.messages]
    existing = set(
        (
            await session.scalars(
                select(InboundMessage.wa_message_id).where(InboundMessage.wa_message_id.in_(ids))
            )
        ).all()
    ) if ids else set()  # fmt: skip
    for incoming in batch.messages:
        if incoming.message.id in existing:
            result.duplicates += 1
            continue
        existing.add(incoming.message.id)
        await _store_message(session, incoming, mark_read=mark_read, now=now, result=result)
    for status in batch.statuses:
        if await apply_status(session, status, now):
            result.statuses += 1
        else:
            result.ignored += 1
    for ignored in batch.ignored:
        session.add(IgnoredUpdate(received_at=now, what=ignored.what[:200], reason=ignored.reason))
        result.ignored += 1
    return result


async def _store_message(
    session: AsyncSession,
    incoming: IncomingMessage,
    *,
    mark_read: bool,
    now: dt.datetime,
    result: Stored,
) -> None:
    sender = incoming.sender
    contact = await get_or_create_contact(
        session,
        wa_id=sender.wa_id,
        user_id=sender.user_id,
        profile_name=sender.profile_name or sender.username,
    )
    row = InboundMessage(
        wa_message_id=incoming.message.id,
        contact_id=contact.id,
        kind=incoming.message.kind,
        payload=incoming.message.to_payload(),
        received_at=now,
        sent_at=incoming.message.timestamp,
    )
    session.add(row)
    await session.flush()
    if mark_read and incoming.message.kind != "reaction":
        session.add(mark_read_row(contact.id, row.id, incoming.message.id, now))
    result.contacts.add(contact.id)
    result.new_messages += 1


class Inbox:
    """Processes stored messages: right after storing, and by recovery for leftovers.

    Args:
        engine: the flow engine.
        metrics: where to count.
        concurrency: contacts processed at once by this process.
        on_replies: called after a contact's messages were processed (wakes the sender).
    """

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        *,
        concurrency: int = 8,
        on_replies: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.semaphore = asyncio.Semaphore(concurrency)
        self.on_replies = on_replies
        self._running: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()

    def kick(self, contact_ids: Iterable[int]) -> None:
        """Process these contacts' pending messages soon (one task per contact)."""
        for contact_id in contact_ids:
            if contact_id in self._running:
                self._again.add(contact_id)  # finish, then look again
                continue
            task = asyncio.create_task(self._drain(contact_id))
            self._running[contact_id] = task

    async def _drain(self, contact_id: int) -> None:
        try:
            while True:
                self._again.discard(contact_id)
                async with self.semaphore:
                    try:
                        count = await self.engine.process_pending(contact_id)
                    except Exception:
                        log.exception(
                            "processing contact %s failed; recovery will retry", contact_id
                        )
                        return
                if count and self.on_replies is not None:
                    self.on_replies()
                if contact_id not in self._again:
                    return
        finally:
            self._running.pop(contact_id, None)

    async def recover_once(self, older_than: dt.timedelta = dt.timedelta(seconds=2)) -> int:
        """Kick every contact with messages pending longer than ``older_than``."""
        cutoff = self.engine.clock() - older_than
        async with self.engine.db.read() as session:
            contact_ids = (
                await session.scalars(
                    select(InboundMessage.contact_id)
                    .where(
                        InboundMessage.status == InboundStatus.PENDING,
                        InboundMessage.received_at < cutoff,
                    )
                    .group_by(InboundMessage.contact_id)
                    .order_by(func.min(InboundMessage.id))
                    .limit(500)
                )
            ).all()
        self.kick(contact_ids)
        return len(contact_ids)

    async def run_recovery(self, interval: float = 5.0) -> None:
        """Recover leftovers until cancelled (survives database restarts)."""
        while True:
            try:
                await self.recover_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("inbox recovery round failed")
            await asyncio.sleep(interval)

    async def drain(self) -> None:
        """Wait until every running contact task finished (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)
