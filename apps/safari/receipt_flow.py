"""``receipt_flow``'s callables: *send receipt* in the chat (issued then if need be)."""

from __future__ import annotations

from sqlalchemy import select

from apps.safari import app
from apps.safari.common import linked_customer
from apps.safari.documents.receipts import PaymentNotPaidError, issue_receipt
from apps.safari.documents.service import SafariDocuments
from apps.safari.models import PAID_STATUSES, Booking, Payment, Tour
from apps.safari.receipts import receipt_document
from documents import format_money
from flows import ActionError, FlowContext, Option
from storage import NotFoundError

__all__ = [
    "no_receipts",
    "preselect_receipt_payment",
    "receipt_payments",
    "send_payment_receipt",
]

MAX_CHOICES = 10


async def _paid_payments(ctx: FlowContext) -> list[tuple[Payment, str, str]]:
    """The contact's approved and confirmed payments, newest first, with their booking's
    reference and tour name."""
    customer = await linked_customer(ctx)
    if customer is None:
        return []
    rows = await ctx.session.execute(
        select(Payment, Booking.reference, Tour.name)
        .join(Booking, Booking.id == Payment.booking_id)
        .join(Tour, Tour.id == Booking.tour_id)
        .where(Booking.customer_id == customer.id, Payment.status.in_(PAID_STATUSES))
        .order_by(Payment.paid_at.desc(), Payment.id.desc())
        .limit(MAX_CHOICES)
    )
    return [(payment, reference, tour) for payment, reference, tour in rows]


@app.query()
async def receipt_payments(ctx: FlowContext) -> list[Option]:
    """The contact's paid payments, newest first: ``USD 50.00 · Sat 14 Mar``."""
    options = []
    for payment, reference, tour in await _paid_payments(ctx):
        when = payment.paid_at or payment.created_at
        day = ctx.app.today(when) if when else None
        options.append(
            Option(
                str(payment.id),
                f"{format_money(payment.amount, payment.currency)}"
                + (f" · {day.day} {day:%b}" if day else ""),
                f"{reference} · {tour}",
            )
        )
    return options


@app.query()
async def no_receipts(_ctx: FlowContext) -> str:
    """What to say when the contact has no paid payment."""
    return (
        "You don't have any approved payments yet, so there is no receipt to send. "
        "Receipts come automatically once a payment is confirmed. Type *pay* to pay a "
        "booking, or *menu* for anything else."
    )


@app.action()
async def preselect_receipt_payment(ctx: FlowContext) -> None:
    """Choose without asking when the contact has exactly one paid payment."""
    payments = await _paid_payments(ctx)
    if len(payments) == 1:
        ctx.data["receipt_payment"] = str(payments[0][0].id)


@app.action()
async def send_payment_receipt(ctx: FlowContext) -> None:
    """Send the chosen payment's receipt (issued now if it has none yet).

    Raises:
        ActionError: the payment is not one of the contact's paid payments.
    """
    chosen = str(ctx.data.get("receipt_payment") or "")
    found = next((p for p in await _paid_payments(ctx) if str(p[0].id) == chosen), None)
    if found is None:
        raise ActionError("Sorry, I can't find that payment. Type *receipt* to start again.")
    payment, reference, _tour = found
    try:
        issued = await issue_receipt(ctx.session, payment.id, ctx.services.get(SafariDocuments))
    except (NotFoundError, PaymentNotPaidError) as exc:
        raise ActionError(
            "Sorry, that payment has no receipt. Type *receipt* to start again."
        ) from exc
    ctx.reply(receipt_document(issued, payment, reference))
