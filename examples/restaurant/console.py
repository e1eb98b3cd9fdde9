"""The restaurant's console page: one day's reservations, by sitting, with a cancel button.

``/console/reservations?day=2026-12-24`` (today in the restaurant's timezone when no day
is given). Viewers see the list; agents may cancel a reservation, which frees its table.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from bot.console.filters import Filters
from bot.console.page import ConsolePage
from bot.console.web import flow_app_of, me, redirect, render, requires, url
from bot.web import runtime_of
from storage import utcnow
from storage.operators import OperatorRole

from .models import Reservation, ReservationStatus, reservations_on

routes = web.RouteTableDef()


@routes.get("/reservations")
@requires(OperatorRole.VIEWER)
async def reservations(request: web.Request) -> web.StreamResponse:
    """The reservations of one day, cancelled ones included (struck through)."""
    runtime = runtime_of(request)
    today = flow_app_of(request).today(utcnow())
    day = Filters(request).date("day") or today
    async with runtime.db.read() as session:
        rows = await reservations_on(session, day, cancelled=True)
    confirmed = [r for r in rows if r.status is ReservationStatus.CONFIRMED]
    return render(
        request,
        "reservations.html",
        {
            "title": "Reservations",
            "day": day,
            "previous": day - dt.timedelta(days=1),
            "next": day + dt.timedelta(days=1),
            "rows": rows,
            "guests": sum(r.party_size for r in confirmed),
            "tables": len(confirmed),
            "can_cancel": me(request).can(OperatorRole.AGENT),
        },
    )


@routes.post("/reservations/{reference}/cancel")
@requires(OperatorRole.AGENT)
async def cancel(request: web.Request) -> web.StreamResponse:
    """Cancel one reservation (its table is free again at that sitting)."""
    reference = request.match_info["reference"].upper()[:12]
    async with runtime_of(request).db.transaction() as session:
        reservation = await session.scalar(
            select(Reservation).where(Reservation.reference == reference)
        )
        if reservation is None:
            raise web.HTTPNotFound
        back = url("/reservations", day=reservation.day.isoformat())
        if reservation.status is ReservationStatus.CANCELLED:
            return redirect(back, f"{reference} was already cancelled.", kind="error")
        reservation.cancel(utcnow())
    return redirect(back, f"Cancelled {reference}: table {reservation.table_code} is free.")


reservations_page = ConsolePage(
    "Reservations",
    "/reservations",
    routes,
    templates=Path(__file__).parent / "templates",
)
