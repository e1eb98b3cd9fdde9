"""A contact's conversation as chat bubbles: what they sent and what the business sent."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.messages import (
    Buttons,
    Document,
    ListMenu,
    LocationPin,
    Option,
    Reply,
    Template,
    Text,
    UserMessage,
    reply_from_payload,
)
from storage import InboundMessage, OutboundMessage

MARK_READ = "mark_read"  # the outbox's read receipts: not messages

_MONO = re.compile(r"```(.+?)```", re.DOTALL)
# WhatsApp's rule: a marker opens before a non-space and closes after one, on one line,
# not inside a word ("snake_case_name" and "2*3*4" stay as typed).
_STYLES = tuple(
    (re.compile(rf"(?<![\w{marker}]){marker}(?=\S)([^\n]*?\S){marker}(?![\w{marker}])"), tag)
    for marker, tag in ((r"\*", "strong"), ("_", "em"), ("~", "s"))
)


def whatsapp_html(text: str) -> Markup:
    """``text`` as WhatsApp shows it: *bold*, _italic_, ~strike~ and ```mono```.

    The text is escaped first and the markup applied to the escaped text, so whatever a
    customer typed can only ever become these four tags (never HTML of their own).
    """
    parts = _MONO.split(str(escape(text)))
    html: list[str] = []
    for index, part in enumerate(parts):
        if index % 2:  # inside ```…```: shown as typed, no other formatting
            html.append(f'<span class="wa-mono">{part}</span>')
            continue
        styled = part
        for pattern, tag in _STYLES:
            styled = pattern.sub(rf"<{tag}>\1</{tag}>", styled)
        html.append(styled)
    return Markup("".join(html))  # noqa: S704 - escaped above; only our four tags added


@dataclass(frozen=True, slots=True)
class Bubble:
    """One message as the chat shows it."""

    id: str  # "in-12" / "out-34": unique and ordered within a transcript
    side: str  # "user" or "bot"
    at: dt.datetime
    kind: str
    text: str = ""
    header: str | None = None
    footer: str | None = None
    options: tuple[Option, ...] = field(default=())
    button: str | None = None
    section_title: str | None = None
    file_id: int | None = None
    filename: str | None = None
    map_url: str | None = None
    status: str | None = None
    error: str | None = None

    @property
    def html(self) -> Markup:
        """The body with WhatsApp's formatting applied (see :func:`whatsapp_html`)."""
        return whatsapp_html(self.text)


def reply_bubble(
    bubble_id: str,
    reply: Reply,
    at: dt.datetime,
    *,
    status: str | None = None,
    error: str | None = None,
) -> Bubble:
    """The bubble of a reply the business sends (or would send: previews)."""
    base: dict[str, Any] = {
        "id": bubble_id,
        "side": "bot",
        "at": at,
        "status": status,
        "error": error,
    }
    if isinstance(reply, Text):
        return Bubble(kind="text", text=reply.body, **base)
    if isinstance(reply, Buttons):
        return Bubble(
            kind="buttons",
            text=reply.body,
            header=reply.header,
            footer=reply.footer,
            options=reply.options,
            **base,
        )
    if isinstance(reply, ListMenu):
        return Bubble(
            kind="list",
            text=reply.body,
            header=reply.header,
            footer=reply.footer,
            options=reply.options,
            button=reply.button,
            section_title=reply.section_title,
            **base,
        )
    if isinstance(reply, Document):
        return Bubble(
            kind="document",
            text=reply.caption or "",
            file_id=reply.file_id,
            filename=reply.filename,
            **base,
        )
    if isinstance(reply, LocationPin):
        label = reply.name or "Location"
        return Bubble(
            kind="location",
            text=f"📍 {label}" + (f"\n{reply.address}" if reply.address else ""),
            map_url=f"https://maps.google.com/?q={reply.latitude},{reply.longitude}",
            **base,
        )
    assert isinstance(reply, Template)
    return Bubble(
        kind="template",
        text=reply.fallback or reply.name,
        options=reply.buttons,
        footer=f"template {reply.name}",
        **base,
    )


def _user_bubble(row: InboundMessage) -> Bubble:
    try:
        message = UserMessage.from_payload(row.payload)
        text = message.display
    except (KeyError, TypeError, ValueError):
        text = f"[{row.kind}]"
    return Bubble(
        id=f"in-{row.id}",
        side="user",
        at=row.sent_at or row.received_at,
        kind=row.kind,
        text=text,
        status=row.status.value,
        error=row.error,
    )


async def transcript(session: AsyncSession, contact_id: int, *, limit: int = 80) -> list[Bubble]:
    """The contact's latest ``limit`` messages each way, oldest first (two indexed
    queries, whatever the table sizes)."""
    inbound = await session.scalars(
        select(InboundMessage)
        .where(InboundMessage.contact_id == contact_id)
        .order_by(InboundMessage.id.desc())
        .limit(limit)
    )
    outbound = await session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.contact_id == contact_id, OutboundMessage.kind != MARK_READ)
        .order_by(OutboundMessage.id.desc())
        .limit(limit)
    )
    bubbles = [_user_bubble(row) for row in inbound]
    for row in outbound:
        try:
            reply = reply_from_payload(row.kind, row.payload)
        except (KeyError, TypeError, ValueError):
            bubbles.append(
                Bubble(
                    id=f"out-{row.id}",
                    side="bot",
                    at=row.created_at,
                    kind=row.kind,
                    text=f"[{row.kind}]",
                    status=row.status.value,
                )
            )
            continue
        bubbles.append(
            reply_bubble(
                f"out-{row.id}",
                reply,
                row.created_at,
                status=row.status.value,
                error=row.last_error,
            )
        )
    # A reply is stored in the same transaction as the message it answers, so it never
    # sorts before it; ties (same instant) put the user's message first.
    bubbles.sort(key=lambda b: (b.at, 0 if b.side == "user" else 1, int(b.id.split("-")[1])))
    return bubbles[-limit:]
