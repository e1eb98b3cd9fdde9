"""Conversations handed to a person: read the history, take one over from the bot, reply
as the business, and give the conversation back to the bot.

An agent writes only where a person is expected (the bot handed the conversation over, or
an operator took it): a text dropped into a running flow would confuse the customer and
the bot alike. Taking, replying and releasing are audited.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from bot.console.accounts import audit
from bot.console.page import ContactFact
from bot.console.pages.media import previews
from bot.console.transcript import transcript
from bot.console.web import (
    db_of,
    id_in_path,
    me,
    pages_of,
    redirect,
    render,
    requires,
    settings_of,
)
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
    contact_id = id_in_path(request, "contact_id")
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
        # The customer's photos and documents, shown in their bubbles.
        media = await previews(
            session, (int(b.id.removeprefix("in-")) for b in bubbles if b.side == "user")
        )
    return render(
        request,
        "conversation.html",
        {
            "title": contact.display,
            "contact": contact,
            "conversation": conversation,
            "facts": facts,
            "bubbles": bubbles,
            "media": media,
            "last": bubbles[-1].id if bubbles else "",
            "sent": request.query.get("sent") == "1",
        },
    )


def _with_a_person(conversation: Conversation | None) -> bool:
    """Whether a person is expected to answer: the bot handed the conversation over, or an
    operator took it. Anywhere else an agent's text would cut into the bot's flow."""
    return conversation is not None and conversation.handed_off_at is not None


@routes.post("/conversations/{contact_id}/reply")
@requires(OperatorRole.AGENT)
async def reply(request: web.Request) -> web.StreamResponse:
    """Send a text to the contact as the business (queued like the bot's replies).

    Only while a person has the conversation (else nothing is stored and the page says
    why); every reply is audited with its text. A sandbox contact's reply is stored,
    never sent, whatever mode the server runs in.
    """
    contact_id = id_in_path(request, "contact_id")
    back = f"/console/conversations/{contact_id}"
    form = await request.post()
    body = str(form.get("body") or "").strip()
    if not body:
        return redirect(back, "Type a message first.", kind="error")
    if len(body) > TEXT_MAX:
        return redirect(
            back, f"A WhatsApp message has at most {TEXT_MAX} characters.", kind="error"
        )
    async with db_of(request).transaction() as session:
        contact = await session.get(Contact, contact_id)
        if contact is None:
            raise web.HTTPNotFound
        await lock_contact(session, contact_id)
        # Read under the lock: a release that committed just before must win.
        conversation = await session.get(Conversation, contact_id, populate_existing=True)
        if not _with_a_person(conversation):
            return redirect(
                back,
                "Not sent: the bot has this conversation. Take it over first, then reply.",
                kind="error",
            )
        sandbox = settings_of(request).sandbox or contact.sandbox
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


@routes.post("/conversations/{contact_id}/take")
@requires(OperatorRole.AGENT)
async def take(request: web.Request) -> web.StreamResponse:
    """Take the conversation from the bot (audited): the bot stays quiet and the agent may
    reply until it is given back. The flow keeps its place for when the bot resumes."""
    contact_id = id_in_path(request, "contact_id")
    back = f"/console/conversations/{contact_id}"
    username = me(request).username
    async with db_of(request).transaction() as session:
        if await session.get(Contact, contact_id) is None:
            raise web.HTTPNotFound
        await lock_contact(session, contact_id)
        conversation = await session.get(Conversation, contact_id, populate_existing=True)
        if _with_a_person(conversation):
            return redirect(back, "A person has this conversation already.", kind="error")
        if conversation is None:
            conversation = Conversation(contact_id=contact_id, data={}, retry_count=0)
            session.add(conversation)
        conversation.handed_off_at = utcnow()
        conversation.handoff_reason = f"taken over by {username} in the console"
        audit(session, username, "take_conversation", f"contact {contact_id}")
    return redirect(
        back, "You have this conversation: the bot stays quiet until you give it back."
    )


@routes.post("/conversations/{contact_id}/release")
@requires(OperatorRole.AGENT)
async def release(request: web.Request) -> web.StreamResponse:
    """Give the conversation back to the bot."""
    contact_id = id_in_path(request, "contact_id")
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
