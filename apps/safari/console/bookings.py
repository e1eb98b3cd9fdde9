"""Bookings: search, and a booking with its travellers, payments, IDs and receipts."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari import operations
from apps.safari.models import (
    PAID_STATUSES,
    Booking,
    BookingStatus,
    Customer,
    Departure,
    Notification,
    Payment,
    PaymentMethod,
    Receipt,
    Tour,
    Traveler,
)
from apps.safari.operations import balance
from bot.console.accounts import audit
from bot.console.filters import PAGE_SIZE, Filters, page_of
from bot.console.page import ContactFact
from bot.console.pages.files import file_response
from bot.console.web import db_of, id_in_path, me, redirect, render, requires
from documents import format_money
from flows import ActionError
from storage import AuditEntry, StoredFile
from storage.operators import OperatorRole

routes = web.RouteTableDef()
MAX_AMOUNT = Decimal("1000000")
# A booking reference: SAF-7K3QX2 in the safari bot; other businesses have their own.
REFERENCE = re.compile(r"[A-Z0-9][A-Z0-9-]{2,19}")


@routes.get("/bookings")
async def bookings_list(request: web.Request) -> web.StreamResponse:
    """Bookings, newest first; search by reference, customer name, phone or e-mail."""
    filters = Filters(request)
    status = filters.choice("status", [s.value for s in BookingStatus])
    search = filters.text("q", max_length=80)
    start = filters.date("from")
    end = filters.date("to")
    number = filters.page()
    query = (
        select(Booking, Customer, Tour.name, Departure.date)
        .join(Customer, Customer.id == Booking.customer_id)
        .join(Tour, Tour.id == Booking.tour_id)
        .join(Departure, Departure.id == Booking.departure_id)
    )
    if status:
        query = query.where(Booking.status == BookingStatus(status))
    if start:
        query = query.where(Departure.date >= start)
    if end:
        query = query.where(Departure.date <= end)
    if search and REFERENCE.fullmatch(search.upper()):
        # An exact reference goes straight to its booking (one indexed lookup).
        async with db_of(request).read() as session:
            found = await session.scalar(
                select(Booking.reference).where(Booking.reference == search.upper())
            )
        if found is not None:
            raise web.HTTPFound(f"/console/bookings/{found}")
    if search:
        digits = re.sub(r"[\s+\-()]", "", search)
        pattern = f"%{search.replace('%', '').replace('_', '')}%"
        conditions = [Customer.name.ilike(pattern), Customer.email.ilike(pattern)]
        if digits.isdigit():
            conditions.append(Customer.phone.like(f"%{digits}%"))
        query = query.where(or_(*conditions))
    query = query.order_by(Booking.id.desc()).limit(PAGE_SIZE + 1).offset((number - 1) * PAGE_SIZE)
    async with db_of(request).read() as session:
        rows = list((await session.execute(query)).all())
    return render(
        request,
        "bookings.html",
        {
            "title": "Bookings",
            "rows": rows,
            "page": page_of(filters, rows, number),
            "status": status or "",
            "statuses": [s.value for s in BookingStatus],
            "q": search or "",
            "start": start.isoformat() if start else "",
            "end": end.isoformat() if end else "",
        },
    )


@routes.get("/bookings/{reference}")
async def booking_detail(request: web.Request) -> web.StreamResponse:
    """One booking with everything about it."""
    reference = request.match_info["reference"].upper()
    if not REFERENCE.fullmatch(reference):
        raise web.HTTPNotFound
    async with db_of(request).read() as session:
        booking = await session.scalar(select(Booking).where(Booking.reference == reference))
        if booking is None:
            raise web.HTTPNotFound
        customer = await session.get(Customer, booking.customer_id)
        tour = await session.get(Tour, booking.tour_id)
        departure = await session.get(Departure, booking.departure_id)
        travelers = list(
            await session.scalars(
                select(Traveler)
                .where(Traveler.booking_id == booking.id)
                .order_by(Traveler.position)
            )
        )
        file_ids = [t.id_file_id for t in travelers if t.id_file_id is not None]
        id_files = {
            file_id: (mime, filename, size)
            for file_id, mime, filename, size in await session.execute(
                select(
                    StoredFile.id, StoredFile.mime_type, StoredFile.filename, StoredFile.size
                ).where(StoredFile.id.in_(file_ids))
            )
        }
        payments = list(
            (
                await session.execute(
                    select(Payment, Receipt.number)
                    .outerjoin(Receipt, Receipt.payment_id == Payment.id)
                    .where(Payment.booking_id == booking.id)
                    .order_by(Payment.id)
                )
            ).all()
        )
        owed = await balance(session, booking)
        notifications = list(
            await session.scalars(
                select(Notification)
                .where(Notification.booking_id == booking.id)
                .order_by(Notification.id)
            )
        )
        targets = [f"booking {reference}"] + [f"payment {p.id}" for p, _n in payments]
        history = list(
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.target.in_(targets))
                .order_by(AuditEntry.id.desc())
                .limit(30)
            )
        )
    return render(
        request,
        "booking.html",
        {
            "title": f"Booking {reference}",
            "booking": booking,
            "customer": customer,
            "tour": tour,
            "departure": departure,
            "travelers": travelers,
            "id_files": id_files,
            "payments": payments,
            "balance": owed,
            "paid_statuses": [s.value for s in PAID_STATUSES],
            "notifications": notifications,
            "history": history,
        },
    )


@routes.get("/bookings/{reference}/travelers/{traveler_id:[0-9]{1,18}}/id")
async def traveler_id_document(request: web.Request) -> web.StreamResponse:
    """A traveller's uploaded ID document (audited)."""
    reference = request.match_info["reference"].upper()
    traveler_id = id_in_path(request, "traveler_id")
    db = db_of(request)
    async with db.read() as session:
        file_id = await session.scalar(
            select(Traveler.id_file_id)
            .join(Booking, Booking.id == Traveler.booking_id)
            .where(Traveler.id == traveler_id, Booking.reference == reference)
        )
        row = await session.get(StoredFile, file_id) if file_id else None
    if row is None:
        raise web.HTTPNotFound
    async with db.transaction() as session:
        audit(
            session,
            me(request).username,
            "view_id_document",
            f"booking {reference}",
            f"traveller {traveler_id}",
        )
    return file_response(row)


def _reference(request: web.Request) -> str:
    reference = request.match_info["reference"].upper()
    if not REFERENCE.fullmatch(reference):
        raise web.HTTPNotFound
    return reference


async def _booking_id(request: web.Request, reference: str) -> int:
    async with db_of(request).read() as session:
        booking_id = await session.scalar(select(Booking.id).where(Booking.reference == reference))
    if booking_id is None:
        raise web.HTTPNotFound
    return int(booking_id)


@routes.post("/bookings/{reference}/payments")
@requires(OperatorRole.ADMIN)
async def record_payment(request: web.Request) -> web.StreamResponse:
    """Record a cash or bank payment received outside the chat (approved at once)."""
    reference = _reference(request)
    back = f"/console/bookings/{reference}"
    booking_id = await _booking_id(request, reference)
    form = await request.post()
    method = str(form.get("method") or "")
    if method not in (PaymentMethod.CASH.value, PaymentMethod.BANK_TRANSFER.value):
        return redirect(back, "Choose cash or bank transfer.", kind="error")
    try:
        amount = Decimal(str(form.get("amount") or "").strip().replace(",", ""))
    except InvalidOperation:
        amount = Decimal(0)
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT:
        return redirect(back, "Enter the amount received, e.g. 120.00.", kind="error")
    note = " ".join(str(form.get("reference") or "").split())[:120] or None
    try:
        async with db_of(request).transaction() as session:
            payment = await operations.record_payment(
                session,
                booking_id,
                amount=amount.quantize(Decimal("0.01")),
                method=PaymentMethod(method),
                actor=me(request).username,
                reference=note,
            )
    except (ActionError, IntegrityError) as exc:
        reason = str(exc) if isinstance(exc, ActionError) else "that reference is already used"
        return redirect(back, f"Not recorded: {reason}.", kind="error")
    return redirect(
        f"/console/payments/{payment.id}",
        f"Payment of {format_money(payment.amount, payment.currency)} recorded; "
        "generate its receipt here.",
    )


@routes.post("/bookings/{reference}/cancel")
@requires(OperatorRole.ADMIN)
async def cancel(request: web.Request) -> web.StreamResponse:
    """Cancel a booking (its seats go back on sale), with a reason for the audit log."""
    reference = _reference(request)
    back = f"/console/bookings/{reference}"
    booking_id = await _booking_id(request, reference)
    form = await request.post()
    reason = " ".join(str(form.get("reason") or "").split())[:500]
    if not reason:
        return redirect(back, "Say why the booking is cancelled.", kind="error")
    async with db_of(request).transaction() as session:
        await operations.cancel_booking(
            session, booking_id, actor=me(request).username, reason=reason
        )
    return redirect(back, f"Booking {reference} cancelled; its seats are back on sale.")


async def customer_facts(session: AsyncSession, contact_id: int) -> list[ContactFact]:
    """Beside a conversation: the contact's customer record and a link to their bookings."""
    customer = await session.scalar(select(Customer).where(Customer.contact_id == contact_id))
    if customer is None:
        return []
    query = urlencode({"q": customer.phone or customer.name})
    return [ContactFact("Customer", f"{customer.name} — bookings", f"/console/bookings?{query}")]
