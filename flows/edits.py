"""Edits and deletions of messages the user sent: what the engine does before a turn.

WhatsApp lets a user edit a message (for 15 minutes) or delete it for everyone; both
arrive as messages of their own (kinds ``"edit"`` and ``"revoke"``) naming the message
they change in :attr:`~flows.messages.UserMessage.refers_to`. What a customer expects:

* A deleted message gets no reply at all. If the bot has not processed it yet, it never
  will: the user took it back. One already answered stays answered (a reply cannot be
  unsent); the deletion is stored, nothing else happens, analytics are untouched.
* An edit of a message not processed yet replaces its content: the bot answers what the
  user now means, once. An edit of a message already answered is the user's next answer
  (the engine treats its text as typed), and an edit whose content WhatsApp did not show
  (older API versions send only "unsupported: edit") gets one short request to send it
  again (copy ``edit.unreadable``), never twice in a row.

The look-ahead costs one indexed query, and only when more than one message of the
contact is pending: a lone message is processed exactly as before.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.messages import MEDIA_KINDS, UserMessage
from storage import InboundMessage, InboundStatus, OutboundMessage

__all__ = ["AMENDING_KINDS", "amend_before_turn", "last_reply_was", "pending_amendments"]

log = logging.getLogger("nyala.flows")

AMENDING_KINDS = ("edit", "revoke")
"""Message kinds that change an earlier message instead of saying something new."""


async def pending_amendments(
    session: AsyncSession, contact_ids: Sequence[int]
) -> dict[int, list[InboundMessage]]:
    """The pending edits and deletions of each of ``contact_ids``, oldest first: one query
    for a batch of turns (the contacts' locks are held), before any turn changed a row,
    so no turn's writes are flushed early to ask for them."""
    found: dict[int, list[InboundMessage]] = {}
    if not contact_ids:
        return found
    rows = await session.scalars(
        select(InboundMessage)
        .where(
            InboundMessage.contact_id.in_(list(contact_ids)),
            InboundMessage.status == InboundStatus.PENDING,
            InboundMessage.kind.in_(AMENDING_KINDS),
        )
        .order_by(InboundMessage.id)
    )
    for row in rows:
        found.setdefault(row.contact_id, []).append(row)
    return found


def amend_before_turn(
    inbound: InboundMessage,
    message: UserMessage,
    *,
    amendments: Sequence[InboundMessage],
    more_pending: bool,
    now: dt.datetime,
) -> UserMessage | None:
    """The message to run a turn with, or ``None`` when it needs no turn at all.

    A deletion, or a message the user deleted before it was processed, is marked done
    here with no reply. A message the user edited before it was processed gets the
    edited content (the edits it used are marked done, so they are not answered again).

    Args:
        inbound: the contact's oldest pending row, about to be processed.
        message: its content.
        amendments: the contact's pending edits and deletions, oldest first
            (:func:`pending_amendments`).
        more_pending: whether other messages of the contact wait (else no look-ahead).
        now: the time to mark rows processed at.
    """
    if message.kind == "revoke":
        log.info(
            "message %s deleted by the user (%s); no reply",
            inbound.id,
            message.refers_to or "which one WhatsApp did not say",
        )
        _done(inbound, now)
        return None
    if not more_pending or message.kind in AMENDING_KINDS:
        return message
    later = [
        row
        for row in amendments
        if row.id != inbound.id and row.payload.get("refers_to") == inbound.wa_message_id
    ]
    if any(row.kind == "revoke" for row in later):
        log.info("message %s was deleted by the user before it was processed", inbound.id)
        _done(inbound, now)
        return None
    edits = [(row, UserMessage.from_payload(row.payload)) for row in later]
    usable = [(row, edit) for row, edit in edits if edit.text]
    if not usable:
        return message
    last = usable[-1][1]
    edited = _with_content(message, last)
    # What was processed is what the user meant; the original wording stays on record,
    # and whatever the channel added to the row (a stored file) stays with it.
    payload = {**inbound.payload, **edited.to_payload(), "edited_from": message.text}
    if edited.reply_id is None:
        payload.pop("reply_id", None)
    inbound.payload = payload
    for row, _ in usable:
        _done(row, now)
    log.info("message %s was edited before it was processed; using the edit", inbound.id)
    return edited


async def last_reply_was(session: AsyncSession, contact_id: int, text: str) -> bool:
    """Whether the contact's latest outbound message is the text ``text`` (so the same
    notice is not sent twice in a row)."""
    latest = (
        await session.execute(
            select(OutboundMessage.kind, OutboundMessage.payload)
            .where(OutboundMessage.contact_id == contact_id)
            .order_by(OutboundMessage.id.desc())
            .limit(1)
        )
    ).first()
    return latest is not None and latest[0] == "text" and latest[1].get("body") == text


def _with_content(original: UserMessage, edit: UserMessage) -> UserMessage:
    """``original`` saying what ``edit`` says: a new text, or a media file's new caption."""
    if original.kind in MEDIA_KINDS and original.media is not None:
        media = dataclasses.replace(original.media, caption=edit.text)
        return dataclasses.replace(original, text=edit.text, media=media)
    return dataclasses.replace(original, kind="text", text=edit.text, reply_id=None)


def _done(row: InboundMessage, now: dt.datetime) -> None:
    row.status = InboundStatus.DONE
    row.processed_at = now
