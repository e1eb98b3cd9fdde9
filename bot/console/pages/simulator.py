"""The chat simulator: talk to the bot in the browser as a sandbox contact.

It runs the same engine as WhatsApp and ``nyala chat`` (replies stored as ``sandbox``
rows, never sent). Buttons and lists are drawn the way WhatsApp draws them and answer
when clicked.

It talks only as *sandbox contacts* (``Contact.sandbox``), whose ids can never be a
WhatsApp number: ``000`` and 4 to 12 more digits. A WhatsApp id is the number in
international form, country code first, and no country code starts with ``0`` (E.164),
so no real customer can ever be reached, renamed or charged from here. A real contact's
conversation is never touched: any other number is refused before anything is
processed. For a sandbox contact the engine marks the context as sandboxed (apps use
their sandbox services), the outbox never sends, and analytics leave it out unless
asked. Every send and reset is audited.
"""

from __future__ import annotations

import mimetypes
import re
import secrets

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console.accounts import audit
from bot.console.transcript import transcript
from bot.console.uploads import MAX_UPLOAD, check_upload, refusal
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
from bot.files import FileRefusedError
from flows import ContactRef, Engine, UserMessage
from flows.messages import Media, MessageKind
from storage import Contact, Conversation, StoredFile
from storage.operators import OperatorRole

routes = web.RouteTableDef()
TEXT_LIMIT = 4096
SANDBOX_PREFIX = "000"
_SANDBOX_ID = re.compile(SANDBOX_PREFIX + "[0-9]{4,12}")  # ASCII digits only
_SEPARATORS = re.compile(r"[ \-()+]")
SANDBOX_RULE = f"sandbox ids are {SANDBOX_PREFIX} and 4 to 12 more digits, e.g. 00012345"


def default_phone(operator_id: int) -> str:
    """Each operator's own sandbox id: 000 and the operator's id."""
    return f"{SANDBOX_PREFIX}{operator_id % 100_000_000:08d}"


def sandbox_id(value: str | None) -> str | None:
    """``value`` as a sandbox contact's id (spaces, dashes, brackets and ``+`` dropped), or
    ``None`` if it is not one: a real number is never accepted."""
    digits = _SEPARATORS.sub("", value or "")
    return digits if _SANDBOX_ID.fullmatch(digits) else None


def _phone(request: web.Request, value: str | None) -> str:
    """The sandbox id to show; anything else is ignored with a note on the page."""
    found = sandbox_id(value)
    if found is not None:
        return found
    if value:
        notice(
            request,
            f"Ignored {value[:40]!r}: the simulator talks only as sandbox "
            f"contacts ({SANDBOX_RULE}), never as a real number.",
        )
    return default_phone(me(request).operator_id)


async def _sandbox_contact(session: AsyncSession, phone: str, name: str) -> Contact | None:
    """The sandbox contact ``phone``, created if new; ``None`` if that id belongs to a
    contact that is not a sandbox one (never from WhatsApp, but never touched either)."""
    contact = await session.scalar(select(Contact).where(Contact.wa_id == phone))
    if contact is None:
        contact = Contact(wa_id=phone, profile_name=name, attributes={}, sandbox=True)
        session.add(contact)
        await session.flush()
    return contact if contact.sandbox else None


async def _is_foreign(request: web.Request, phone: str) -> bool:
    """Whether ``phone`` is taken by a contact that is not a sandbox one."""
    async with db_of(request).read() as session:
        found = await session.scalar(select(Contact.sandbox).where(Contact.wa_id == phone))
    return found is False


def _refused(value: str) -> web.Response:
    return redirect(
        "/console/simulator",
        f"Nothing sent: {value[:40]!r} is not a sandbox contact ({SANDBOX_RULE}).",
        kind="error",
    )


def _describe(message: UserMessage) -> str:
    """What was sent, for the audit log (a file by name, type and size, never its bytes)."""
    if message.kind == "reply":
        return f"tapped {message.reply_id!r} ({message.text or ''})"
    if message.media is not None:
        media = message.media
        return f"{message.kind} {media.filename!r} ({media.mime_type}, {media.size} bytes)"
    return f"text: {message.text or ''}"


def _back(phone: str) -> str:
    return f"/console/simulator?phone={phone}"


@routes.get("/simulator")
async def simulator_page(request: web.Request) -> web.StreamResponse:
    """The chat as a WhatsApp-like phone."""
    phone = _phone(request, request.query.get("phone"))
    async with db_of(request).read() as session:
        contact_id = await session.scalar(
            select(Contact.id).where(Contact.wa_id == phone, Contact.sandbox.is_(True))
        )
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
    """The attached file as a message, checked like WhatsApp media first (real type,
    image bombs): a refused file is not stored, and the page says why. ``None``: over
    :data:`MAX_UPLOAD`."""
    with field.file:  # aiohttp's temporary file: closed here, or it leaks
        content = field.file.read(MAX_UPLOAD + 1)
    if len(content) > MAX_UPLOAD:
        return None
    name = re.sub(r"[^\w.\- ]", "_", field.filename or "file")[:120]
    claimed = field.content_type or mimetypes.guess_type(name)[0]
    try:
        checked = await check_upload(request, content, claimed, max_bytes=MAX_UPLOAD)
    except FileRefusedError as refused:
        given = str((await request.post()).get("phone") or "")
        phone = sandbox_id(given) or default_phone(me(request).operator_id)
        raise refusal(_back(phone), refused.reason) from None
    async with db_of(request).transaction() as session:
        row = StoredFile.from_bytes(name, checked.mime_type, content)
        session.add(row)
        await session.flush()
    kind: MessageKind = "image" if checked.kind == "image" else "document"
    media = Media(
        id=f"stored:{row.id}",
        mime_type=checked.mime_type,
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
    try:
        return await _send(request, form)
    finally:
        for value in form.values():
            if isinstance(value, web.FileField):
                value.file.close()  # the upload's temporary file, stored or refused


async def _send(
    request: web.Request, form: MultiDictProxy[str | bytes | bytearray | web.FileField]
) -> web.StreamResponse:
    given = str(form.get("phone") or "")
    phone = sandbox_id(given) if given else default_phone(me(request).operator_id)
    if phone is None or await _is_foreign(request, phone):
        return _refused(given)
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
    # sandboxed (never sent), whatever mode the server runs in. The contact is a sandbox
    # one, so its context is sandboxed too: the app's actions use their sandbox services
    # (no money moves, nothing external is called).
    services = runtime_of(request).services
    engine = Engine(db_of(request), flow_app_of(request), sandbox=True, services=services)
    username = me(request).username
    name = f"{username} (simulator)"
    for attempt in range(2):  # a first send from two tabs at once: one creates the contact
        try:
            async with db_of(request).transaction() as session:
                if await _sandbox_contact(session, phone, name) is None:
                    return _refused(given)
                audit(
                    session,
                    username,
                    "simulator_send",
                    f"sandbox contact +{phone}",
                    _describe(message),
                )
            break
        except IntegrityError:
            if attempt:
                raise
    await engine.handle(ContactRef(wa_id=phone, profile_name=name), message)
    return redirect(_back(phone) + "&sent=1")


@routes.post("/simulator/reset")
@requires(OperatorRole.AGENT)
async def simulator_reset(request: web.Request) -> web.StreamResponse:
    """Start over: the test contact's conversation is forgotten (its history stays in
    analytics) and given back to the bot if a person had it."""
    form = await request.post()
    given = str(form.get("phone") or "")
    phone = sandbox_id(given) if given else default_phone(me(request).operator_id)
    if phone is None:
        return _refused(given)
    async with db_of(request).transaction() as session:
        contact_id = await session.scalar(
            select(Contact.id).where(Contact.wa_id == phone, Contact.sandbox.is_(True))
        )
        if contact_id is None and await session.scalar(
            select(Contact.id).where(Contact.wa_id == phone)
        ):
            return _refused(given)
        conversation = await session.get(Conversation, contact_id) if contact_id else None
        if conversation is not None:
            conversation.clear_flow()
            conversation.handed_off_at = None
            conversation.handoff_reason = None
        audit(session, me(request).username, "simulator_reset", f"sandbox contact +{phone}")
    return redirect(_back(phone), "Started over: the bot has forgotten where you were.")
