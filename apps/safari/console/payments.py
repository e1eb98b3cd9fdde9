"""Payments: the queue awaiting approval, a payment with its proof, approve and reject
(approval sends the customer the news and the receipt), Generate Receipt, downloads."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari import operations
from apps.safari.documents.receipts import ReceiptError, issue_receipt, stored_receipt
from apps.safari.documents.service import SafariDocuments
from apps.safari.models import (
    Booking,
    Customer,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    Tour,
)
from apps.safari.notices import notify_customer, payment_template, rejection_template
from apps.safari.receipts import approve_payment_and_notify, receipt_document
from bot.console.accounts import audit
from bot.console.filters import PAGE_SIZE, Filters, page_of
from bot.console.page import Attention
from bot.console.pages.analytics import bounded_count
from bot.console.pages.files import file_response
from bot.console.web import db_of, id_in_path, me, redirect, render, requires
from bot.web import runtime_of
from flows import ActionError
from flows.messages import Text
from storage import AuditEntry, NotFoundError, OutboundMessage, StoredFile, utcnow
from storage.operators import OperatorRole

routes = web.RouteTableDef()
STATUSES = [s.value for s in PaymentStatus]
REASON_MAX = 500
REFERENCE_MAX = 120  # payments.provider_reference


def _payment_id(request: web.Request) -> int:
    return id_in_path(request, "payment_id")


@routes.get("/payments")
async def payments_list(request: web.Request) -> web.StreamResponse:
    """Payments awaiting approval first (oldest first), or any status."""
    filters = Filters(request)
    status = filters.choice("status", [*STATUSES, "all"], default="pending")
    method = filters.choice("method", [m.value for m in PaymentMethod])
    reference = filters.text("q", max_length=40)
    number = filters.page()
    query = (
        select(Payment, Booking.reference, Customer.name, Tour.name, Receipt.number)
        .join(Booking, Booking.id == Payment.booking_id)
        .join(Customer, Customer.id == Booking.customer_id)
        .join(Tour, Tour.id == Booking.tour_id)
        .outerjoin(Receipt, Receipt.payment_id == Payment.id)
    )
    if status is not None and status != "all":
        query = query.where(Payment.status == PaymentStatus(status))
    if method:
        query = query.where(Payment.method == PaymentMethod(method))
    if reference:
        query = query.where(Booking.reference == reference.upper())
    order = Payment.id.asc() if status == "pending" else Payment.id.desc()
    query = query.order_by(order).limit(PAGE_SIZE + 1).offset((number - 1) * PAGE_SIZE)
    async with db_of(request).read() as session:
        rows = list((await session.execute(query)).all())
    page = page_of(filters, rows, number)
    return render(
        request,
        "payments.html",
        {
            "title": "Payments",
            "rows": rows,
            "page": page,
            "status": status,
            "method": method or "",
            "q": reference or "",
            "statuses": STATUSES,
            "methods": [m.value for m in PaymentMethod],
        },
    )


MESSAGES_SHOWN = 10


async def _messages_since(
    session: AsyncSession, customer: Customer | None, payment: Payment
) -> list[OutboundMessage]:
    """What was queued for the customer since the payment came in, newest first: whether
    the news and the receipt really went out (sent, delivered, failed and why)."""
    if customer is None or customer.contact_id is None:
        return []
    return list(
        await session.scalars(
            select(OutboundMessage)
            .where(
                OutboundMessage.contact_id == customer.contact_id,
                OutboundMessage.created_at >= payment.created_at,
            )
            .order_by(OutboundMessage.id.desc())
            .limit(MESSAGES_SHOWN)
        )
    )


async def _load(request: web.Request, payment_id: int) -> dict[str, object]:
    async with db_of(request).read() as session:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            raise web.HTTPNotFound
        booking = await session.get(Booking, payment.booking_id)
        assert booking is not None
        customer = await session.get(Customer, booking.customer_id)
        tour = await session.get(Tour, booking.tour_id)
        proof = None
        if payment.proof_file_id is not None:
            proof = (
                await session.execute(
                    select(
                        StoredFile.id, StoredFile.filename, StoredFile.mime_type, StoredFile.size
                    ).where(StoredFile.id == payment.proof_file_id)
                )
            ).first()
        receipt = await session.scalar(select(Receipt).where(Receipt.payment_id == payment_id))
        history = list(
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.target == f"payment {payment_id}")
                .order_by(AuditEntry.id.desc())
                .limit(20)
            )
        )
        messages = await _messages_since(session, customer, payment)
    return {
        "payment": payment,
        "booking": booking,
        "customer": customer,
        "messages": messages,
        "tour": tour,
        "proof": proof,
        "needs_proof": needs_proof(payment),
        "receipt": receipt,
        "history": history,
    }


@routes.get("/payments/{payment_id}")
async def payment_detail(request: web.Request) -> web.StreamResponse:
    """One payment: amounts, the proof, the receipt, what was done to it."""
    payment_id = _payment_id(request)
    context = await _load(request, payment_id)
    return render(request, "payment.html", {"title": f"Payment {payment_id}", **context})


@routes.get("/payments/{payment_id}/proof")
async def payment_proof(request: web.Request) -> web.StreamResponse:
    """The uploaded proof of payment (audited: it is a customer's document)."""
    payment_id = _payment_id(request)
    db = db_of(request)
    async with db.read() as session:
        file_id = await session.scalar(
            select(Payment.proof_file_id).where(Payment.id == payment_id)
        )
        row = await session.get(StoredFile, file_id) if file_id else None
    if row is None:
        raise web.HTTPNotFound
    async with db.transaction() as session:
        audit(session, me(request).username, "view_proof", f"payment {payment_id}")
    return file_response(row, download=request.query.get("download") == "1")


@routes.get("/payments/{payment_id}/receipt.pdf")
async def receipt_download(request: web.Request) -> web.StreamResponse:
    """The stored PDF receipt of a payment (audited)."""
    payment_id = _payment_id(request)
    db = db_of(request)
    async with db.read() as session:
        issued = await stored_receipt(session, payment_id)
    if issued is None:
        raise web.HTTPNotFound
    async with db.transaction() as session:
        audit(
            session,
            me(request).username,
            "download_receipt",
            f"payment {payment_id}",
            issued.number,
        )
    return web.Response(
        body=issued.pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{issued.filename}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


NO_PROOF = (
    "a bank transfer needs the customer's proof of payment first. Ask them to send it "
    "(type *pay* in WhatsApp), or reject the payment."
)


def needs_proof(payment: Payment) -> bool:
    """A customer's bank transfer is approved only on its proof of payment (an operator's
    own record of money received is approved when it is recorded)."""
    return payment.method is PaymentMethod.BANK_TRANSFER and payment.proof_file_id is None


async def _has_proof_if_needed(request: web.Request, payment_id: int) -> bool:
    async with db_of(request).read() as session:
        payment = await session.get(Payment, payment_id)
    return payment is None or not needs_proof(payment)  # a missing one is the 404 below


@routes.post("/payments/{payment_id}/approve")
@requires(OperatorRole.ADMIN)
async def approve(request: web.Request) -> web.StreamResponse:
    """Approve a pending payment: the booking is confirmed, the customer gets the news and
    the receipt (one transaction)."""
    payment_id = _payment_id(request)
    back = f"/console/payments/{payment_id}"
    runtime = runtime_of(request)
    if not await _has_proof_if_needed(request, payment_id):
        return redirect(back, f"Not approved: {NO_PROOF}", kind="error")
    form = await request.post()
    # The form's field is pre-filled with the reference the customer typed: what it holds
    # is the operator's word, even empty ("no reference"); without the field (another
    # client), the customer's stands.
    reference = (
        " ".join(str(form["reference"]).split())[:REFERENCE_MAX] if "reference" in form else None
    )
    try:
        async with db_of(request).transaction() as session:
            approval = await approve_payment_and_notify(
                session,
                payment_id,
                runtime.services.get(SafariDocuments),
                actor=me(request).username,
                reference=reference,
                sandbox=runtime.sandbox,
            )
    except NotFoundError:
        raise web.HTTPNotFound from None
    except ActionError as exc:
        return redirect(back, f"Not approved: {exc}", kind="error")
    if approval.notice is None:
        return redirect(back, f"Payment {payment_id} was already approved; nothing was sent.")
    receipt = (
        f" Receipt {approval.receipt_number} issued."
        if approval.receipt_number
        else " The receipt could not be made now (logged); use Generate Receipt to retry."
    )
    return redirect(back, f"Payment {payment_id} approved.{receipt} {approval.notice.describe()}")


@routes.post("/payments/{payment_id}/reject")
@requires(OperatorRole.ADMIN)
async def reject(request: web.Request) -> web.StreamResponse:
    """Reject a pending payment with a reason the customer is told."""
    payment_id = _payment_id(request)
    back = f"/console/payments/{payment_id}"
    form = await request.post()
    reason = " ".join(str(form.get("reason") or "").split())
    if not reason:
        return redirect(
            back, "Say why the payment is rejected (the customer is told).", kind="error"
        )
    reason = reason[:REASON_MAX]
    try:
        async with db_of(request).transaction() as session:
            payment = await operations.reject_payment(
                session, payment_id, actor=me(request).username, reason=reason
            )
            booking = await session.get(Booking, payment.booking_id)
            assert booking is not None
            text = (
                f"⚠️ We could not accept your payment for booking {booking.reference}: "
                f"{reason}. Type *pay* to try again, or *support* to talk to us."
            )
            notice = await notify_customer(
                session,
                booking,
                [Text(text)],
                template=await rejection_template(session, booking, payment, reason),
                sandbox=runtime_of(request).sandbox,
                now=utcnow(),
            )
    except NotFoundError:
        raise web.HTTPNotFound from None
    except ActionError as exc:
        return redirect(back, f"Not rejected: {exc}", kind="error")
    return redirect(back, f"Payment {payment_id} rejected. {notice.describe()}")


@routes.post("/payments/{payment_id}/receipt")
@requires(OperatorRole.ADMIN)
async def generate_receipt(request: web.Request) -> web.StreamResponse:
    """Generate Receipt: issue the receipt of a paid payment (or find the one issued) and,
    unless unticked, send it to the customer."""
    payment_id = _payment_id(request)
    back = f"/console/payments/{payment_id}"
    form = await request.post()
    send = form.get("send") == "1"
    try:
        async with db_of(request).transaction() as session:
            documents = runtime_of(request).services.get(SafariDocuments)
            issued = await issue_receipt(session, payment_id, documents)
            payment = await session.get(Payment, payment_id)
            assert payment is not None
            booking = await session.get(Booking, payment.booking_id)
            assert booking is not None
            notice = None
            if send:
                notice = await notify_customer(
                    session,
                    booking,
                    [receipt_document(issued, payment, booking.reference)],
                    template=await payment_template(session, booking, payment),
                    sandbox=runtime_of(request).sandbox,
                    now=utcnow(),
                )
            delivery = "" if notice is None or notice.delivery is None else notice.delivery
            audit(
                session,
                me(request).username,
                "generate_receipt",
                f"payment {payment_id}",
                f"{issued.number} ({'issued' if issued.created else 'existing'}"
                f"{f', queued {delivery}' if delivery else ''})",
            )
    except NotFoundError:
        raise web.HTTPNotFound from None
    except ReceiptError as exc:
        return redirect(back, f"No receipt: {exc}", kind="error")
    state = "issued" if issued.created else "already issued"
    told = f" {notice.describe()}" if notice is not None else " Not sent to the customer."
    return redirect(back, f"Receipt {issued.number} {state}.{told}")


async def awaiting_approval(request: web.Request) -> Attention:
    """The dashboard's card: payments awaiting approval."""
    count = await bounded_count(
        request, select(Payment.id).where(Payment.status == PaymentStatus.PENDING)
    )
    return Attention(
        "Payments awaiting approval", count, "review proofs and approve", "/console/payments"
    )
