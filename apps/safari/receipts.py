"""Receipts in the safari bot: sent when a payment is confirmed or approved.

The PDF itself is made by :mod:`apps.safari.documents.receipts` (one receipt per
payment, numbered ``RCT-<year>-<6 digits>``); this module wires it to the bot:

* :func:`receipt_hook` makes the hook that sends the receipt with Omari's confirmation
  (the app's lifespan registers it on the running app's
  :class:`~apps.safari.omari.ReceiptHooks`);
* :func:`approve_payment_and_notify` approves a manual payment (the service call
  for the CLI and the console) and queues the approval and the receipt for the customer;
* :mod:`apps.safari.receipt_flow` has ``receipt_flow.yaml``'s callables (*send receipt*).

Automatic receipts are issued in a savepoint: if the PDF cannot be made, the payment is
still confirmed or approved (money is the truth, the receipt is derived from it), the
receipt's number is given back, the error is logged, and the customer can ask for the
receipt later (*send receipt*), which issues it then.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari import operations
from apps.safari.documents.receipts import IssuedReceipt, issue_receipt
from apps.safari.documents.service import SafariDocuments
from apps.safari.models import Booking, Payment, PaymentStatus, Receipt
from apps.safari.notices import Notice, notify_customer, payment_template
from apps.safari.omari import ReceiptHook
from documents import format_money
from flows.messages import Document, Reply, Text
from storage import utcnow

__all__ = [
    "Approval",
    "approve_payment_and_notify",
    "approve_payment_and_send_receipt",
    "receipt_document",
    "receipt_hook",
]

log = logging.getLogger("nyala.safari.receipts")


def receipt_document(issued: IssuedReceipt, payment: Payment, reference: str) -> Document:
    """The receipt as a WhatsApp document, with a caption naming what it is for."""
    caption = (
        f"🧾 Receipt {issued.number}: {format_money(payment.amount, payment.currency)} "
        f"for booking {reference}."
    )
    return Document(issued.file_id, issued.filename, caption)


async def _booking_reference(session: AsyncSession, payment: Payment) -> str:
    reference = await session.scalar(
        select(Booking.reference).where(Booking.id == payment.booking_id)
    )
    return str(reference)


async def _receipt_or_none(
    session: AsyncSession, payment: Payment, documents: SafariDocuments
) -> Document | None:
    """Issue the receipt in a savepoint; on failure log it and send none."""
    try:
        async with session.begin_nested():
            issued = await issue_receipt(session, payment.id, documents)
    except Exception:
        log.exception("no receipt for payment %s (it can be asked for later)", payment.id)
        return None
    return receipt_document(issued, payment, await _booking_reference(session, payment))


def receipt_hook(documents: SafariDocuments) -> ReceiptHook:
    """The hook that sends a confirmed payment's receipt with the confirmation."""

    async def send_receipt_on_confirmation(
        session: AsyncSession, payment: Payment
    ) -> Sequence[Reply] | None:
        document = await _receipt_or_none(session, payment, documents)
        return [document] if document is not None else None

    return send_receipt_on_confirmation


@dataclass(frozen=True, slots=True)
class Approval:
    """An approved payment, its receipt's number (``None``: it could not be made now) and
    what the customer was sent (``None``: it was approved before, nothing was sent)."""

    payment: Payment
    receipt_number: str | None
    notice: Notice | None


async def approve_payment_and_notify(
    session: AsyncSession,
    payment_id: int,
    documents: SafariDocuments,
    *,
    actor: str,
    reference: str | None = None,
    sandbox: bool = False,
) -> Approval:
    """Approve a pending manual payment and queue the news and its receipt for the customer.

    In the caller's transaction, like :func:`operations.approve_payment`. Approving an
    approved payment again changes nothing and sends nothing. Outside the customer's
    24-hour window only the ``payment_receipt`` template is queued; its button brings the
    receipt.

    Args:
        session: the transaction.
        payment_id: the payment.
        documents: what the receipt is made with.
        actor: who approves (for the audit log).
        reference: the bank's reference, as the operator confirmed it (shown on the
            receipt); ``None`` takes the one the customer typed, ``""`` is none.
        sandbox: store the customer's messages as ``sandbox`` rows (never sent).

    Raises:
        NotFoundError: there is no such payment.
        ActionError: the payment is neither pending nor approved, or the reference is
            another payment's.
    """
    before = await session.scalar(select(Payment.status).where(Payment.id == payment_id))
    payment = await operations.approve_payment(
        session, payment_id, actor=actor, reference=reference
    )
    if before is PaymentStatus.APPROVED:
        return Approval(payment, None, None)
    booking = await session.get(Booking, payment.booking_id)
    assert booking is not None  # a foreign key
    await session.flush()
    due = (await operations.balance(session, booking)).due
    text = (
        f"✅ Your payment of {format_money(payment.amount, payment.currency)} for booking "
        f"{booking.reference} was approved. Balance due: {format_money(due, booking.currency)}"
    )
    text += "." if due else " — fully paid, thank you!"
    replies: list[Reply] = [Text(text)]
    document = await _receipt_or_none(session, payment, documents)
    if document is not None:
        replies.append(document)
    notice = await notify_customer(
        session,
        booking,
        replies,
        template=await payment_template(session, booking, payment),
        sandbox=sandbox,
        now=utcnow(),
    )
    number = await session.scalar(select(Receipt.number).where(Receipt.payment_id == payment.id))
    return Approval(payment, number, notice)


async def approve_payment_and_send_receipt(
    session: AsyncSession,
    payment_id: int,
    documents: SafariDocuments,
    *,
    actor: str,
    sandbox: bool = False,
) -> Payment:
    """:func:`approve_payment_and_notify`, for callers that need only the payment."""
    approval = await approve_payment_and_notify(
        session, payment_id, documents, actor=actor, sandbox=sandbox
    )
    return approval.payment
