"""Receipts in the safari bot: sent when a payment is confirmed or approved, and on request.

The PDF itself is made by :mod:`documents.receipts` (one receipt per payment, numbered
``RCT-<year>-<6 digits>``); this module wires it to the bot:

* a hook on :data:`flows.safari.omari.on_payment_confirmed` sends the receipt with
  Omari's confirmation;
* :func:`approve_payment_and_send_receipt` approves a manual payment (the service call
  for the CLI and the console) and queues the approval and the receipt for the customer;
* ``receipt_flow.yaml``'s callables: *send receipt* in the chat.

Automatic receipts are issued in a savepoint: if the PDF cannot be made, the payment is
still confirmed or approved (money is the truth, the receipt is derived from it), the
receipt's number is given back, the error is logged, and the customer can ask for the
receipt later (*send receipt*), which issues it then.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from documents.receipts import IssuedReceipt, PaymentNotPaidError, issue_receipt
from flows import ActionError, FlowContext, Option
from flows.messages import Document, Reply, Text
from flows.safari import app, operations
from flows.safari.common import linked_customer, money
from flows.safari.omari import on_payment_confirmed, payment_template, queue_customer_replies
from storage import (
    PAID_STATUSES,
    Booking,
    NotFoundError,
    Payment,
    PaymentStatus,
    Tour,
    utcnow,
)

__all__ = [
    "approve_payment_and_send_receipt",
    "receipt_document",
    "send_receipt_on_confirmation",
]

log = logging.getLogger("nyala.receipts")
MAX_CHOICES = 10


def receipt_document(issued: IssuedReceipt, payment: Payment, reference: str) -> Document:
    """The receipt as a WhatsApp document, with a caption naming what it is for."""
    caption = (
        f"🧾 Receipt {issued.number}: {money(payment.amount, payment.currency)} "
        f"for booking {reference}."
    )
    return Document(issued.file_id, issued.filename, caption)


async def _booking_reference(session: AsyncSession, payment: Payment) -> str:
    reference = await session.scalar(
        select(Booking.reference).where(Booking.id == payment.booking_id)
    )
    return str(reference)


async def _receipt_or_none(session: AsyncSession, payment: Payment) -> Document | None:
    """Issue the receipt in a savepoint; on failure log it and send none."""
    try:
        async with session.begin_nested():
            issued = await issue_receipt(session, payment.id, tz=app.timezone)
    except Exception:
        log.exception("no receipt for payment %s (it can be asked for later)", payment.id)
        return None
    return receipt_document(issued, payment, await _booking_reference(session, payment))


@on_payment_confirmed.register
async def send_receipt_on_confirmation(
    session: AsyncSession, payment: Payment
) -> Sequence[Reply] | None:
    """Omari confirmed a payment: send its receipt with the confirmation."""
    document = await _receipt_or_none(session, payment)
    return [document] if document is not None else None


async def approve_payment_and_send_receipt(
    session: AsyncSession, payment_id: int, *, actor: str, sandbox: bool = False
) -> Payment:
    """Approve a pending manual payment and queue the news and its receipt for the customer.

    In the caller's transaction, like :func:`operations.approve_payment`. Approving an
    approved payment again changes nothing and sends nothing.

    Args:
        session: the transaction.
        payment_id: the payment.
        actor: who approves (for the audit log).
        sandbox: store the customer's messages as ``sandbox`` rows (never sent).

    Raises:
        NotFoundError: there is no such payment.
        ActionError: the payment is neither pending nor approved.
    """
    before = await session.scalar(select(Payment.status).where(Payment.id == payment_id))
    payment = await operations.approve_payment(session, payment_id, actor=actor)
    if before is PaymentStatus.APPROVED:
        return payment
    booking = await session.get(Booking, payment.booking_id)
    assert booking is not None  # a foreign key
    await session.flush()
    due = (await operations.balance(session, booking)).due
    text = (
        f"✅ Your payment of {money(payment.amount, payment.currency)} for booking "
        f"{booking.reference} was approved. Balance due: {money(due, booking.currency)}"
    )
    text += "." if due else " — fully paid, thank you!"
    replies: list[Reply] = [Text(text)]
    document = await _receipt_or_none(session, payment)
    if document is not None:
        replies.append(document)
    template = await payment_template(session, booking, payment)
    await queue_customer_replies(
        session, booking, replies, sandbox=sandbox, now=utcnow(), template=template
    )
    return payment


# receipt_flow --------------------------------------------------------------------------


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
                f"{money(payment.amount, payment.currency)}"
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
        issued = await issue_receipt(ctx.session, payment.id, tz=ctx.app.timezone)
    except (NotFoundError, PaymentNotPaidError) as exc:
        raise ActionError(
            "Sorry, that payment has no receipt. Type *receipt* to start again."
        ) from exc
    ctx.reply(receipt_document(issued, payment, reference))
