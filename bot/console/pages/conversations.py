"""Conversations handed to a person: read the history, take one over from the bot, reply
as the business, and give the conversation back to the bot.

An agent writes only where a person is expected (the bot handed the conversation over, or
an operator took it): a text dropped into a running flow would confuse the customer and
the bot alike. Taking, replying and releasing are audited.

A reply is a business-initiated message as far as WhatsApp is concerned once the
customer's 24-hour window has closed, so it goes through :func:`flows.outreach.queue_outreach`:
inside the window the text (with the app's agent template as its fallback), outside it the
app's agent template (:attr:`flows.App.agent_template`) with the text as a parameter, and
with no template configured, nothing (the page says why). The page shows the window, and
the notice after sending says what was really queued.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from aiohttp import web
from sqlalchemy import select

from bot.console.accounts import audit
from bot.console.formatting import when
from bot.console.page import ContactFact
from bot.console.pages.media import previews
from bot.console.transcript import transcript
from bot.console.web import (
    db_of,
    flow_app_of,
    id_in_path,
    me,
    pages_of,
    redirect,
    render,
    requires,
    settings_of,
)
from flows import App
from flows.engine import release_in
from flows.messages import TEXT_MAX, Template, Text, shorten_body, template_parameter
from flows.outreach import (
    TEMPLATE_BODY_MAX,
    Delivery,
    TemplateSpec,
    Window,
    approved_template,
    contact_window,
    queue_outreach,
)
from storage import Contact, Conversation, lock_contact, utcnow
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
        window = await contact_window(session, contact_id, utcnow())
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
            "window": window,
            "window_text": window_sentence(window, flow_app_of(request)),
        },
    )


def _with_a_person(conversation: Conversation | None) -> bool:
    """Whether a person is expected to answer: the bot handed the conversation over, or an
    operator took it. Anywhere else an agent's text would cut into the bot's flow."""
    return conversation is not None and conversation.handed_off_at is not None


def local_time(value: dt.datetime, tz: dt.tzinfo) -> str:
    """``2026-12-07 14:03 CAT``: a time in the business's timezone, named."""
    return f"{when(value, tz)} {value.astimezone(tz).tzname() or ''}".rstrip()


def window_sentence(window: Window, app: App) -> str:
    """What the conversation page says about the 24-hour window, and what a reply becomes."""
    ref = app.agent_template
    template = ref.spec().name if ref is not None else ""
    if window.open and window.closes_at is not None:
        fallback = (
            f"; if it closes before a reply goes, the template {template} goes instead"
            if template
            else "; after that they cannot be sent (this app names no agent template)"
        )
        return (
            "WhatsApp's 24-hour window is open until "
            f"{local_time(window.closes_at, app.timezone)}: replies go as typed{fallback}."
        )
    closed = (
        f"closed on {local_time(window.closes_at, app.timezone)}"
        if window.closes_at is not None
        else "closed (the customer has not written yet)"
    )
    then = (
        f"replies go inside the approved template {template}."
        if template
        else "WhatsApp accepts only an approved template, and this app names none for "
        "agent replies, so replies cannot be sent until the customer writes again."
    )
    return f"WhatsApp's 24-hour window is {closed}: {then}"


def reply_values(contact: Contact, app: App, body: str) -> dict[str, str]:
    """What an agent template's parameters may name: the customer's names, the
    business, and the reply (one line, as a template parameter must be)."""
    full = (contact.profile_name or "").strip()
    return {
        "first_name": full.split()[0] if full else "there",
        "customer_name": full or "there",
        "business": app.name,
        "message": template_parameter(body),
    }


def fitted(spec: TemplateSpec, values: Mapping[str, str]) -> tuple[Template, int]:
    """The template with the reply in it, and by how many characters its body is over
    :data:`TEMPLATE_BODY_MAX` (0: it fits)."""
    over = len(spec.filled_text(values)) - TEMPLATE_BODY_MAX
    return approved_template(spec, values), max(over, 0)


def outcome_sentence(
    delivery: Delivery, window: Window, app: App, template: str, *, sandbox: bool
) -> str:
    """The notice after a reply: what was queued, and why."""
    where = "stored (sandbox)" if sandbox else "queued for WhatsApp"
    if delivery is Delivery.TEMPLATE:
        why = (
            f"the 24-hour window closed on {local_time(window.closes_at, app.timezone)}"
            if window.closes_at is not None
            else "the customer has not written yet (no 24-hour window)"
        )
        return f"Reply {where} as the template {template} because {why}."
    until = local_time(window.closes_at, app.timezone) if window.closes_at else ""
    then = (
        f"; if it closes before the reply goes, the template {template} goes instead"
        if template
        else "; if it closes first, WhatsApp refuses the reply (no agent template)"
    )
    return f"Reply {where}: the 24-hour window is open until {until}{then}."


@routes.post("/conversations/{contact_id}/reply")
@requires(OperatorRole.AGENT)
async def reply(request: web.Request) -> web.StreamResponse:
    """Send a text to the contact as the business (queued like the bot's replies).

    Only while a person has the conversation (else nothing is stored and the page says
    why); every reply is audited with its text. Inside the 24-hour window the text is
    queued with the app's agent template as its fallback; outside it the template with
    the text in it, or nothing if the app has no agent template or the text does not fit
    in it. A sandbox contact's reply is stored, never sent, whatever mode the server
    runs in.
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
    app = flow_app_of(request)
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
        now = utcnow()
        # The customer's last message may have committed just before the lock.
        window = await contact_window(session, contact_id, now)
        spec = app.agent_template.spec() if app.agent_template is not None else None
        template: Template | None = None
        if spec is not None:
            values = reply_values(contact, app, body)
            template, over = fitted(spec, values)
            if over and not window.open:
                return redirect(
                    back,
                    f"Not sent: outside the 24-hour window the reply goes inside the "
                    f"template {spec.name}, which holds at most {TEMPLATE_BODY_MAX} "
                    f"characters with its own text. Shorten the reply by {over}.",
                    kind="error",
                )
            if over:  # the fallback only: the customer still gets the whole text in time
                short = shorten_body(values["message"], max(len(values["message"]) - over - 1, 1))
                template, _ = fitted(spec, {**values, "message": short})
        elif not window.open:
            return redirect(
                back,
                "Not sent: the customer's 24-hour window is closed, and WhatsApp then "
                "accepts only an approved template, but this app names none for agent "
                "replies (App agent_template). Wait until the customer writes again.",
                kind="error",
            )
        sandbox = settings_of(request).sandbox or window.sandbox
        delivery = await queue_outreach(
            session, contact_id, [Text(body)], template=template, now=now, sandbox=sandbox
        )
        audit(session, me(request).username, "reply_conversation", f"contact {contact_id}", body)
    said = outcome_sentence(delivery, window, app, spec.name if spec else "", sandbox=sandbox)
    return redirect(back + "?sent=1", said)


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
