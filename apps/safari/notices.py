"""News the business sends a customer who did not just ask for it, and what became of it.

Approvals, rejections, Omari's confirmations and failures, receipts sent from the console:
each goes through :func:`notify_customer`, which takes an approved template so that
:func:`flows.outreach.queue_outreach` can apply WhatsApp's 24-hour rule (inside the window
the messages, with the template as their fallback; outside it the template alone, whose
button asks for the rest). Nothing business-initiated is queued without a template, so
nothing is queued that WhatsApp will refuse with 131047.

The :class:`Notice` it returns says what was really done, in words for the operator who
pressed the button (the console shows it instead of a hopeful "sent").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari.documents.service import TEMPLATES_FILE
from apps.safari.models import Booking, Customer, Payment
from documents import format_money
from flows.messages import Reply, Template
from flows.outreach import Delivery, configured_template, queue_outreach
from storage import Contact

__all__ = [
    "Notice",
    "notify_customer",
    "payment_template",
    "rejection_template",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """What was queued for the customer.

    Attributes:
        delivery: the messages themselves (``DIRECT``) or the template alone
            (``TEMPLATE``); ``None`` when the customer has no WhatsApp contact.
        queued: how many messages were queued.
        template: the approved template's name (sent instead of, or as the fallback of,
            the messages).
        button: the template's button, which asks for the content when tapped.
        sandbox: stored as sandbox rows, never sent.
    """

    delivery: Delivery | None
    queued: int
    template: str
    button: str = ""
    sandbox: bool = False

    def describe(self) -> str:
        """One or two sentences for the operator: what the customer will get, and why."""
        if self.delivery is None:
            return "The customer has no WhatsApp contact: nothing was sent."
        if self.delivery is Delivery.TEMPLATE:
            then = f"; the rest follows when they tap {self.button}" if self.button else ""
            told = (
                "The customer last wrote more than 24 hours ago, so WhatsApp accepts only an "
                f"approved template: {self.template} was queued{then}."
            )
        else:
            told = (
                f"Queued {self.queued} message{'s' if self.queued != 1 else ''} for the "
                "customer (they wrote within 24 hours; if that window closes before it "
                f"goes, the template {self.template} goes instead)."
            )
        return f"{told} Sandbox: stored, never sent." if self.sandbox else told


async def _first_name(session: AsyncSession, booking: Booking) -> tuple[str, str]:
    name = await session.scalar(select(Customer.name).where(Customer.id == booking.customer_id))
    full = (name or "").strip()
    return (full.split()[0] if full else "there"), full


async def payment_template(session: AsyncSession, booking: Booking, payment: Payment) -> Template:
    """The approved ``payment_receipt`` template: news of a paid payment (its button asks
    for the receipt)."""
    first, full = await _first_name(session, booking)
    values = {
        "first_name": first,
        "customer_name": full,
        "amount": format_money(payment.amount, payment.currency),
        "reference": booking.reference,
    }
    return configured_template(TEMPLATES_FILE, "payment_receipt", values)


async def rejection_template(
    session: AsyncSession, booking: Booking, payment: Payment, reason: str
) -> Template:
    """The approved ``payment_rejected`` template: a payment that was not accepted, and
    why (its button starts paying again)."""
    first, full = await _first_name(session, booking)
    values = {
        "first_name": first,
        "customer_name": full,
        "amount": format_money(payment.amount, payment.currency),
        "reference": booking.reference,
        # A template parameter may hold no line breaks or runs of spaces (Meta's rule).
        "reason": " ".join(reason.split())[:200],
    }
    return configured_template(TEMPLATES_FILE, "payment_rejected", values)


async def notify_customer(
    session: AsyncSession,
    booking: Booking,
    replies: Sequence[Reply],
    *,
    template: Template,
    sandbox: bool,
    now: dt.datetime,
) -> Notice:
    """Queue ``replies`` for the booking's customer, or ``template`` outside the window.

    Args:
        session: the caller's transaction (the rows commit with it).
        booking: whose customer is told.
        replies: the content.
        template: the approved template that opens the conversation when the 24-hour
            window is closed.
        sandbox: store the rows as ``sandbox`` (never sent).
        now: the time of queueing.
    """
    button = template.buttons[0].title if template.buttons else ""
    found = (
        await session.execute(
            select(Customer.contact_id, Contact.sandbox)
            .outerjoin(Contact, Contact.id == Customer.contact_id)
            .where(Customer.id == booking.customer_id)
        )
    ).first()
    contact_id, sandbox_contact = found if found is not None else (None, False)
    if contact_id is None:
        # A customer without WhatsApp (entered by an operator).
        return Notice(delivery=None, queued=0, template=template.name, button=button)
    delivery = await queue_outreach(
        session, contact_id, replies, template=template, now=now, sandbox=sandbox
    )
    return Notice(
        delivery=delivery,
        queued=len(replies) if delivery is Delivery.DIRECT else 1,
        template=template.name,
        button=button,
        sandbox=sandbox or bool(sandbox_contact),
    )
