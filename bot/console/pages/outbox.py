"""The outbox: messages WhatsApp refused (with Meta's error) and retrying them."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select, update

from bot.console.accounts import audit
from bot.console.filters import PAGE_SIZE, Filters, page_of
from bot.console.web import db_of, id_in_path, me, redirect, render, requires, settings_of
from storage import Contact, OutboundMessage, OutboundStatus, utcnow
from storage.operators import OperatorRole

routes = web.RouteTableDef()
STATUSES = [s.value for s in OutboundStatus]


@routes.get("/outbox")
async def outbox_list(request: web.Request) -> web.StreamResponse:
    """Outbound messages by status (failed by default), newest first."""
    filters = Filters(request)
    status = filters.choice("status", STATUSES, default=OutboundStatus.FAILED.value)
    assert status is not None
    number = filters.page()
    async with db_of(request).read() as session:
        rows = list(
            (
                await session.execute(
                    select(OutboundMessage, Contact)
                    .join(Contact, Contact.id == OutboundMessage.contact_id)
                    .where(
                        OutboundMessage.status == OutboundStatus(status),
                        OutboundMessage.kind != "mark_read",
                    )
                    .order_by(OutboundMessage.id.desc())
                    .limit(PAGE_SIZE + 1)
                    .offset((number - 1) * PAGE_SIZE)
                )
            ).all()
        )
    return render(
        request,
        "outbox.html",
        {
            "title": "Outbox",
            "rows": rows,
            "page": page_of(filters, rows, number),
            "status": status,
            "statuses": STATUSES,
        },
    )


@routes.post("/outbox/{message_id:[0-9]{1,18}}/retry")
@requires(OperatorRole.AGENT)
async def retry(request: web.Request) -> web.StreamResponse:
    """Queue a failed message again, now, with a fresh count of attempts."""
    message_id = id_in_path(request, "message_id")
    now = utcnow()
    async with db_of(request).transaction() as session:
        result = await session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.id == message_id,
                OutboundMessage.status == OutboundStatus.FAILED,
            )
            .values(
                status=OutboundStatus.QUEUED,
                next_attempt_at=now,
                attempts=0,
                in_flight=False,
                status_at=now,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return redirect(
                "/console/outbox", f"Message {message_id} is not a failed message.", kind="error"
            )
        audit(session, me(request).username, "retry_message", f"outbound {message_id}")
    note = (
        " (sandbox mode: nothing sends it until WhatsApp credentials are set)"
        if settings_of(request).sandbox
        else ""
    )
    return redirect("/console/outbox", f"Message {message_id} queued again{note}.")
