"""The outbox sender: claims due outbound rows and sends them through the Graph API.

Guarantees, with any number of processes on one PostgreSQL:

* one contact's messages go out one after another, in order: a row is only claimed when
  no earlier row of that contact is still waiting, and the next waits until Meta accepted
  (or finally refused) the previous;
* a claim is a lease (``next_attempt_at`` moved into the future, ``in_flight`` set); a
  crashed sender's rows become due again when the lease ends;
* a message is resent only when Meta did not accept it or the outcome is unknown (a
  timeout, or a crash while in flight): those resends are counted
  (``ambiguous_resends``, ``nyala_outbound_ambiguous_resends``);
* retryable errors back off exponentially with jitter; a pair-rate limit (131056) backs
  off that recipient only; permanent errors are marked ``failed`` with code and reason;
* free-form messages to a contact outside the 24-hour window are not sent (they would
  fail with 131047): they are marked failed with that code, visibly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Table,
    any_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects.postgresql import ARRAY

from bot.metrics import Metrics
from bot.settings import Settings
from bot.whatsapp.errors import (
    GraphTimeoutError,
    GraphUnavailableError,
    OutsideWindowError,
    PairRateLimitError,
    WhatsAppAPIError,
    WhatsAppError,
    error_text,
)
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.message_bodies import mark_read_body, message_body, recipient
from bot.whatsapp.notify import listen
from bot.whatsapp.pacing import Pacer
from bot.whatsapp.pressure import AckPressure
from bot.whatsapp.rounds import run_rounds
from bot.whatsapp.statuses import apply_early_statuses_of
from flows.messages import Document, Template, reply_from_payload
from flows.outreach import in_window
from storage import (
    Contact,
    Database,
    OutboundMessage,
    OutboundStatus,
    StoredFile,
    lock_names,
    utcnow,
)

log = logging.getLogger("nyala.outbox")

_OUTBOUND = cast(Table, OutboundMessage.__table__)
_CONTACTS = cast(Table, Contact.__table__)


# One executemany for a group of sends (Core: no ORM bookkeeping per row).
_RECORD_SENT = (
    update(_OUTBOUND)
    .where(_OUTBOUND.c.id == bindparam("row_id"))
    .values(
        status=OutboundStatus.SENT,
        wa_message_id=bindparam("wamid"),
        sent_at=bindparam("at"),
        status_at=bindparam("at"),
        in_flight=False,
        media_id=bindparam("media"),
        next_attempt_at=None,
        last_error=None,
        error_code=None,
    )
)


def _ids_match(
    column: ColumnElement[int], ids: list[int], *, postgresql: bool
) -> ColumnElement[bool]:
    """``column`` is one of ``ids``: on PostgreSQL one array parameter (one prepared
    statement whatever the count), elsewhere an IN list."""
    if postgresql:
        return column == any_(
            cast_(bindparam("ids", ids, type_=ARRAY(BigInteger)), ARRAY(BigInteger))
        )
    return column.in_(ids)


Clock = Callable[[], dt.datetime]
MARK_READ = "mark_read"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row this sender holds the lease of, with what it needs to send it."""

    id: int
    kind: str
    payload: dict[str, Any]
    to: str
    last_inbound_at: dt.datetime | None
    attempts: int
    media_id: str | None
    ambiguous: bool
    fallback: dict[str, Any] | None
    pair_rate_strikes: int = 0


@dataclass(slots=True)
class _Sent:
    """A row Meta accepted, waiting to be recorded with the others sent meanwhile."""

    row_id: int
    wamid: str | None
    media_id: str | None
    at: dt.datetime
    done: asyncio.Future[None]


class Outbox:
    """Sends queued outbound rows.

    Args:
        db: the database.
        client: the Graph API client.
        metrics: where to count.
        rate: messages per second for this process (``None``: unlimited).
        max_attempts: attempts before a retryable failure becomes permanent.
        lease: how long a claim holds a row.
        batch: rows claimed at once.
        lanes: rounds of claiming and sending that overlap (see :meth:`run`; PostgreSQL
            only, SQLite runs one).
        poll_interval: seconds between looks for work when nothing woke the sender.
        pressure: the webhook's pressure, when it runs in another process of the same
            ``nyala serve``: each round first makes way for a flood of acknowledgements
            (:mod:`bot.whatsapp.pressure`).
    """

    def __init__(
        self,
        db: Database,
        client: GraphClient,
        metrics: Metrics,
        *,
        rate: float | None = 80.0,
        max_attempts: int = 8,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        batch: int = 50,
        lanes: int = 2,
        poll_interval: float = 0.5,
        clock: Clock = utcnow,
        pressure: AckPressure | None = None,
    ) -> None:
        self.db = db
        self.client = client
        self.pressure = pressure
        self.metrics = metrics
        # Evenly spaced sends at the full rate, never above it (bot.whatsapp.pacing).
        self.limiter = Pacer(rate) if rate else None
        self.max_attempts = max_attempts
        self.lease = lease
        self.batch = batch
        # SQLite has one writer: a second lane would only wait for the first's lock (and
        # a lane cancelled while waiting for it holds up the shutdown).
        self.lanes = max(1, lanes) if db.is_postgresql else 1
        self.poll_interval = poll_interval
        self.clock = clock
        self.wakeup = asyncio.Event()
        self._sent: list[_Sent] = []  # sent rows waiting to be recorded
        self._recorder: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        db: Database,
        client: GraphClient,
        metrics: Metrics,
        settings: Settings,
        *,
        pressure: AckPressure | None = None,
    ) -> Outbox:
        """The sender a server or processing process runs: the settings' rate and lease."""
        return cls(
            db,
            client,
            metrics,
            rate=settings.send_rate,
            lease=dt.timedelta(seconds=settings.send_lease_seconds),
            pressure=pressure,
        )

    def wake(self) -> None:
        """Look for work now (called after replies were queued in this process)."""
        self.wakeup.set()

    async def run(self) -> None:
        """Send until cancelled, in ``lanes`` overlapping rounds: while one round's last
        sends and their bookkeeping finish, the next round has claimed its rows and takes
        the limiter's next tokens, so the rate stays at the limit instead of pausing
        between rounds. (A contact's next row is never claimed while an earlier one is
        still queued, so two lanes never reorder one contact's messages.)"""
        try:
            await asyncio.gather(
                *(
                    run_rounds(self.send_due, self.wakeup, self.poll_interval, "outbox")
                    for _ in range(self.lanes)
                )
            )
        finally:
            # Rows Meta accepted are recorded before the sender stops (a short write).
            if self._recorder is not None and not self._recorder.done():
                await asyncio.wait({self._recorder}, timeout=5.0)

    async def send_due(self) -> int:
        """Claim and send one batch of due rows; returns how many were claimed."""
        if self.pressure is not None:
            await self.pressure.make_way()
        claimed = await self.claim()
        if not claimed:
            return 0
        self.metrics.outbox_backlog.set(len(claimed))
        await asyncio.gather(*(self._send(row) for row in claimed))
        self.metrics.outbox_backlog.set(0)
        return len(claimed)

    @functools.cached_property
    def _claim_query(self) -> Select[Any]:
        """The claim's SELECT, built once (``now`` is bound at each claim)."""
        out, contacts = _OUTBOUND, _CONTACTS
        earlier = out.alias("earlier")
        # "Queued" written out, as in the partial indexes the claim is made for
        # (storage.messages.QUEUED_SQL): a bound value would not match them.
        queued: ColumnElement[str] = literal_column(f"'{OutboundStatus.QUEUED.value}'")
        # A row goes when it is its contact's oldest queued row: one probe of the
        # contact's queued rows for each candidate, taken in due order until the batch
        # is full, whatever the backlog (as NOT EXISTS, PostgreSQL could join it against
        # every queued row: 0.7 s a claim with 2,000 queued, against 0.5 ms now).
        oldest = (
            select(func.min(earlier.c.id))
            .where(earlier.c.contact_id == out.c.contact_id, earlier.c.status == queued)
            .scalar_subquery()
        )
        query = (
            select(
                out.c.id,
                out.c.kind,
                out.c.payload,
                out.c.attempts,
                out.c.media_id,
                out.c.in_flight,
                out.c.fallback,
                out.c.pair_rate_strikes,
                contacts.c.wa_id,
                contacts.c.user_id,
                contacts.c.last_inbound_at,
            )
            .join_from(out, contacts, contacts.c.id == out.c.contact_id)
            .where(
                out.c.status == queued,
                out.c.next_attempt_at <= bindparam("now"),
                out.c.id == oldest,
                # A sandbox contact (the console's simulator) is never a WhatsApp user.
                contacts.c.sandbox.is_(False),
            )
            .order_by(out.c.next_attempt_at, out.c.id)
            .limit(self.batch)
        )
        if self.db.is_postgresql:
            query = query.with_for_update(skip_locked=True, of=out)
        return query

    async def claim(self) -> list[Claimed]:
        """Take the lease of due rows, at most one per contact (the oldest waiting).

        Two statements and no ORM objects: select the rows (locking them, skipping rows
        another sender holds), then take their lease with one UPDATE."""
        now = self.clock()
        out = _OUTBOUND
        async with self.db.transaction() as session:
            rows = (await session.execute(self._claim_query, {"now": now})).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            # Resent while in flight: Meta may have the first (no idempotency key).
            lease = (
                update(out)
                .values(
                    in_flight=True,
                    attempts=out.c.attempts + 1,
                    next_attempt_at=now + self.lease,
                    ambiguous_resends=out.c.ambiguous_resends
                    + case((out.c.in_flight.is_(True), 1), else_=0),
                )
                .where(_ids_match(out.c.id, ids, postgresql=self.db.is_postgresql))
            )
            await session.execute(lease)
        ambiguous = sum(1 for row in rows if row.in_flight)
        if ambiguous:
            self.metrics.ambiguous_resends.inc(ambiguous)
        return [
            Claimed(
                id=row.id,
                kind=row.kind,
                payload=dict(row.payload),
                to=recipient(row.wa_id, row.user_id),
                last_inbound_at=row.last_inbound_at,
                attempts=row.attempts + 1,
                media_id=row.media_id,
                ambiguous=bool(row.in_flight),
                fallback=dict(row.fallback) if row.fallback else None,
                pair_rate_strikes=row.pair_rate_strikes or 0,
            )
            for row in rows
        ]

    async def _send(self, row: Claimed) -> None:
        media_id = row.media_id
        try:
            if row.kind == MARK_READ:
                await self._limited()
                await self.client.mark_read(str(row.payload["message_id"]))
                await self._done(row.id, None, media_id, self.clock())
                return
            reply = reply_from_payload(row.kind, row.payload)
            fallback = reply_from_payload("template", row.fallback) if row.fallback else None
            if not isinstance(reply, Template) and not self._in_window(row):
                if fallback is None:
                    raise OutsideWindowError(
                        "not sent: more than 24 hours since the contact last wrote; "
                        "only an approved template may be sent",
                        code=131047,
                    )
                reply = fallback  # the window is closed: the action's template instead
            if isinstance(reply, Document) and media_id is None:
                media_id = await self._upload(reply)
            body = message_body(reply, to=row.to, media_id=media_id)
            await self._limited()
            try:
                wamid = await self.client.send_message(body)
            except OutsideWindowError:
                # Meta's clock says the window closed (131047 synchronously).
                if fallback is None or isinstance(reply, Template):
                    raise
                await self._limited()
                wamid = await self.client.send_message(message_body(fallback, to=row.to))
            accepted_at = self.clock()
        except GraphTimeoutError as exc:
            await self._retry(row, exc, media_id, keep_in_flight=True)
        except GraphUnavailableError as exc:
            await self._retry(row, exc, media_id)
        except WhatsAppAPIError as exc:
            if exc.retryable:
                await self._retry(row, exc, media_id)
            else:
                await self._fail(row, exc, media_id)
        except WhatsAppError as exc:
            await self._retry(row, exc, media_id)
        except Exception as exc:  # a bug must not kill the sender, nor loop forever
            log.exception("outbound %s could not be sent", row.id)
            await self._fail(row, exc, media_id)
        else:
            self.metrics.outbound_sent.labels(kind=row.kind).inc()
            await self._done(row.id, wamid, media_id, accepted_at)

    def _in_window(self, row: Claimed) -> bool:
        return in_window(row.last_inbound_at, self.clock())

    async def _limited(self) -> None:
        if self.limiter is not None:
            await self.limiter.acquire()

    async def _upload(self, document: Document) -> str:
        async with self.db.read() as session:
            stored = await session.get(StoredFile, document.file_id)
        if stored is None:
            raise WhatsAppError(f"stored file {document.file_id} is missing")
        return await self.client.upload_media(
            stored.data, mime_type=stored.mime_type, filename=document.filename
        )

    async def _done(
        self, row_id: int, wamid: str | None, media_id: str | None, accepted_at: dt.datetime
    ) -> None:
        """Record the row sent, stamped when Meta accepted it (not when this write runs).

        Rows sent while a record is being written are recorded together in the next
        transaction (group commit): one commit for many sends, not one each.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sent.append(_Sent(row_id, wamid, media_id, accepted_at, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_sent_rows())
        await done

    async def _record_sent_rows(self) -> None:
        while self._sent:
            group, self._sent = self._sent, []
            try:
                async with self.db.transaction() as session:
                    wamids = [sent.wamid for sent in group if sent.wamid is not None]
                    # The locks a status webhook takes too (in the same sorted order):
                    # a status that arrives meanwhile waits, then finds the message id.
                    await lock_names(session, [f"wamid:{wamid}" for wamid in wamids])
                    await session.execute(
                        _RECORD_SENT,
                        [
                            {
                                "row_id": sent.row_id,
                                "wamid": sent.wamid,
                                "at": sent.at,
                                "media": sent.media_id,
                            }
                            for sent in group
                        ],
                    )
                    await apply_early_statuses_of(session, wamids, self.clock())
            except BaseException as exc:
                # Not recorded: the rows stay in flight, and their lease ends in a resend
                # counted as ambiguous (Meta may have them), as after a crash.
                for sent in group:
                    if not sent.done.done():
                        sent.done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for sent in group:
                if not sent.done.done():
                    sent.done.set_result(None)

    def _backoff(self, row: Claimed, exc: WhatsAppError) -> float:
        if isinstance(exc, PairRateLimitError):
            # Meta suggests 4^X seconds for the pair rate limit (other users unaffected),
            # X counting consecutive 131056 answers, not the row's other failures.
            return float(min(4.0 ** (row.pair_rate_strikes + 1), 900.0))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            return float(retry_after)
        base = min(2.0 ** (row.attempts - 1), 300.0)
        return base * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not cryptography

    async def _retry(
        self,
        row: Claimed,
        exc: WhatsAppError,
        media_id: str | None,
        *,
        keep_in_flight: bool = False,
    ) -> None:
        if row.attempts >= self.max_attempts:
            await self._fail(row, exc, media_id)
            return
        delay = self._backoff(row, exc)
        code = getattr(exc, "code", None)
        reason = type(exc).__name__
        self.metrics.outbound_retries.labels(reason=reason).inc()
        log.warning("outbound %s: %s; retry in %.1f s", row.id, reason, delay)
        async with self.db.transaction() as session:
            await session.execute(
                update(OutboundMessage)
                .where(OutboundMessage.id == row.id)
                .values(
                    next_attempt_at=self.clock() + dt.timedelta(seconds=delay),
                    # After a timeout Meta may have accepted it: a resend is ambiguous.
                    in_flight=keep_in_flight,
                    media_id=media_id,
                    last_error=error_text(exc),
                    error_code=code,
                    pair_rate_strikes=row.pair_rate_strikes + 1
                    if isinstance(exc, PairRateLimitError)
                    else 0,
                )
            )

    async def _fail(self, row: Claimed, exc: Exception, media_id: str | None) -> None:
        code = getattr(exc, "code", None)
        self.metrics.outbound_failed.labels(code=str(code)).inc()
        log.warning("outbound %s failed permanently: %s", row.id, type(exc).__name__)
        now = self.clock()
        async with self.db.transaction() as session:
            await session.execute(
                update(OutboundMessage)
                .where(OutboundMessage.id == row.id)
                .values(
                    status=OutboundStatus.FAILED,
                    status_at=now,
                    in_flight=False,
                    next_attempt_at=None,
                    media_id=media_id,
                    last_error=error_text(exc),
                    error_code=code,
                )
            )


# The sending process of ``nyala serve --processors N`` -----------------------------------

OUTBOUND_CHANNEL = "nyala_outbound"
"""The ``NOTIFY`` channel that wakes a sending process of its own: replies were queued."""


class RemoteWake:
    """Wakes the sending process from a processing process: ``NOTIFY`` on
    :data:`OUTBOUND_CHANNEL` after a batch queued replies (:meth:`wake`, coalesced: wakes
    asked for while one is on its way make one more). A lost wake-up costs only time: the
    sender looks for due rows every ``poll_interval`` anyway."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def wake(self) -> None:
        """Wake the sender soon."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._notify(), name="wake-sender")

    async def _notify(self) -> None:
        while True:
            self._again = False
            try:
                async with self.db.transaction() as session:
                    await session.execute(_NOTIFY_OUTBOUND)
            except Exception as exc:
                log.warning("waking the sender failed (%s); it looks again soon", exc)
            if not self._again:
                return

    async def drain(self) -> None:
        """Wait for a wake-up on its way (shutdown)."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=5.0)


_NOTIFY_OUTBOUND = text(f"NOTIFY {OUTBOUND_CHANNEL}")


async def listen_for_outbound(outbox: Outbox, db: Database) -> None:
    """Wake ``outbox`` at every :data:`OUTBOUND_CHANNEL` notification until cancelled."""

    def heard(_payload: str) -> None:
        outbox.wake()

    await listen(db, OUTBOUND_CHANNEL, heard)


def mark_read_row(
    contact_id: int, inbound_id: int, message_id: str, now: dt.datetime
) -> dict[str, Any]:
    """An outbox row (its column values) that marks an inbound message as read, before
    the replies to it; the inbox inserts a group's rows with one statement."""
    return {
        "contact_id": contact_id,
        "inbound_id": inbound_id,
        "kind": MARK_READ,
        "payload": mark_read_body(message_id),
        "status": OutboundStatus.QUEUED,
        "created_at": now,
        "next_attempt_at": now,
    }


async def send_queued_now(settings: Settings, db: Database) -> int:
    """Send every due queued row now (a command's ``--send-now`` on a machine without a
    running server): the outbox's own sender, rate limit and retries, until nothing is
    due. Returns how many messages were sent."""
    total = 0
    async with aiohttp.ClientSession() as http:
        outbox = Outbox(
            db, GraphClient.from_settings(http, settings), Metrics(), rate=settings.send_rate
        )
        while sent := await outbox.send_due():
            total += sent
    return total
