"""Inbound and outbound message rows: the durable inbox and outbox."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    false,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UTCDateTime, utcnow
from storage.contacts import Contact
from storage.types import BigIntId, JSONDoc, str_enum


class InboundStatus(enum.StrEnum):
    """Processing state of an inbound message."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class OutboundStatus(enum.StrEnum):
    """Delivery state of an outbound message, in the order it may only advance."""

    SANDBOX = "sandbox"  # kept locally, never sent (no WhatsApp credentials / terminal chat)
    QUEUED = "queued"  # waiting, or claimed by a sender until next_attempt_at (its lease)
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class InboundMessage(Base):
    """One message a contact sent, stored before it is processed (once, in order)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (Index(None, "contact_id", "status", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    wa_message_id: Mapped[str] = mapped_column(String(256), unique=True)
    contact_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("contacts.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the user sent it (WhatsApp's timestamp); a contact's messages run in this order.
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[InboundStatus] = mapped_column(
        str_enum(InboundStatus, "inbound_status"), default=InboundStatus.PENDING
    )
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    # A media message waiting for its file (storage.MediaDownload): the engine neither
    # processes it nor any later message of the contact until the download releases it.
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


# A partial index is used only for a query whose condition is its very text, with the
# value written out (a bound parameter would not match it).
QUEUED_SQL = "status = 'queued'"


class OutboundMessage(Base):
    """One message for a contact, written in the transaction that decided to send it."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index(None, "contact_id", "id"),
        # The sender's claim (bot.whatsapp.outbox): the due rows in order, and "is an
        # earlier row of this contact still queued?" answered from a small index, not by
        # scanning every queued row for each (which made a claim quadratic in the backlog).
        Index(
            "ix_outbound_messages_queued_due",
            "next_attempt_at",
            "id",
            postgresql_where=text(QUEUED_SQL),
            sqlite_where=text(QUEUED_SQL),
        ),
        Index(
            "ix_outbound_messages_queued_contact",
            "contact_id",
            "id",
            postgresql_where=text(QUEUED_SQL),
            sqlite_where=text(QUEUED_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("contacts.id", ondelete="CASCADE")
    )
    inbound_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    status: Mapped[OutboundStatus] = mapped_column(
        str_enum(OutboundStatus, "outbound_status"), default=OutboundStatus.QUEUED
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    wa_message_id: Mapped[str | None] = mapped_column(String(256), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[int | None] = mapped_column(Integer)
    # Resends after a timeout whose outcome was unknown (Meta has no idempotency key).
    ambiguous_resends: Mapped[int] = mapped_column(Integer, default=0)
    # Consecutive pair-rate limits (131056) of this row: Meta's 4^X backoff counts them.
    pair_rate_strikes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set while a sender has the request out: found set later, its outcome is unknown.
    in_flight: Mapped[bool] = mapped_column(Boolean, default=False)
    media_id: Mapped[str | None] = mapped_column(String(256))
    # An approved template to send instead when the 24-hour customer window is closed.
    fallback: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    status_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class IgnoredUpdate(Base):
    """A webhook update Nyala accepted (200) but does not act on, kept for inspection."""

    __tablename__ = "ignored_updates"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    what: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)


# Storing inbound messages on the hot path: Core statements, no ORM objects --------------

_IN_CHUNK = 500  # values per IN (...) list


@dataclass(frozen=True, slots=True)
class KnownContact:
    """What storing a message needs to know about an existing contact."""

    id: int
    user_id: str | None
    profile_name: str | None

    def unchanged(self, user_id: str | None, profile_name: str | None) -> bool:
        """Whether :func:`storage.get_or_create_contact` would leave the row as it is."""
        return (not user_id or self.user_id is not None) and (
            not profile_name or profile_name == self.profile_name
        )


_DIALECT_INSERT: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}
_CONTACTS = cast(Table, Contact.__table__)
_KNOWN = select(
    _CONTACTS.c.wa_id, _CONTACTS.c.id, _CONTACTS.c.user_id, _CONTACTS.c.profile_name
).where(_CONTACTS.c.wa_id.in_(bindparam("wa_ids", expanding=True)))


async def known_contacts(session: AsyncSession, wa_ids: Iterable[str]) -> dict[str, KnownContact]:
    """The existing contacts with these phone digits (one query per 500)."""
    wanted = sorted(set(wa_ids))
    found: dict[str, KnownContact] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = await session.execute(_KNOWN, {"wa_ids": wanted[start : start + _IN_CHUNK]})
        for wa_id, contact_id, user_id, profile_name in rows:
            found[wa_id] = KnownContact(contact_id, user_id, profile_name)
    return found


async def insert_contacts(
    session: AsyncSession, new: Mapping[str, str | None], *, now: dt.datetime
) -> dict[str, int]:
    """Insert contacts known by phone digits only (``wa_id`` → profile name); returns the
    ids of those inserted. One that clashes with an existing row (another process just
    stored it) is left out, for :func:`storage.get_or_create_contact` to resolve."""
    dialect_insert = _DIALECT_INSERT[session.get_bind().dialect.name]
    items = sorted(new.items())
    inserted: dict[str, int] = {}
    for start in range(0, len(items), _IN_CHUNK):
        rows: list[dict[str, Any]] = [
            {"wa_id": wa_id, "user_id": None, "profile_name": name, "attributes": {},
             "created_at": now, "updated_at": now}
            for wa_id, name in items[start : start + _IN_CHUNK]
        ]  # fmt: skip
        result = await session.execute(
            dialect_insert(_CONTACTS)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(_CONTACTS.c.wa_id, _CONTACTS.c.id)
        )
        inserted.update({wa_id: int(contact_id) for wa_id, contact_id in result})
    return inserted


_INBOUND = cast(Table, InboundMessage.__table__)
# INSERT ... ON CONFLICT (wa_message_id) DO NOTHING RETURNING id, per dialect.
_INSERT_INBOUND = {
    name: dialect_insert(_INBOUND)
    .on_conflict_do_nothing(index_elements=[_INBOUND.c.wa_message_id])
    .returning(_INBOUND.c.id)
    for name, dialect_insert in _DIALECT_INSERT.items()
}


async def insert_new_inbound(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert inbound rows, skipping WhatsApp message ids stored before; returns the new
    rows' ids by message id (one ``INSERT … ON CONFLICT DO NOTHING RETURNING`` per 500)."""
    dialect_insert = _DIALECT_INSERT[session.get_bind().dialect.name]
    stored: dict[str, int] = {}
    for start in range(0, len(rows), _IN_CHUNK):
        result = await session.execute(
            dialect_insert(_INBOUND)
            .values(rows[start : start + _IN_CHUNK])
            .on_conflict_do_nothing(index_elements=[_INBOUND.c.wa_message_id])
            .returning(_INBOUND.c.wa_message_id, _INBOUND.c.id)
        )
        stored.update({wa_message_id: int(row_id) for wa_message_id, row_id in result})
    return stored


async def insert_inbound(
    session: AsyncSession,
    *,
    wa_message_id: str,
    contact_id: int,
    kind: str,
    payload: dict[str, Any],
    received_at: dt.datetime,
    sent_at: dt.datetime | None,
) -> int | None:
    """Insert one pending inbound message; its id, or ``None`` if the id was stored before.

    One statement (``INSERT ... ON CONFLICT DO NOTHING RETURNING id``).
    """
    values = {
        "wa_message_id": wa_message_id,
        "contact_id": contact_id,
        "kind": kind,
        "payload": payload,
        "received_at": received_at,
        "sent_at": sent_at,
        "status": InboundStatus.PENDING,
    }
    statement = _INSERT_INBOUND[session.get_bind().dialect.name]
    inserted = await session.scalar(statement, values)
    return None if inserted is None else int(inserted)
