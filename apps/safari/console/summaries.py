"""Pre-tour summaries and ID reminders: what the dry-run would send for N days (or hours)
before the tour, and a preview of one booking's messages as the customer will see them."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from apps.safari.documents.service import SafariDocuments
from apps.safari.documents.summaries import load_summary_data
from apps.safari.models import ID_REMINDER, TOUR_SUMMARY, Booking
from apps.safari.summaries import (
    due_id_reminder_bookings,
    due_summary_bookings,
    id_reminder_replies,
    plan,
    summary_replies,
)
from bot.console.filters import Filters
from bot.console.transcript import Bubble, reply_bubble
from bot.console.web import db_of, notice, render
from bot.web import runtime_of
from flows.messages import Reply, reply_kind
from storage import utcnow

routes = web.RouteTableDef()
KINDS = {"summary": TOUR_SUMMARY, "reminder": ID_REMINDER}


def _params(filters: Filters) -> tuple[str, int, str]:
    kind = filters.choice("kind", list(KINDS), default="summary") or "summary"
    if kind == "summary":
        days = filters.integer("days", low=0, high=60, default=7)
        return kind, days if days is not None else 7, f"{days}d"
    hours = filters.integer("hours", low=1, high=24 * 14, default=48) or 48
    return kind, hours, f"{hours}h"


@routes.get("/summaries")
async def summaries_plan(request: web.Request) -> web.StreamResponse:
    """The dry-run: which bookings would get what, and which already had it."""
    filters = Filters(request)
    kind, amount, key = _params(filters)
    documents = runtime_of(request).services.get(SafariDocuments)
    tz = documents.tz
    now = utcnow()
    db = db_of(request)
    async with db.read() as session:
        if kind == "summary":
            ids = await due_summary_bookings(session, amount, now=now, tz=tz)
        else:
            ids = await due_id_reminder_bookings(session, amount, now=now, tz=tz)
    planned = await plan(
        db, ids[:200], kind=KINDS[kind], key=key, amount=amount, documents=documents
    )
    if len(ids) > 200:
        notice(request, f"{len(ids)} bookings are due; the first 200 are shown.")
    return render(
        request,
        "summaries.html",
        {
            "title": "Tour summaries",
            "planned": planned,
            "kind": kind,
            "amount": amount,
            "key": key,
            "command": (
                f"nyala send-tour-summaries --days-before {amount}"
                if kind == "summary"
                else f"nyala send-id-reminders --hours-before {amount}"
            ),
        },
    )


@routes.get("/summaries/{reference}")
async def summary_preview(request: web.Request) -> web.StreamResponse:
    """One booking's summary (or reminder) as WhatsApp will show it; nothing is sent."""
    filters = Filters(request)
    kind, amount, _key = _params(filters)
    reference = request.match_info["reference"].upper()[:20]
    documents = runtime_of(request).services.get(SafariDocuments)
    async with db_of(request).read() as session:
        booking_id = await session.scalar(select(Booking.id).where(Booking.reference == reference))
        if booking_id is None:
            raise web.HTTPNotFound
        data = await load_summary_data(
            session, booking_id, tz=documents.tz, branding=documents.branding()
        )
    replies: list[Reply] = (
        summary_replies(data, amount) if kind == "summary" else id_reminder_replies(data)
    )
    now = utcnow()
    bubbles: list[Bubble] = [reply_bubble(f"out-{i}", r, now) for i, r in enumerate(replies, 1)]
    context: dict[str, Any] = {
        "title": f"Preview for {reference}",
        "reference": reference,
        "bubbles": bubbles,
        "kind": kind,
        "amount": amount,
        "kinds": [reply_kind(r) for r in replies],
        "customer": data.customer_name,
    }
    return render(request, "summary_preview.html", context)
