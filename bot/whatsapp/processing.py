"""Processing stored messages in batches: right after storing, and by recovery for leftovers.

The webhook stores messages and *kicks* their contacts; a few worker tasks take up to
``batch_size`` waiting contacts at a time and run one turn for each in one transaction
(:meth:`flows.Engine.process_batch`), so a flood of messages costs a few commits, not one
(or two) per message. A contact is in at most one batch at a time in this process, and
its messages go one per batch, oldest first: per-contact order holds; a contact another
process holds is tried again shortly.

Acknowledging webhooks comes first: while webhook requests are in flight in this process,
or were in the last ``busy_window`` seconds (:meth:`Processor.acknowledging`), at most
``busy_workers`` batches run at once instead of ``workers``. Under a flood the 200s keep
coming fast (Meta retries slow answers, which only adds load) while processing goes on and
catches up once the flood passes; nothing waits for a pause that might never come.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Protocol

from sqlalchemy import func, select

from bot.metrics import Metrics
from bot.whatsapp.inbox import announce_contacts
from bot.whatsapp.notify import listen
from bot.whatsapp.pressure import AckPressure
from flows import Engine
from storage import Database, InboundMessage, InboundStatus

log = logging.getLogger("nyala.processing")


class Kicker(Protocol):
    """What the webhook hands stored contacts to: a :class:`Processor` here, or an
    :class:`Announcer` when other processes process."""

    announce_on: str | None
    """A ``NOTIFY`` channel the webhook announces stored contacts on in its storing
    transaction, instead of kicking (``None``: kick)."""

    def acknowledging(self) -> contextlib.AbstractContextManager[None]:
        """Mark a webhook request in flight."""
        ...

    def kick(self, contact_ids: Iterable[int]) -> None:
        """Have these contacts' pending messages processed soon."""
        ...

    async def drain(self, grace: float | None = None) -> None:
        """Wait until what was kicked is taken care of (shutdown)."""
        ...


# How long a contact another process holds waits before it is tried again (seconds).
BUSY_RETRY = 0.05


class Processor:
    """Runs the engine over kicked contacts, in batches.

    Args:
        engine: the flow engine.
        metrics: where to count.
        batch_size: contacts at most in one batch (one transaction).
        workers: batches running at once in this process.
        busy_workers: batches running at once while webhooks are arriving.
        busy_window: how long after the last webhook request the process counts as busy.
        on_replies: called after a batch produced replies (wakes the sender).
        pressure: the webhook's pressure, when it runs in another process of the same
            ``nyala serve``: each batch first makes way for a flood of acknowledgements
            (:mod:`bot.whatsapp.pressure`).
    """

    announce_on: str | None = None  # this process processes: the webhook kicks it

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        *,
        batch_size: int = 32,
        workers: int = 2,
        busy_workers: int = 1,
        busy_window: float = 0.05,
        on_replies: Callable[[], None] | None = None,
        pressure: AckPressure | None = None,
    ) -> None:
        if batch_size < 1 or workers < 1:
            raise ValueError("batch_size and workers must be at least 1")
        self.engine = engine
        self.metrics = metrics
        self.batch_size = batch_size
        self.workers = workers
        self.semaphore = asyncio.Semaphore(workers)
        self.busy_lanes = asyncio.Semaphore(max(1, min(busy_workers, workers)))
        self.busy_window = busy_window
        self.on_replies = on_replies
        self.pressure = pressure
        self._waiting: dict[int, None] = {}  # contacts to process, in kick order
        self._running: set[int] = set()  # contacts in a batch right now
        self._again: set[int] = set()  # kicked while running: look again after
        self._tasks: set[asyncio.Task[None]] = set()  # workers and busy retries
        self._workers = 0
        self._acks = 0  # webhook requests in flight
        self._last_ack = -math.inf  # when the last one ended (monotonic)

    @contextlib.contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Mark a webhook request in flight (processing makes room for it)."""
        self._acks += 1
        try:
            yield
        finally:
            self._acks -= 1
            self._last_ack = time.monotonic()

    @property
    def busy(self) -> bool:
        """Whether webhook requests are in flight or just were."""
        return self._acks > 0 or time.monotonic() - self._last_ack < self.busy_window

    @property
    def waiting(self) -> int:
        """Contacts waiting for a batch."""
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """A batch slot: one of ``workers``, and one of the busy lanes while webhooks
        arrive."""
        async with self.semaphore:
            if not self.busy:
                yield
                return
            async with self.busy_lanes:
                yield

    def kick(self, contact_ids: Iterable[int]) -> None:
        """Process these contacts' pending messages soon."""
        for contact_id in contact_ids:
            if contact_id in self._running:
                self._again.add(contact_id)  # its batch ends, then it is looked at again
            else:
                self._waiting[contact_id] = None
        # Enough workers for what waits: one per batch's worth, up to ``workers``.
        wanted = min(self.workers, math.ceil(len(self._waiting) / self.batch_size))
        while self._workers < wanted:
            self._workers += 1
            self._track(asyncio.create_task(self._work()))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[int]:
        """The next batch: up to ``batch_size`` waiting contacts, oldest kick first."""
        batch: list[int] = []
        for contact_id in self._waiting:
            if len(batch) == self.batch_size:
                break
            batch.append(contact_id)
        for contact_id in batch:
            del self._waiting[contact_id]
        return batch

    async def _work(self) -> None:
        try:
            while self._waiting:
                if self.pressure is not None:
                    await self.pressure.make_way()
                async with self._slot():
                    batch = self._take()
                    if not batch:
                        return
                    self._running.update(batch)
                    try:
                        done = await self.engine.process_batch(batch)
                    except Exception:
                        log.exception(
                            "processing %d contact(s) failed; recovery will retry", len(batch)
                        )
                        continue
                    finally:
                        self._running.difference_update(batch)
                        again = self._again.intersection(batch)
                        self._again.difference_update(again)
                for contact_id in done.more | again:
                    self._waiting[contact_id] = None
                if done.busy:
                    self._track(asyncio.create_task(self._retry_later(done.busy)))
                if done.replies and self.on_replies is not None:
                    self.on_replies()
        finally:
            self._workers -= 1
            if self._waiting:  # kicked while this worker was ending
                self.kick(())

    async def _retry_later(self, contact_ids: set[int]) -> None:
        await asyncio.sleep(BUSY_RETRY)
        self.kick(contact_ids)

    async def recover_once(self, older_than: dt.timedelta = dt.timedelta(seconds=2)) -> int:
        """Kick every contact with messages pending longer than ``older_than``."""
        cutoff = self.engine.clock() - older_than
        async with self.engine.db.read() as session:
            contact_ids = (
                await session.scalars(
                    select(InboundMessage.contact_id)
                    .where(
                        InboundMessage.status == InboundStatus.PENDING,
                        InboundMessage.held.is_(False),  # the downloader releases those
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

    async def drain(self, grace: float | None = None) -> None:
        """Wait until every kicked contact was processed (tests, shutdown).

        With ``grace`` (seconds), batches still running after it are cancelled (their
        messages stay pending, and recovery processes them after the restart) and said in
        the log.
        """
        loop = asyncio.get_running_loop()
        deadline = None if grace is None else loop.time() + grace
        while self._tasks:
            tasks = set(self._tasks)
            if deadline is None:
                await asyncio.gather(*tasks, return_exceptions=True)
                continue
            left = deadline - loop.time()
            _, pending = await asyncio.wait(tasks, timeout=max(left, 0.0))
            if pending and left <= 0:
                log.warning("cancelling %d batch(es) still running at shutdown", len(pending))
                self._waiting.clear()
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=1.0)
                return


# Other processes process (``nyala serve --processors N``, ``nyala work``) -----------------

CHANNEL = "nyala_inbound"


class Announcer:
    """What the webhook kicks when processing runs in other processes (PostgreSQL only):
    the contacts are announced with ``NOTIFY`` on :data:`CHANNEL`, and every processing
    process listening (:func:`listen_for_kicks`) takes them. The webhook announces in
    the very transaction that stores the messages (:attr:`announce_on`); :meth:`kick`
    announces the others (a held message released after its download), gathered for one
    loop turn. A lost announcement costs only time: the processors' recovery finds every
    pending message."""

    announce_on: str | None = CHANNEL

    def __init__(self, db: Database, *, pressure: AckPressure | None = None) -> None:
        self.db = db
        self.pressure = pressure
        self._pending: dict[int, None] = {}
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Mark a webhook request in flight: nothing to make room for in this process,
        but with ``pressure`` the processes that process and send hear of a flood."""
        if self.pressure is None:
            yield
            return
        with self.pressure.acknowledging():
            yield

    def kick(self, contact_ids: Iterable[int]) -> None:
        """Announce these contacts soon."""
        self._pending.update(dict.fromkeys(contact_ids))
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._announce())

    async def _announce(self) -> None:
        await asyncio.sleep(0)  # one loop turn: requests finishing together share it
        while self._pending:
            ids = list(self._pending)
            self._pending.clear()
            try:
                async with self.db.transaction() as session:
                    await announce_contacts(session, CHANNEL, ids)
            except Exception:
                log.exception("announcing %d contact(s) failed; recovery will find them", len(ids))

    async def drain(self, grace: float | None = None) -> None:
        """Wait until what was kicked is announced."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=grace)


async def listen_for_kicks(processor: Processor, db: Database, *, retry: float = 1.0) -> None:
    """Kick ``processor`` with every contact announced on :data:`CHANNEL` until cancelled;
    a lost connection is opened again (recovery covers what was said meanwhile)."""

    def heard(payload: str) -> None:
        processor.kick(int(part) for part in payload.split(",") if part.isdigit())

    async def listening() -> None:
        # Messages stored before listening began were announced to nobody.
        await processor.recover_once(older_than=dt.timedelta(0))

    await listen(db, CHANNEL, heard, on_listening=listening, retry=retry)
