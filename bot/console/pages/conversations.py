"""Conversations handed to a person: read the history, reply as the business, and give
the conversation back to the bot."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from bot.console.accounts import audit
from bot.console.page import ContactFact
from bot.console.transcript import transcript
from bot.console.web import db_of, me, pages_of, redirect, render, requires, settings_of
from flows.engine import release_in
from flows.messages import TEXT_MAX, Text, reply_kind, reply_to_payload
from storage import (
    Contact,
    Conversation,
    OutboundMessage,
    OutboundStatus,
    lock_contact,
    utcnow,
)
from storage.operators import OperatorRole

routes = web.RouteTableDef()
LIST_LIMIT = 200


def _contact_id(request: web.Request) -> int:
    raw = request.match_info["contact_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound
    return int(raw)


@routes.get("/conversations")
async def conversations_list(request: web.Request) -> web.StreamResponse:
    """Conversations waiting for a person, longest waiting first."""
    async with db_of(request).read() as session:
        rows = list(
            (
                await session.execute(
                    select(Conversation, Contact)
                    .join(Contact, Contact.id == Conversation.contact_id)
                    .where(Conversation.handed_off_at.is_not(None))
                    .order_by(Conversation.handed_off_at)
                    .limit(LIST_LIMIT)
                )
            ).all()
        )
    return render(
        request,
        "conversations.html",
        {"title": "Conversations", "rows": rows, "limit": LIST_LIMIT},
    )


@routes.get("/conversations/{contact_id}")
async def conversation_detail(request: web.Request) -> web.StreamResponse:
    """One contact's conversation, with the reply box while a person has it."""
    contact_id = _contact_id(request)
    async with db_of(request).read() as session:
        contact = await session.get(Contact, contact_id)
        if contact is None:
            raise web.HTTPNotFound
        conversation = await session.get(Conversation, contact_id)
        facts: list[ContactFact] = []
        for page in pages_of(request):
            if page.contact_facts is not None:
                facts.extend(await page.contact_facts(session, contact_id))
        bubbles = await transcript(session, contact_id)
    return render(
        request,
        "conversation.html",
        {
            "title": contact.display,
            "contact": contact,
            "conversation": conversation,
            "facts": facts,
            "bubbles": bubbles,
            "last": bubbles[-1].id if bubbles else "",
            "sent": request.query.get("sent") == "1",
        },
    )


@routes.post("/conversations/{contact_id}/reply")
@requires(OperatorRole.AGENT)
async def reply(request: web.Request) -> web.StreamResponse:
    """Send a text to the contact as the business (queued like the bot's replies)."""
    contact_id = _contact_id(request)
    back = f"/console/conversations/{contact_id}"
    form = await request.post()
    body = str(form.get("body") or "").strip()
    if not body:
        return redirect(back, "Type a message first.", kind="error")
    if len(body) > TEXT_MAX:
        return redirect(
            back, f"A WhatsApp message has at most {TEXT_MAX} characters.", kind="error"
        )
    sandbox = settings_of(request).sandbox
    async with db_of(request).transaction() as session:
        if await session.get(Contact, contact_id) is None:
            raise web.HTTPNotFound
        await lock_contact(session, contact_id)
        now = utcnow()
        message = Text(body)
        session.add(
            OutboundMessage(
                contact_id=contact_id,
                inbound_id=None,
                kind=reply_kind(message),
                payload=reply_to_payload(message),
                status=OutboundStatus.SANDBOX if sandbox else OutboundStatus.QUEUED,
                created_at=now,
                next_attempt_at=None if sandbox else now,
            )
        )
        audit(session, me(request).username, "reply_conversation", f"contact {contact_id}", body)
    where = "stored (sandbox)" if sandbox else "queued for WhatsApp"
    return redirect(back + "?sent=1", f"Reply {where}.")


@routes.post("/conversations/{contact_id}/release")
@requires(OperatorRole.AGENT)
async def release(request: web.Request) -> web.StreamResponse:
    """Give the conversation back to the bot."""
    contact_id = _contact_id(request)
    async with db_of(request).transaction() as session:
        released = await release_in(session, contact_id)
        if released:
            audit(session, me(request).username, "release_conversation", f"contact {contact_id}")
    if not released:
        return redirect(
            f"/console/conversations/{contact_id}",
            "This conversation is already with the bot.",
            kind="error",
        )
    return redirect("/console/conversations", "The conversation is back with the bot.")
