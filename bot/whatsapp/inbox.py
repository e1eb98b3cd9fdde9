"""The durable inbox: store a webhook's messages and statuses, then process them.

Storing happens in one transaction before the webhook answers 200, shared by the
deliveries of concurrent requests (group commit, :class:`GroupCommit`; on PostgreSQL a
group of plain messages is one statement that commits by itself): each message once
(unique on its WhatsApp id; a redelivery is a no-op), statuses applied to outbound rows
(never backwards), anything else recorded as ignored. Processing is another module's
(:mod:`bot.whatsapp.processing`: batches of contacts in this process, or announced to
processing processes of their own); its recovery loop picks up rows a crash left pending,
so any number of processes can share one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
from sqlalchemy import Table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.metrics import Metrics
from bot.whatsapp.media import media_download_row
from bot.whatsapp.message_bodies import mark_read_body
from bot.whatsapp.outbox import MARK_READ, mark_read_row
from bot.whatsapp.payloads import (
    IncomingMessage,
    ReportedError,
    Sender,
    WebhookBatch,
    message_payload,
)
from bot.whatsapp.statuses import apply_status
from flows.messages import MEDIA_KINDS
from storage import (
    Database,
    IgnoredUpdate,
    InboundStatus,
    MediaDownload,
    OutboundMessage,
    get_or_create_contact,
    utcnow,
)
from storage.messages import KnownContact, insert_contacts, insert_new_inbound, known_contacts

log = logging.getLogger("nyala.inbox")

_OUTBOUND = cast(Table, OutboundMessage.__table__)

# Contact ids per NOTIFY payload (a payload must stay under 8,000 bytes).
IDS_PER_NOTIFY = 500
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")

Clock = Callable[[], dt.datetime]


@dataclass
class Stored:
    """What storing one webhook delivery did."""

    contacts: set[int] = field(default_factory=set)
    new_messages: int = 0
    duplicates: int = 0
    statuses: int = 0
    ignored: int = 0
    errors: int = 0


async def store_batch(
    db: Database,
    batch: WebhookBatch,
    *,
    mark_read: bool,
    clock: Clock = utcnow,
    announce: str | None = None,
) -> Stored:
    """Store a parsed webhook delivery in one transaction (retried on a unique clash)."""
    stored = await store_batches(db, [batch], mark_read=mark_read, clock=clock, announce=announce)
    return stored[0]


async def store_batches(
    db: Database,
    batches: Sequence[WebhookBatch],
    *,
    mark_read: bool,
    clock: Clock = utcnow,
    announce: str | None = None,
) -> list[Stored]:
    """Store several deliveries in ONE transaction (retried on a unique clash).

    Either all of them are durable when this returns, or none is (an exception). With
    ``announce`` (PostgreSQL), the contacts with new messages are announced on that
    ``NOTIFY`` channel in the same transaction: delivered when, and only if, it commits.
    """
    for attempt in range(3):
        try:
            async with db.transaction() as session:
                return await _store(
                    session, batches, mark_read=mark_read, now=clock(), announce=announce
                )
        except IntegrityError:
            # Another process stored the same message or contact at this moment.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class GroupCommit:
    """Group commit for the webhook: concurrent deliveries share one transaction.

    :meth:`store` queues a delivery and returns once it is durably committed. One
    writer at a time stores everything queued in one transaction and one commit; what
    arrives meanwhile waits for the next one, so under load many requests share each
    commit, and a lone request is stored at once. If a shared transaction fails, each
    of its deliveries is stored on its own, so one bad delivery never fails the others.

    Args:
        db: the database.
        mark_read: live mode: queue a read receipt for each new message, and hold each
            media message until its file is downloaded (:mod:`bot.whatsapp.media`).
        max_group: the most deliveries in one transaction.
        clock: the time source.
        metrics: where to count the commits (``nyala_inbound_commits``).
        own_connection: on PostgreSQL, store through one connection of its own, kept
            between groups, instead of the shared pool: the acknowledgement then never
            waits behind processing and the outbox for a pooled connection (under load
            they hold all of them). The owner calls :meth:`close` at shutdown.
        announce: a PostgreSQL ``NOTIFY`` channel: each group's contacts with new messages
            are announced on it in the group's own transaction (processing runs in other
            processes, :class:`bot.whatsapp.processing.Announcer`), at no extra commit.
    """

    def __init__(
        self,
        db: Database,
        *,
        mark_read: bool,
        max_group: int = 256,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
        own_connection: bool = False,
        announce: str | None = None,
    ) -> None:
        self.db = db
        self.announce = announce if db.is_postgresql else None
        self.metrics = metrics
        self.own_connection = own_connection and db.is_postgresql
        self._own_db: Database | None = None
        self._kept: AsyncConnection | None = None
        self._closed = False
        self.mark_read = mark_read
        self.max_group = max_group
        self.clock = clock
        self._queued: list[tuple[WebhookBatch, asyncio.Future[Stored]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0  # transactions committed (for tests and diagnostics)

    async def store(self, batch: WebhookBatch) -> Stored:
        """Store one delivery durably (together with whatever else is queued)."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queued.append((batch, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="inbox-group-commit")
        # A cancelled request does not cancel the others' transaction.
        return await asyncio.shield(future)

    def _committed(self) -> None:
        self.commits += 1
        if self.metrics is not None:
            self.metrics.inbound_commits.inc()

    async def _write(self) -> None:
        # One turn of the event loop first: requests whose bodies arrived in the same
        # poll reach :meth:`store` in it and share this transaction instead of waiting
        # for the next (under open-loop load most groups would otherwise be of one).
        await asyncio.sleep(0)
        held, self._kept = self._kept, None
        try:
            while self._queued:
                group = self._queued[: self.max_group]
                del self._queued[: self.max_group]
                batches = [batch for batch, _ in group]
                try:
                    results, held = await self._store_group(batches, held)
                except Exception as exc:
                    if len(group) == 1:
                        _settle(group[0][1], error=exc)
                    else:
                        await self._write_alone(group)
                    continue
                self._committed()
                for (_, future), result in zip(group, results, strict=True):
                    _settle(future, result=result)
        finally:
            if held is not None:
                if self.own_connection and not self._closed:
                    self._kept = held
                else:
                    await _release(held)

    async def _store_group(
        self, batches: list[WebhookBatch], held: AsyncConnection | None
    ) -> tuple[list[Stored], AsyncConnection | None]:
        """Store one group; the connection to keep for the next one.

        On PostgreSQL the writer keeps one connection while groups follow each other
        (with ``own_connection``, for good): taking one from the pool costs three round
        trips of its own (the pool's pre-ping is BEGIN, ``;``, ROLLBACK with asyncpg),
        more than the group's own statement. Any failure on it gives the connection
        back and stores the group the ordinary way (:func:`store_batches`: a fresh,
        checked connection from the shared pool, retried on a unique clash), so a
        PostgreSQL restart costs one retry, never a delivery. Deliveries the group's first
        statement stored whole before a failure are not stored again
        (:class:`_UnfinishedError`): only the others are.
        """
        if self.db.is_postgresql:
            done: list[Stored] | None = None
            redo: list[int] = []
            try:
                if held is None:
                    held = await self._connect()
                return await self._store_on(held, batches), held
            except _UnfinishedError as unfinished:
                done, redo = unfinished.results, unfinished.redo
            except Exception as exc:
                log.warning("storing a group failed (%s); storing it again", type(exc).__name__)
            if held is not None:
                await _release(held)
            if done is not None:
                self._committed()  # the first statement's
                again = await store_batches(
                    self.db,
                    [batches[i] for i in redo],
                    mark_read=self.mark_read,
                    clock=self.clock,
                    announce=self.announce,
                )
                for i, result in zip(redo, again, strict=True):
                    done[i] = _merged(done[i], result)
                return done, None
        results = await store_batches(
            self.db, batches, mark_read=self.mark_read, clock=self.clock, announce=self.announce
        )
        return results, None

    async def _connect(self) -> AsyncConnection:
        if not self.own_connection or self._closed:
            return await self.db.engine.connect()
        if self._own_db is None:
            self._own_db = Database(self.db.url.render_as_string(hide_password=False))
        return await self._own_db.engine.connect()

    async def close(self) -> None:
        """Let the writer finish, then close the connection of its own (if any).

        Deliveries stored later go through the shared pool."""
        self._closed = True
        if self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])
        if self._kept is not None:
            await _release(self._kept)
            self._kept = None
        if self._own_db is not None:
            await self._own_db.dispose()
            self._own_db = None

    async def _store_on(self, conn: AsyncConnection, batches: list[WebhookBatch]) -> list[Stored]:
        """:func:`store_batches`' work on ``conn``: committed when this returns.

        On PostgreSQL the group's messages go first in ONE statement run on its own, which
        commits by itself (:func:`_pg_store_messages`: no BEGIN and COMMIT round trips);
        whatever it leaves (statuses, media to download, senders that changed or that
        another process is creating) is stored in a transaction after it. If that
        transaction fails, :class:`_UnfinishedError` says which deliveries are left to store."""
        results = [Stored() for _ in batches]
        fresh = _fresh_messages(batches, results)
        now = self.clock()
        if self.db.is_postgresql and _one_statement_fits(fresh, mark_read=self.mark_read):
            raw = await conn.get_raw_connection()
            fresh = await _pg_store_messages(
                cast(asyncpg.Connection, raw.driver_connection),
                fresh,
                mark_read=self.mark_read,
                now=now,
                announce=self.announce,
            )
            if not fresh and not any(_has_more(batch) for batch in batches):
                return results
            stored = [dataclasses.replace(r, contacts=set(r.contacts)) for r in results]
            try:
                await self._store_rest_on(conn, batches, results, fresh, now)
                self._committed()  # the statement's own commit (the caller counts this one)
            except Exception as exc:
                left = {id(result) for result, _ in fresh}
                redo = [
                    i
                    for i, (batch, result) in enumerate(zip(batches, results, strict=True))
                    if id(result) in left or _has_more(batch)
                ]
                raise _UnfinishedError(stored, redo) from exc
            return results
        await self._store_rest_on(conn, batches, results, fresh, now)
        return results

    async def _store_rest_on(
        self,
        conn: AsyncConnection,
        batches: list[WebhookBatch],
        results: list[Stored],
        fresh: list[tuple[Stored, IncomingMessage]],
        now: dt.datetime,
    ) -> None:
        """:func:`_store_rest` in a transaction on ``conn``, committed when this returns."""
        async with conn.begin():
            session = AsyncSession(bind=conn, expire_on_commit=False)
            try:
                await _store_rest(
                    session,
                    batches,
                    results,
                    fresh,
                    mark_read=self.mark_read,
                    now=now,
                    announce=self.announce,
                )
                await session.flush()
            finally:
                await session.close()

    async def _write_alone(self, group: list[tuple[WebhookBatch, asyncio.Future[Stored]]]) -> None:
        for batch, future in group:
            try:
                result = await store_batch(
                    self.db,
                    batch,
                    mark_read=self.mark_read,
                    clock=self.clock,
                    announce=self.announce,
                )
            except Exception as exc:
                _settle(future, error=exc)
            else:
                self._committed()
                _settle(future, result=result)


class _UnfinishedError(Exception):
    """A group whose first statement committed, and whose transaction after it failed:
    ``results`` as that statement left them; ``redo``, the deliveries to store again."""

    def __init__(self, results: list[Stored], redo: list[int]) -> None:
        super().__init__("the group's transaction failed after its first statement")
        self.results = results
        self.redo = redo


def _has_more(batch: WebhookBatch) -> bool:
    """Whether a delivery has more than messages (statuses, ignored updates, errors)."""
    return bool(batch.statuses or batch.ignored or batch.reported)


def _merged(first: Stored, again: Stored) -> Stored:
    """A delivery stored in two goes: ``again`` (all of it, once more) counts the
    messages ``first`` stored as duplicates."""
    return dataclasses.replace(
        again,
        contacts=first.contacts | again.contacts,
        new_messages=first.new_messages + again.new_messages,
        duplicates=again.duplicates - first.new_messages,
    )


async def _release(conn: AsyncConnection) -> None:
    """Give a held connection back to the pool (which resets it, or drops it if broken)."""
    with contextlib.suppress(Exception):
        await conn.close()


def _settle(
    future: asyncio.Future[Stored],
    *,
    result: Stored | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)


async def _store(
    session: AsyncSession,
    batches: Sequence[WebhookBatch],
    *,
    mark_read: bool,
    now: dt.datetime,
    announce: str | None = None,
) -> list[Stored]:
    results = [Stored() for _ in batches]
    fresh = _fresh_messages(batches, results)
    await _store_rest(
        session, batches, results, fresh, mark_read=mark_read, now=now, announce=announce
    )
    return results


def _fresh_messages(
    batches: Sequence[WebhookBatch], results: list[Stored]
) -> list[tuple[Stored, IncomingMessage]]:
    """The group's messages, each once (a message twice in the group counts as a
    duplicate of its delivery), with the result of the delivery it came in."""
    seen: set[str] = set()
    fresh: list[tuple[Stored, IncomingMessage]] = []
    for batch, result in zip(batches, results, strict=True):
        for incoming in batch.messages:
            if incoming.message.id in seen:  # twice in this group
                result.duplicates += 1
                continue
            seen.add(incoming.message.id)
            fresh.append((result, incoming))
    return fresh


async def _store_rest(
    session: AsyncSession,
    batches: Sequence[WebhookBatch],
    results: list[Stored],
    fresh: list[tuple[Stored, IncomingMessage]],
    *,
    mark_read: bool,
    now: dt.datetime,
    announce: str | None,
) -> None:
    """Store ``fresh`` (the group's messages not stored yet), then the statuses, ignored
    updates and reported errors of ``batches``, counting into ``results``."""
    if fresh:
        await _store_messages(session, fresh, mark_read=mark_read, now=now)
    # In wamid order, so two transactions never take the same wamid locks crosswise.
    statuses = sorted(
        ((result, status) for batch, result in zip(batches, results, strict=True)
         for status in batch.statuses),
        key=lambda pair: pair[1].wa_message_id,
    )  # fmt: skip
    for result, status in statuses:
        if await apply_status(session, status, now):
            result.statuses += 1
        else:
            result.ignored += 1
    for batch, result in zip(batches, results, strict=True):
        for ignored in batch.ignored:
            session.add(
                IgnoredUpdate(received_at=now, what=ignored.what[:200], reason=ignored.reason)
            )
            result.ignored += 1
        for reported in batch.reported:
            session.add(_error_row(reported, now))
            result.errors += 1
    if announce is not None:
        await announce_contacts(session, announce, {c for r in results for c in r.contacts})


async def announce_contacts(
    session: AsyncSession, channel: str, contact_ids: Iterable[int]
) -> None:
    """``NOTIFY`` the contacts on ``channel`` in the session's transaction (PostgreSQL
    delivers it at commit, and only if it commits), in payloads under its 8,000 bytes."""
    ids = sorted(contact_ids)
    for start in range(0, len(ids), IDS_PER_NOTIFY):
        payload = ",".join(map(str, ids[start : start + IDS_PER_NOTIFY]))
        await session.execute(_NOTIFY, {"channel": channel, "payload": payload})


def _error_row(reported: ReportedError, now: dt.datetime) -> IgnoredUpdate:
    """An error WhatsApp reported in a webhook, logged and kept in ``ignored_updates``
    (``what`` starts with ``webhook error``) so it is never dropped silently."""
    error = reported.error
    code = error.code if error.code is not None else "?"
    on = f" on {reported.message_id}" if reported.message_id else ""
    reason = error.details or error.message or error.title or "no details"
    log.warning("WhatsApp reported error %s%s (%s): %s", code, on, reported.where, reason[:300])
    return IgnoredUpdate(
        received_at=now,
        what=f"webhook error {code} ({reported.where})"[:200],
        reason=reason,
        payload={
            "code": error.code,
            "title": error.title,
            "message": error.message,
            "details": error.details,
            "message_id": reported.message_id,
            "where": reported.where,
        },
    )


async def _contact_ids(
    session: AsyncSession, senders: list[Sender], now: dt.datetime
) -> list[int]:
    """The contact id of each sender, in few statements: the known ones in one query, new
    ones with only a phone number in one insert. Anyone else (a changed name or id, a
    username user, a clash with another process) goes through
    :func:`storage.get_or_create_contact`, which creates or updates the row."""
    postgresql = _is_postgresql(session)
    wa_ids = (s.wa_id for s in senders if s.wa_id)
    known = await (_pg_known_contacts if postgresql else known_contacts)(session, wa_ids)
    new = {
        s.wa_id: s.profile_name or s.username
        for s in senders
        if s.wa_id and not s.user_id and s.wa_id not in known
    }
    if new:
        insert = _pg_insert_contacts if postgresql else insert_contacts
        for wa_id, contact_id in (await insert(session, new, now=now)).items():
            known[wa_id] = KnownContact(contact_id, None, new[wa_id])
    ids: list[int] = []
    for sender in senders:
        name = sender.profile_name or sender.username
        row = known.get(sender.wa_id) if sender.wa_id else None
        if row is not None and row.unchanged(sender.user_id, name):
            ids.append(row.id)
            continue
        contact = await get_or_create_contact(
            session, wa_id=sender.wa_id, user_id=sender.user_id, profile_name=name
        )
        if sender.wa_id:
            known[sender.wa_id] = KnownContact(contact.id, contact.user_id, contact.profile_name)
        ids.append(contact.id)
    return ids


async def _store_messages(
    session: AsyncSession,
    fresh: list[tuple[Stored, IncomingMessage]],
    *,
    mark_read: bool,
    now: dt.datetime,
) -> None:
    """Insert new messages with one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING``
    per 500: a message stored before (a redelivery) is not returned, so it is counted as
    a duplicate without a query of its own.

    On PostgreSQL the messages of senders already known, unchanged, go first in ONE
    statement that also looks their contacts up (:data:`_PG_STORE_KNOWN`); only new or
    changed senders take the two steps after it."""
    payloads = [message_payload(incoming.message) for _, incoming in fresh]
    # Live mode: a file is downloaded first (bot.whatsapp.media), the message waits, held.
    helds = [mark_read and _has_media(incoming) for _, incoming in fresh]
    contact_ids: list[int] = [0] * len(fresh)
    stored: dict[str, int] = {}
    todo = list(range(len(fresh)))
    postgresql = _is_postgresql(session)
    # A sender known by user id alone could be the same contact as another sender of
    # the group: everything takes the general path then, so each contact's messages
    # keep their order.
    if postgresql and all(incoming.sender.wa_id for _, incoming in fresh):
        todo = await _pg_store_known(
            session,
            fresh,
            payloads=payloads,
            helds=helds,
            contact_ids=contact_ids,
            stored=stored,
            now=now,
        )
    if todo:
        senders = [fresh[i][1].sender for i in todo]
        for i, contact_id in zip(todo, await _contact_ids(session, senders, now), strict=True):
            contact_ids[i] = contact_id
        rows: list[dict[str, Any]] = [
            {
                "wa_message_id": fresh[i][1].message.id,
                "contact_id": contact_ids[i],
                "kind": fresh[i][1].message.kind,
                "payload": payloads[i],
                "received_at": now,
                "sent_at": fresh[i][1].message.timestamp,
                "status": InboundStatus.PENDING,
                "held": helds[i],
            }
            for i in todo
        ]
        insert = _pg_insert_inbound if postgresql else insert_new_inbound
        stored.update(await insert(session, rows))
    receipts: list[dict[str, Any]] = []
    for i, (result, incoming) in enumerate(fresh):
        row_id = stored.get(incoming.message.id)
        if row_id is None:
            result.duplicates += 1
            continue
        contact_id = contact_ids[i]
        if helds[i]:
            session.add(_download_row(incoming, row_id, contact_id, payloads[i], now))
        if mark_read and incoming.message.kind != "reaction":
            receipts.append(mark_read_row(contact_id, row_id, incoming.message.id, now))
        result.contacts.add(contact_id)
        result.new_messages += 1
    if receipts:
        await session.execute(_OUTBOUND.insert(), receipts)


# PostgreSQL: one cached statement whatever the number of rows ---------------------------
#
# A multi-row ``INSERT … VALUES`` is compiled by SQLAlchemy for each new row count, and its
# parameters are processed one by one in Python: that was most of the webhook's CPU time
# under load. Arrays unnested by PostgreSQL are one prepared statement, encoded by asyncpg.
# SQLite keeps the portable statements of :mod:`storage.messages`.

# A contact is looked up by its unique wa_id once per sender (``sent``, a nested loop
# over the index): ``wa_id = ANY(array)`` let the planner scan the whole table while its
# statistics still said it was small (a new database, a burst of new contacts), comparing
# every row with every sender: 2.4 times the webhook statement's database time with
# 4,000 contacts, and growing with them.
_CONTACT_OF_SENT = """
    CROSS JOIN LATERAL (
        SELECT id, wa_id, user_id, profile_name FROM contacts
        WHERE contacts.wa_id = sent.wa_id LIMIT 1
    ) AS found
"""
_PG_KNOWN = text(
    """
    SELECT found.wa_id, found.id, found.user_id, found.profile_name
    FROM unnest(CAST(:wa_ids AS varchar[])) AS sent(wa_id)
    """  # noqa: S608 (composed of module constants only)
    + _CONTACT_OF_SENT
)
_PG_INSERT_CONTACTS = text(
    """
    INSERT INTO contacts (wa_id, user_id, profile_name, attributes, created_at, updated_at)
    SELECT wa_id, NULL, profile_name, '{}'::jsonb, CAST(:now AS timestamptz),
           CAST(:now AS timestamptz)
    FROM unnest(CAST(:wa_ids AS varchar[]), CAST(:names AS varchar[])) AS n(wa_id, profile_name)
    ORDER BY wa_id
    ON CONFLICT DO NOTHING
    RETURNING wa_id, id
    """
)
_PG_INSERT_INBOUND = text(
    """
    INSERT INTO inbound_messages
        (wa_message_id, contact_id, kind, payload, received_at, sent_at, status, held)
    SELECT wa_message_id, contact_id, kind, CAST(payload AS jsonb), CAST(:now AS timestamptz),
           sent_at, :status, held
    FROM unnest(CAST(:wa_message_ids AS varchar[]), CAST(:contact_ids AS bigint[]),
                CAST(:kinds AS varchar[]), CAST(:payloads AS text[]),
                CAST(:sent_ats AS timestamptz[]), CAST(:helds AS boolean[]))
        AS n(wa_message_id, contact_id, kind, payload, sent_at, held)
    ON CONFLICT (wa_message_id) DO NOTHING
    RETURNING wa_message_id, id
    """
)


# The contacts of the senders of ``n`` (the messages), as ``c``: the lookup of
# :data:`_PG_KNOWN`, once per distinct sender.
_SENDERS_CONTACTS = (
    """
c AS (
    SELECT found.* FROM (SELECT DISTINCT wa_id FROM n) AS sent
"""  # noqa: S608 (composed of module constants only)
    + _CONTACT_OF_SENT
    + """
),
"""
)

# Senders of ``n`` (the messages) whose ``c`` row (their contact) would stay as it is:
# :meth:`storage.messages.KnownContact.unchanged` in SQL, for every one of their messages.
_UNCHANGED_SENDERS = """
unchanged AS (
    SELECT m.wa_id FROM n AS m JOIN c ON c.wa_id = m.wa_id
    GROUP BY m.wa_id
    HAVING bool_and(
        (m.user_id IS NULL OR m.user_id = '' OR c.user_id IS NOT NULL)
        AND (m.name IS NULL OR m.name = '' OR m.name = c.profile_name)
    )
),
"""

# The messages of known senders whose contact would not change (same user id if they
# send one, same name if they send one: KnownContact.unchanged), all of a contact's
# messages or none of them, inserted in arrival order. It returns the messages tried
# (what = 'o', with their contact) and those stored ('i', with their row id): one tried
# but not stored was stored before (a redelivery).
_PG_STORE_KNOWN = text(
    """
    WITH n AS (
        SELECT * FROM unnest(
            CAST(:wa_ids AS varchar[]), CAST(:user_ids AS varchar[]),
            CAST(:names AS varchar[]), CAST(:wa_message_ids AS varchar[]),
            CAST(:kinds AS varchar[]), CAST(:payloads AS text[]),
            CAST(:sent_ats AS timestamptz[]), CAST(:helds AS boolean[])
        ) WITH ORDINALITY
            AS n(wa_id, user_id, name, wa_message_id, kind, payload, sent_at, held, ord)
    ),
    """  # noqa: S608 (composed of module constants only)
    + _SENDERS_CONTACTS
    + _UNCHANGED_SENDERS
    + """
    ok AS (
        SELECT n.ord, n.wa_message_id, c.id AS contact_id, n.kind, n.payload, n.sent_at,
               n.held
        FROM n JOIN c ON c.wa_id = n.wa_id
        WHERE n.wa_id IN (SELECT wa_id FROM unchanged)
    ),
    ins AS (
        INSERT INTO inbound_messages
            (wa_message_id, contact_id, kind, payload, received_at, sent_at, status, held)
        SELECT wa_message_id, contact_id, kind, CAST(payload AS jsonb),
               CAST(:now AS timestamptz), sent_at, :status, held
        FROM ok ORDER BY ord
        ON CONFLICT (wa_message_id) DO NOTHING
        RETURNING wa_message_id, id
    )
    SELECT 'o' AS what, wa_message_id, contact_id AS id FROM ok
    UNION ALL SELECT 'i', wa_message_id, id FROM ins
    """
)


async def _pg_store_known(
    session: AsyncSession,
    fresh: list[tuple[Stored, IncomingMessage]],
    *,
    payloads: list[dict[str, Any]],
    helds: list[bool],
    contact_ids: list[int],
    stored: dict[str, int],
    now: dt.datetime,
) -> list[int]:
    """Store the messages of known, unchanged senders in one statement (filling
    ``contact_ids`` and ``stored``); the indexes of the messages left for the general
    path."""
    senders = [incoming.sender for _, incoming in fresh]
    messages = [incoming.message for _, incoming in fresh]
    result = await session.execute(
        _PG_STORE_KNOWN,
        {
            "wa_ids": [s.wa_id for s in senders],
            "user_ids": [s.user_id for s in senders],
            "names": [s.profile_name or s.username for s in senders],
            "wa_message_ids": [m.id for m in messages],
            "kinds": [m.kind for m in messages],
            "payloads": [json.dumps(p) for p in payloads],
            "sent_ats": [m.timestamp for m in messages],
            "helds": helds,
            "now": now,
            "status": InboundStatus.PENDING.value,
        },
    )
    tried: dict[str, int] = {}
    for what, key, row_id in result:
        if what == "o":
            tried[key] = int(row_id)
        elif what == "i":
            stored[key] = int(row_id)
    todo = []
    for i, message in enumerate(messages):
        contact_id = tried.get(message.id)
        if contact_id is None:
            todo.append(i)
        else:
            contact_ids[i] = contact_id
    return todo


# The group's messages in one statement, run on its own (it commits by itself): look the
# senders up, create the new ones (a phone number and a name), insert the messages, queue
# their read receipts and announce their contacts. A message whose sender changed (a new
# name, a user id), or is new in a way the statement does not cover, is not stored and
# goes the general way; a contact another process creates at this moment too. The read
# receipts are 'queued' written out, as storage.messages.QUEUED_SQL has it.
_PG_STORE_MESSAGES = (
    """
WITH n AS (
    SELECT * FROM unnest(
        $1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[],
        $6::text[], $7::timestamptz[], $8::text[]
    ) WITH ORDINALITY
        AS n(wa_id, user_id, name, wa_message_id, kind, payload, sent_at, receipt, ord)
),
"""  # noqa: S608 (composed of module constants only)
    + _SENDERS_CONTACTS
    + _UNCHANGED_SENDERS
    + """
newcomers AS (
    SELECT m.wa_id, min(m.name) AS name FROM n AS m
    WHERE NOT EXISTS (SELECT 1 FROM c WHERE c.wa_id = m.wa_id)
    GROUP BY m.wa_id
    HAVING bool_and(m.user_id IS NULL OR m.user_id = '')
       AND count(DISTINCT coalesce(m.name, '')) = 1
),
created AS (
    INSERT INTO contacts (wa_id, user_id, profile_name, attributes, created_at, updated_at)
    SELECT wa_id, NULL, name, '{}'::jsonb, $9, $9 FROM newcomers ORDER BY wa_id
    ON CONFLICT DO NOTHING
    RETURNING id, wa_id
),
ok AS (
    SELECT n.ord, n.wa_message_id, c.id AS contact_id, n.kind, n.payload, n.sent_at,
           n.receipt
    FROM n JOIN c ON c.wa_id = n.wa_id
    WHERE n.wa_id IN (SELECT wa_id FROM unchanged)
    UNION ALL
    SELECT n.ord, n.wa_message_id, created.id, n.kind, n.payload, n.sent_at, n.receipt
    FROM n JOIN created ON created.wa_id = n.wa_id
),
ins AS (
    INSERT INTO inbound_messages
        (wa_message_id, contact_id, kind, payload, received_at, sent_at, status, held)
    SELECT wa_message_id, contact_id, kind, CAST(payload AS jsonb), $9, sent_at, $10, false
    FROM ok ORDER BY ord
    ON CONFLICT (wa_message_id) DO NOTHING
    RETURNING wa_message_id, id, contact_id
),
receipts AS (
    INSERT INTO outbound_messages
        (contact_id, inbound_id, kind, payload, status, created_at, next_attempt_at,
         attempts, ambiguous_resends, pair_rate_strikes, in_flight)
    SELECT ins.contact_id, ins.id, $11, CAST(ok.receipt AS jsonb),
           'queued', $9, $9, 0, 0, 0, false
    FROM ins JOIN ok ON ok.wa_message_id = ins.wa_message_id
    WHERE ok.receipt IS NOT NULL
    ORDER BY ins.id
),
announced AS (
    SELECT pg_notify($12, a.ids) FROM (
        SELECT string_agg(DISTINCT contact_id::text, ',') AS ids FROM ins
    ) AS a
    WHERE $12::text IS NOT NULL AND a.ids IS NOT NULL
)
SELECT 'o' AS what, wa_message_id, contact_id FROM ok
UNION ALL SELECT 'i', wa_message_id, contact_id FROM ins
UNION ALL SELECT 'a', NULL, count(*) FROM announced
"""
)


def _one_statement_fits(fresh: list[tuple[Stored, IncomingMessage]], *, mark_read: bool) -> bool:
    """Whether :func:`_pg_store_messages` can take these messages: every sender has a
    phone number, no file waits to be downloaded (live mode), and the contacts fit in
    one ``NOTIFY``."""
    if not fresh or len(fresh) > IDS_PER_NOTIFY:
        return False
    return all(
        incoming.sender.wa_id and not (mark_read and _has_media(incoming)) for _, incoming in fresh
    )


async def _pg_store_messages(
    conn: asyncpg.Connection,
    fresh: list[tuple[Stored, IncomingMessage]],
    *,
    mark_read: bool,
    now: dt.datetime,
    announce: str | None,
) -> list[tuple[Stored, IncomingMessage]]:
    """Store ``fresh`` with :data:`_PG_STORE_MESSAGES` outside any transaction (the
    statement commits by itself, atomically), counting into their results; the
    messages left for the general way.

    Called only between transactions on ``conn``. A message stored before (a
    redelivery) counts as a duplicate, as on the general way."""
    senders = [incoming.sender for _, incoming in fresh]
    messages = [incoming.message for _, incoming in fresh]
    receipts = [
        json.dumps(mark_read_body(m.id)) if mark_read and m.kind != "reaction" else None
        for m in messages
    ]
    rows = await conn.fetch(
        _PG_STORE_MESSAGES,
        [s.wa_id for s in senders],
        [s.user_id for s in senders],
        [s.profile_name or s.username for s in senders],
        [m.id for m in messages],
        [m.kind for m in messages],
        [json.dumps(message_payload(m)) for m in messages],
        [m.timestamp for m in messages],
        receipts,
        now,
        InboundStatus.PENDING.value,
        MARK_READ,
        announce,
    )
    tried: set[str] = set()
    new: dict[str, int] = {}
    for what, wa_message_id, contact_id in rows:
        if what == "o":
            tried.add(wa_message_id)
        elif what == "i":
            new[wa_message_id] = int(contact_id)
    left = []
    for result, incoming in fresh:
        wa_message_id = incoming.message.id
        if wa_message_id not in tried:
            left.append((result, incoming))
        elif wa_message_id in new:
            result.contacts.add(new[wa_message_id])
            result.new_messages += 1
        else:
            result.duplicates += 1
    return left


def _is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _pg_known_contacts(
    session: AsyncSession, wa_ids: Iterable[str]
) -> dict[str, KnownContact]:
    """:func:`storage.messages.known_contacts` in one statement."""
    rows = await session.execute(_PG_KNOWN, {"wa_ids": sorted(set(wa_ids))})
    return {
        wa_id: KnownContact(contact_id, user_id, profile_name)
        for wa_id, contact_id, user_id, profile_name in rows
    }


async def _pg_insert_contacts(
    session: AsyncSession, new: Mapping[str, str | None], *, now: dt.datetime
) -> dict[str, int]:
    """:func:`storage.messages.insert_contacts` in one statement (a clash is left out)."""
    items = sorted(new.items())
    result = await session.execute(
        _PG_INSERT_CONTACTS,
        {"wa_ids": [w for w, _ in items], "names": [n for _, n in items], "now": now},
    )
    return {wa_id: int(contact_id) for wa_id, contact_id in result}


async def _pg_insert_inbound(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, int]:
    """:func:`storage.messages.insert_new_inbound` in one statement."""
    if not rows:
        return {}
    now = rows[0]["received_at"]
    assert all(row["received_at"] == now for row in rows)
    result = await session.execute(
        _PG_INSERT_INBOUND,
        {
            "wa_message_ids": [row["wa_message_id"] for row in rows],
            "contact_ids": [row["contact_id"] for row in rows],
            "kinds": [row["kind"] for row in rows],
            "payloads": [json.dumps(row["payload"]) for row in rows],
            "sent_ats": [row["sent_at"] for row in rows],
            "helds": [row["held"] for row in rows],
            "now": now,
            "status": InboundStatus.PENDING.value,
        },
    )
    return {wa_message_id: int(row_id) for wa_message_id, row_id in result}


def _has_media(incoming: IncomingMessage) -> bool:
    message = incoming.message
    return message.kind in MEDIA_KINDS and message.media is not None


def _download_row(
    incoming: IncomingMessage,
    inbound_id: int,
    contact_id: int,
    payload: dict[str, Any],
    now: dt.datetime,
) -> MediaDownload:
    sticker = incoming.raw.get("sticker")
    animated = isinstance(sticker, dict) and sticker.get("animated") is True
    return media_download_row(
        inbound_id=inbound_id,
        contact_id=contact_id,
        kind=incoming.message.kind,
        media=payload["media"],
        animated=animated,
        now=now,
    )
