"""The chat simulator: talk to the bot in the browser as a test contact (sandbox).

It runs the same engine as WhatsApp and ``nyala chat`` (replies stored as ``sandbox``
rows, never sent), so the conversation shows up in analytics like any other. Buttons and
lists are drawn the way WhatsApp draws them and answer when clicked.
"""

from __future__ import annotations

import mimetypes
import re
import secrets

from aiohttp import web
from sqlalchemy import select

from bot.console.accounts import audit
from bot.console.transcript import transcript
from bot.console.web import (
    db_of,
    flow_app_of,
    me,
    notice,
    redirect,
    render,
    requires,
    runtime_of,
)
from flows import ContactRef, Engine, UserMessage
from flows.messages import Media, MessageKind
from storage import Contact, Conversation, StoredFile
from storage.operators import OperatorRole

routes = web.RouteTableDef()
MAX_UPLOAD = 10 * 1024 * 1024
TEXT_LIMIT = 4096
_PHONE = re.compile(r"\d{7,15}")


def default_phone(operator_id: int) -> str:
    """Each operator's own test number: 1555 and the id (fictional +1-555 numbers)."""
    return f"1555{operator_id % 10_000_000:07d}"


def _phone(request: web.Request, value: str | None) -> str:
    digits = re.sub(r"[\s\-()+]", "", value or "")
    if digits and _PHONE.fullmatch(digits):
        return digits
    if digits:
        notice(request, f"Ignored phone {value!r}: use 7 to 15 digits.")
    return default_phone(me(request).operator_id)


def _back(phone: str) -> str:
    return f"/console/simulator?phone={phone}"


@routes.get("/simulator")
async def simulator_page(request: web.Request) -> web.StreamResponse:
    """The chat as a WhatsApp-like phone."""
    phone = _phone(request, request.query.get("phone"))
    async with db_of(request).read() as session:
        contact_id = await session.scalar(select(Contact.id).where(Contact.wa_id == phone))
        bubbles = await transcript(session, contact_id, limit=60) if contact_id else []
        conversation = await session.get(Conversation, contact_id) if contact_id else None
    return render(
        request,
        "simulator.html",
        {
            "title": "Chat simulator",
            "phone": phone,
            "contact_id": contact_id,
            "bubbles": bubbles,
            "last": bubbles[-1].id if bubbles else "",
            "conversation": conversation,
            "bot": flow_app_of(request).name,
        },
    )


async def _upload(request: web.Request, field: web.FileField) -> UserMessage | None:
    content = field.file.read(MAX_UPLOAD + 1)
    if len(content) > MAX_UPLOAD:
        return None
    name = re.sub(r"[^\w.\- ]", "_", field.filename or "file")[:120]
    mime = field.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    async with db_of(request).transaction() as session:
        row = StoredFile.from_bytes(name, mime, content)
        session.add(row)
        await session.flush()
    kind: MessageKind = "image" if mime.startswith("image/") else "document"
    media = Media(
        id=f"stored:{row.id}",
        mime_type=mime,
        sha256=row.sha256,
        filename=name,
        size=len(content),
    )
    return UserMessage(id=_message_id(), kind=kind, media=media)


def _message_id() -> str:
    return f"wamid.console.{secrets.token_hex(12)}"


@routes.post("/simulator/send")
@requires(OperatorRole.AGENT)
async def simulator_send(request: web.Request) -> web.StreamResponse:
    """Send what was typed, tapped or attached to the bot; the replies show on the page."""
    form = await request.post()
    phone = _phone(request, str(form.get("phone") or ""))
    reply_id = str(form.get("reply_id") or "")[:256]
    title = str(form.get("title") or "")[:TEXT_LIMIT]
    text = str(form.get("text") or "").strip()[:TEXT_LIMIT]
    upload = form.get("file")
    message: UserMessage | None
    if reply_id:
        message = UserMessage(id=_message_id(), kind="reply", reply_id=reply_id, text=title)
    elif isinstance(upload, web.FileField) and upload.filename:
        message = await _upload(request, upload)
        if message is None:
            return redirect(_back(phone), "Files up to 10 MB only.", kind="error")
    elif text:
        message = UserMessage(id=_message_id(), kind="text", text=text)
    else:
        return redirect(_back(phone))
    # The app's services as the server started them; the simulator's replies are always
    # sandboxed (never sent), whatever mode the server runs in.
    services = runtime_of(request).services
    engine = Engine(db_of(request), flow_app_of(request), sandbox=True, services=services)
    contact = ContactRef(wa_id=phone, profile_name=f"{me(request).username} (simulator)")
    await engine.handle(contact, message)
    return redirect(_back(phone) + "&sent=1")


@routes.post("/simulator/reset")
@requires(OperatorRole.AGENT)
async def simulator_reset(request: web.Request) -> web.StreamResponse:
    """Start over: the test contact's conversation is forgotten (its history stays in
    analytics) and given back to the bot if a person had it."""
    form = await request.post()
    phone = _phone(request, str(form.get("phone") or ""))
    async with db_of(request).transaction() as session:
        contact_id = await session.scalar(select(Contact.id).where(Contact.wa_id == phone))
        conversation = await session.get(Conversation, contact_id) if contact_id else None
        if conversation is not None:
            conversation.clear_flow()
            conversation.handed_off_at = None
            conversation.handoff_reason = None
        audit(session, me(request).username, "reset_simulator", f"contact +{phone}")
    return redirect(_back(phone), "Started over: the bot has forgotten where you were.")
