"""The tour operator's business operations: one service layer for flows, CLI and console.

Every function works inside the caller's transaction (an ``AsyncSession``) so a flow
action's writes commit or roll back with the conversation's state change; operator
actions also write the audit log.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari.models import (
    PAID_STATUSES,
    Booking,
    BookingStatus,
    Customer,
    Departure,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Tour,
    Traveler,
)
from documents import format_money
from flows.engine import release_in
from flows.errors import ActionError
from storage import AuditEntry, Contact, NotFoundError, utcnow

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud safely


def new_reference(prefix: str = "SAF") -> str:
    """A human-friendly booking reference such as ``SAF-7K3QX2``."""
    return f"{prefix}-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


@dataclass(frozen=True, slots=True)
class Balance:
    """What a booking costs, what was paid and what is still due."""

    total: Decimal
    paid: Decimal
    currency: str

    @property
    def due(self) -> Decimal:
        """The balance due (never negative)."""
        return max(self.total - self.paid, Decimal("0.00"))


async def balance(session: AsyncSession, booking: Booking) -> Balance:
    """The booking's balance, from its approved and confirmed payments."""
    paid = await session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(
            Payment.booking_id == booking.id, Payment.status.in_(PAID_STATUSES)
        )
    )
    return Balance(
        booking.total_cost, Decimal(paid or 0).quantize(Decimal("0.01")), booking.currency
    )


async def customer_for_contact(
    session: AsyncSession, contact: Contact, *, name: str | None = None
) -> Customer:
    """The customer linked to a WhatsApp contact (created on first booking)."""
    customer = await session.scalar(select(Customer).where(Customer.contact_id == contact.id))
    if customer is None:
        customer = Customer(
            contact_id=contact.id,
            name=name or contact.profile_name or "Customer",
            phone=f"+{contact.wa_id}" if contact.wa_id and not contact.sandbox else None,
        )
        session.add(customer)
        await session.flush()
    elif name:
        customer.name = name
    return customer


SANDBOX_NOTE = "sandbox: booked in the console's chat simulator; took no seats"


async def create_booking(
    session: AsyncSession,
    *,
    customer: Customer,
    departure_id: int,
    traveler_names: list[str],
) -> Booking:
    """Book seats on a departure for the named travelers.

    The seats are taken with one conditional UPDATE, so two customers can never book the
    last seat twice.

    Raises:
        ActionError: the departure is unknown or has too few seats left (callers check
            that it is in the future, in the business's timezone).
    """
    departure = await session.get(Departure, departure_id)
    if departure is None:
        raise ActionError("Sorry, that departure no longer exists. Please choose another.")
    tour = await session.get(Tour, departure.tour_id)
    assert tour is not None
    count = len(traveler_names)
    if count < 1:
        raise ActionError("A booking needs at least one traveler.")
    # A sandbox contact (the console's chat simulator) books without taking seats from
    # real customers; it still hears what a customer would if too few were left.
    sandbox = bool(
        await session.scalar(select(Contact.sandbox).where(Contact.id == customer.contact_id))
    )
    if sandbox:
        fits = departure.seats_left >= count
    else:
        taken = await session.execute(
            update(Departure)
            .where(Departure.id == departure_id, Departure.seats_left >= count)
            .values(seats_left=Departure.seats_left - count)
        )
        fits = taken.rowcount == 1  # type: ignore[attr-defined]
    if not fits:
        left = await session.scalar(
            select(Departure.seats_left).where(Departure.id == departure_id)
        )
        raise ActionError(
            f"Sorry, only {left} seat{'s' if left != 1 else ''} left on that date. "
            "Please choose fewer travelers or another date."
        )
    booking = Booking(
        reference=await _unique_reference(session),
        customer_id=customer.id,
        tour_id=tour.id,
        departure_id=departure.id,
        travelers_count=count,
        total_cost=(tour.price_per_person * count).quantize(Decimal("0.01")),
        currency=tour.currency,
        status=BookingStatus.PENDING,
        notes=SANDBOX_NOTE if sandbox else None,
    )
    session.add(booking)
    await session.flush()
    session.add_all(
        Traveler(booking_id=booking.id, position=i, full_name=name)
        for i, name in enumerate(traveler_names, 1)
    )
    await session.flush()
    return booking


async def _unique_reference(session: AsyncSession) -> str:
    for _ in range(20):
        reference = new_reference()
        if await session.scalar(select(Booking.id).where(Booking.reference == reference)) is None:
            return reference
    raise RuntimeError("could not find a free booking reference")


async def _audit(
    session: AsyncSession, actor: str, action: str, target: str, details: str | None = None
) -> None:
    session.add(
        AuditEntry(at=utcnow(), actor=actor, action=action, target=target, details=details)
    )


async def _payment(session: AsyncSession, payment_id: int) -> Payment:
    payment = await session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise NotFoundError(f"no payment {payment_id}")
    return payment


async def _confirm_booking(session: AsyncSession, booking_id: int) -> None:
    booking = await session.get(Booking, booking_id)
    if booking is not None and booking.status is BookingStatus.PENDING:
        booking.status = BookingStatus.CONFIRMED


async def approve_payment(
    session: AsyncSession, payment_id: int, *, actor: str, reference: str | None = None
) -> Payment:
    """Approve a pending manual payment (idempotent for an approved one).

    The payment keeps the moment the customer paid (when their proof arrived), not the
    moment of approval: that is the date its receipt shows.

    Args:
        session: the transaction.
        payment_id: the payment.
        actor: who approves (for the audit log).
        reference: the bank's reference the operator confirmed (shown on the receipt);
            kept only if the payment has none yet (a provider's is never replaced).
            ``None`` takes the one the customer typed after their proof, if any; ``""``
            is the operator's "no reference" (they cleared what the customer typed).

    Raises:
        NotFoundError: there is no such payment.
        ActionError: the payment is neither pending nor approved, or the reference is on
            another payment already (the same transfer approved twice).
    """
    payment = await _payment(session, payment_id)
    if payment.status is PaymentStatus.APPROVED:
        return payment
    if payment.status is not PaymentStatus.PENDING:
        raise ActionError(f"payment {payment_id} is {payment.status.value}, not pending")
    now = utcnow()
    payment.status = PaymentStatus.APPROVED
    payment.approved_by = actor
    payment.approved_at = now
    payment.paid_at = payment.paid_at or payment.created_at or now
    if reference is None:
        reference = payment.customer_reference
    if reference and not payment.provider_reference:
        used = await session.scalar(
            select(Payment.id).where(
                Payment.method == payment.method, Payment.provider_reference == reference
            )
        )
        if used is not None:
            raise ActionError(f"the reference {reference} is already on payment {used}")
        payment.provider_reference = reference
    await _confirm_booking(session, payment.booking_id)
    await _audit(session, actor, "approve_payment", f"payment {payment_id}",
                 format_money(payment.amount, payment.currency))  # fmt: skip
    return payment


async def reject_payment(
    session: AsyncSession, payment_id: int, *, actor: str, reason: str
) -> Payment:
    """Reject a pending manual payment, keeping why."""
    payment = await _payment(session, payment_id)
    if payment.status is not PaymentStatus.PENDING:
        raise ActionError(f"payment {payment_id} is {payment.status.value}, not pending")
    payment.status = PaymentStatus.REJECTED
    payment.rejected_reason = reason
    await _audit(session, actor, "reject_payment", f"payment {payment_id}", reason)
    return payment


async def record_payment(
    session: AsyncSession,
    booking_id: int,
    *,
    amount: Decimal,
    method: PaymentMethod,
    actor: str,
    reference: str | None = None,
) -> Payment:
    """Record a cash or bank payment an operator received (approved at once)."""
    booking = await session.get(Booking, booking_id)
    if booking is None:
        raise NotFoundError(f"no booking {booking_id}")
    if amount <= 0:
        raise ActionError("the amount must be positive")
    now = utcnow()
    payment = Payment(
        booking_id=booking_id, amount=amount, currency=booking.currency, method=method,
        status=PaymentStatus.APPROVED, provider_reference=reference, paid_at=now,
        approved_by=actor, approved_at=now,
    )  # fmt: skip
    session.add(payment)
    await session.flush()
    await _confirm_booking(session, booking_id)
    await _audit(session, actor, "record_payment", f"booking {booking.reference}",
                 f"{format_money(amount, booking.currency)} {method.value}")  # fmt: skip
    return payment


async def cancel_booking(
    session: AsyncSession, booking_id: int, *, actor: str, reason: str
) -> Booking:
    """Cancel a booking and give its seats back."""
    booking = await session.get(Booking, booking_id, with_for_update=True)
    if booking is None:
        raise NotFoundError(f"no booking {booking_id}")
    if booking.status is BookingStatus.CANCELLED:
        return booking
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = utcnow()
    took_seats = not await session.scalar(
        select(Contact.sandbox)
        .join(Customer, Customer.contact_id == Contact.id)
        .where(Customer.id == booking.customer_id)
    )
    if took_seats:  # a sandbox contact's booking took none
        await session.execute(
            update(Departure)
            .where(Departure.id == booking.departure_id)
            .values(seats_left=Departure.seats_left + booking.travelers_count)
        )
    await _audit(session, actor, "cancel_booking", f"booking {booking.reference}", reason)
    return booking


async def release_conversation(session: AsyncSession, contact_id: int, *, actor: str) -> bool:
    """Give a conversation handed to a person back to the bot."""
    if not await release_in(session, contact_id):
        return False
    await _audit(session, actor, "release_conversation", f"contact {contact_id}")
    return True


def tour_start(tour: Tour, departure: Departure, tz: dt.tzinfo) -> dt.datetime:
    """When a departure starts, as an aware datetime in the business's timezone."""
    return dt.datetime.combine(departure.date, tour.start_time, tzinfo=tz)
