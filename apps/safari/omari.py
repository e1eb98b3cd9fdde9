"""Omari mobile money: a sandbox provider and the confirmation service.

A payment goes in two halves. :class:`apps.safari.omari_client.OmariClient` (the HTTP
adapter) asks Omari to collect (the customer approves a prompt on their phone); later
Omari calls back (``POST /payments/omari/callback``, :mod:`apps.safari.omari_callback`)
and :func:`apply_provider_event` applies the result in ONE transaction: the payment
confirmed or rejected, the booking confirmed, a message to the customer queued, the
confirmation hooks run (the receipt) and the event id recorded, so a replayed event
changes nothing. :class:`SandboxOmari` needs no network: it confirms its payments itself
a moment later through the same service.

The hooks of a running app are a :class:`ReceiptHooks` object in its services (the
app's lifespan registers the receipt hook), never a module registry. Amounts are written
by :func:`documents.format_money`, as everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari.models import (
    PAID_STATUSES,
    Booking,
    BookingStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    ProviderEvent,
)
from apps.safari.notices import notify_customer, payment_template, rejection_template
from apps.safari.operations import balance
from apps.safari.payments import Initiated, PaymentRequest
from documents import format_money
from flows.messages import Reply, Text
from storage import AuditEntry, ConflictError, Database, NotFoundError, utcnow

__all__ = [
    "CALLBACK_PATH",
    "PROVIDER",
    "EventStatus",
    "Outcome",
    "OutcomeKind",
    "PaymentConflictError",
    "PaymentEvent",
    "ReceiptHook",
    "ReceiptHooks",
    "SandboxOmari",
    "UnknownPaymentError",
    "apply_provider_event",
]

log = logging.getLogger("nyala.payments")

PROVIDER: Final = "omari"
CALLBACK_PATH: Final = "/payments/omari/callback"
CENTS: Final = Decimal("0.01")

Clock = Callable[[], dt.datetime]

BUSY = (
    "Omari is not responding right now. Please try again in a few minutes, or choose "
    "another way to pay."
)
TIMED_OUT = (
    "Omari did not answer in time. If a payment prompt reaches your phone you can still "
    "approve it; otherwise please try again in a few minutes."
)
REFUSED = "Omari could not start this payment. Please try again, or choose another way to pay."
# Omari's error codes that the customer can do something about.
CUSTOMER_ERRORS: Final = {
    "invalid_msisdn": "That number doesn't look like an Omari wallet. Please check it and "
    "try again, or choose another way to pay.",
    "subscriber_not_found": "That number isn't registered for Omari. Please check it, or "
    "choose another way to pay.",
    "limit_exceeded": "This amount is above your Omari wallet's limit. Please choose "
    "another way to pay, or contact Omari to raise the limit.",
    "duplicate_transaction": "A payment for this booking is already waiting for your "
    "approval: please check your phone.",
}


# --- the confirmation service ---------------------------------------------------------


class EventStatus(enum.StrEnum):
    """What the provider says happened to a payment."""

    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentEvent:
    """A provider's word on a payment, authenticated by whoever built it.

    Attributes:
        event_id: the provider's id of this event (the idempotency key).
        provider_reference: the provider's transaction reference (from initiation).
        payment_id: our ``payments.id`` (the ``merchant_reference`` we sent).
        amount: the amount the provider collected or failed to collect.
        currency: ISO 4217 code.
        status: success or failure.
        reason: why it failed, as the provider words it.
        occurred_at: when the provider says it happened (UTC).
    """

    event_id: str
    provider_reference: str
    payment_id: int
    amount: Decimal
    currency: str
    status: EventStatus
    reason: str | None = None
    occurred_at: dt.datetime


class OutcomeKind(enum.StrEnum):
    """What applying an event did."""

    CONFIRMED = "confirmed"  # the payment is now confirmed
    FAILED = "failed"  # the payment is now rejected
    DUPLICATE = "duplicate"  # nothing: the event or its effect was already applied


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The result of :func:`apply_provider_event`.

    Attributes:
        kind: what it did.
        payment_id: the payment.
        booking_reference: its booking's reference.
        queued: how many messages to the customer it queued (wake the sender if any).
    """

    kind: OutcomeKind
    payment_id: int
    booking_reference: str
    queued: int = 0


class UnknownPaymentError(NotFoundError):
    """The event names no Omari payment of ours; nothing was written."""


class PaymentConflictError(ConflictError):
    """The event contradicts the payment (reference, amount, currency or its status);
    nothing was written."""


ReceiptHook = Callable[[AsyncSession, Payment], Awaitable[Sequence[Reply] | None]]
"""``async def hook(session, payment)``: runs in the confirming transaction; may return
replies for the customer (e.g. the receipt as a ``Document``), queued in that transaction.
"""


class ReceiptHooks:
    """What a confirmed payment triggers (its receipt): a running app's service.

    Register with ``hooks.register(hook)``; every hook runs, in registration
    order, inside the transaction that confirms the payment, once the payment and its
    booking are updated; the replies hooks return are queued after the confirmation
    message. A hook that raises rolls the whole confirmation back, so the provider's
    callback gets an error (500) and is delivered again later.
    """

    def __init__(self) -> None:
        self._hooks: list[ReceiptHook] = []

    def register(self, hook: ReceiptHook) -> ReceiptHook:
        """Add ``hook`` (usable as a decorator); registering it twice adds it once."""
        if hook not in self._hooks:
            self._hooks.append(hook)
        return hook

    def unregister(self, hook: ReceiptHook) -> None:
        """Remove ``hook`` if it is registered."""
        with contextlib.suppress(ValueError):
            self._hooks.remove(hook)

    @property
    def hooks(self) -> tuple[ReceiptHook, ...]:
        """The registered hooks, in order."""
        return tuple(self._hooks)

    async def __call__(self, session: AsyncSession, payment: Payment) -> list[Reply]:
        """Run every hook; returns the replies they asked to send the customer."""
        replies: list[Reply] = []
        for hook in list(self._hooks):
            replies.extend(await hook(session, payment) or ())
        return replies


async def apply_provider_event(
    db: Database,
    event: PaymentEvent,
    *,
    sandbox: bool,
    hooks: ReceiptHooks | None = None,
    clock: Clock = utcnow,
) -> Outcome:
    """Apply a provider's confirmation or failure of a payment, in one transaction.

    The payment row is locked first, so deliveries of events for one payment apply one
    after another. The same event id twice, a success for a confirmed payment or a
    failure for a rejected one are no-op successes (:attr:`OutcomeKind.DUPLICATE`).

    Args:
        db: the database.
        event: the authenticated event.
        sandbox: store the customer's message as a ``sandbox`` row (never sent) rather
            than ``queued`` for the sender.
        hooks: what a confirmation triggers (the receipt), run in its transaction.
        clock: the time source.

    Returns:
        What was done.

    Raises:
        UnknownPaymentError: no Omari payment has the event's payment id.
        PaymentConflictError: the provider reference, amount or currency differ from the
            payment's, the event id was used for another payment, or the payment is in a
            state the event cannot follow (e.g. a success after a failure).
    """
    try:
        async with db.transaction() as session:
            return await _apply(session, event, sandbox=sandbox, hooks=hooks, now=clock())
    except IntegrityError as exc:  # a reference or event id already used elsewhere
        raise PaymentConflictError(
            f"event {event.event_id} collides with an existing payment or event"
        ) from exc


async def _apply(
    session: AsyncSession,
    event: PaymentEvent,
    *,
    sandbox: bool,
    hooks: ReceiptHooks | None,
    now: dt.datetime,
) -> Outcome:
    payment = await session.get(Payment, event.payment_id, with_for_update=True)
    if payment is None or payment.method is not PaymentMethod.OMARI:
        raise UnknownPaymentError(f"no Omari payment {event.payment_id}")
    _check_matches(payment, event)
    booking = await session.get(Booking, payment.booking_id, with_for_update=True)
    assert booking is not None  # a foreign key
    seen = await session.scalar(
        select(ProviderEvent).where(
            ProviderEvent.provider == PROVIDER, ProviderEvent.event_id == event.event_id
        )
    )
    if seen is not None:
        if seen.payment_id != payment.id:
            raise PaymentConflictError(
                f"event {event.event_id} was already applied to another payment"
            )
        return Outcome(
            kind=OutcomeKind.DUPLICATE, payment_id=payment.id, booking_reference=booking.reference
        )
    success = event.status is EventStatus.SUCCESS
    target = "confirmed" if success else "failed"
    if payment.status in (PAID_STATUSES if success else (PaymentStatus.REJECTED,)):
        _record(session, event, payment, OutcomeKind.DUPLICATE, now)
        return Outcome(
            kind=OutcomeKind.DUPLICATE, payment_id=payment.id, booking_reference=booking.reference
        )
    if payment.status is not PaymentStatus.PENDING:
        log.warning(
            "omari says payment %s %s, but it is %s: needs a person",
            payment.id, target, payment.status.value,
        )  # fmt: skip
        raise PaymentConflictError(
            f"payment {payment.id} is {payment.status.value}; it cannot become {target}"
        )
    if payment.provider_reference is None:
        # The payment flow should have stored it with the payment; the signed event and
        # the matching amount are enough to adopt it.
        log.warning("payment %s had no provider reference; adopting Omari's", payment.id)
        payment.provider_reference = event.provider_reference
    if success:
        replies = await _confirm(session, payment, booking, now, hooks)
        kind = OutcomeKind.CONFIRMED
        template = await payment_template(session, booking, payment)
    else:
        replies = _reject(payment, booking, event.reason)
        kind = OutcomeKind.FAILED
        template = await rejection_template(
            session, booking, payment, payment.rejected_reason or ""
        )
    _record(session, event, payment, kind, now)
    amount = format_money(payment.amount, payment.currency)
    session.add(
        AuditEntry(
            at=now, actor=PROVIDER, action=f"payment_{kind.value}", target=f"payment {payment.id}",
            details=f"{amount} booking {booking.reference} "
            f"reference {payment.provider_reference} event {event.event_id}",
        )
    )  # fmt: skip
    notice = await notify_customer(
        session, booking, replies, template=template, sandbox=sandbox, now=now
    )
    await session.flush()
    log.info(
        "omari event %s: payment %s %s (booking %s)",
        event.event_id, payment.id, kind.value, booking.reference,
    )  # fmt: skip
    return Outcome(
        kind=kind,
        payment_id=payment.id,
        booking_reference=booking.reference,
        queued=notice.queued,
    )


def _check_matches(payment: Payment, event: PaymentEvent) -> None:
    if payment.provider_reference not in (None, event.provider_reference):
        raise PaymentConflictError(
            f"payment {payment.id} has another provider reference "
            f"than {event.provider_reference!r}"
        )
    if event.currency.upper() != payment.currency.upper() or event.amount != payment.amount:
        raise PaymentConflictError(
            f"payment {payment.id} is {format_money(payment.amount, payment.currency)}, "
            f"not {format_money(event.amount, event.currency)}"
        )


def _record(
    session: AsyncSession,
    event: PaymentEvent,
    payment: Payment,
    outcome: OutcomeKind,
    now: dt.datetime,
) -> None:
    session.add(
        ProviderEvent(
            provider=PROVIDER,
            event_id=event.event_id,
            payment_id=payment.id,
            status=event.status.value,
            outcome=outcome.value,
            received_at=now,
        )
    )


async def _confirm(
    session: AsyncSession,
    payment: Payment,
    booking: Booking,
    now: dt.datetime,
    hooks: ReceiptHooks | None,
) -> list[Reply]:
    payment.status = PaymentStatus.CONFIRMED
    payment.paid_at = now
    if booking.status is BookingStatus.PENDING:
        booking.status = BookingStatus.CONFIRMED
    elif booking.status is BookingStatus.CANCELLED:
        log.warning("payment %s confirmed for cancelled booking %s", payment.id, booking.id)
    await session.flush()
    due = (await balance(session, booking)).due
    paid = format_money(payment.amount, payment.currency)
    text = (
        f"✅ Payment of {paid} received for booking {booking.reference}. "
        f"Balance due: {format_money(due, booking.currency)}"
    )
    text += "." if due else " — fully paid, thank you!"
    replies: list[Reply] = [Text(text)]
    if hooks is not None:
        replies.extend(await hooks(session, payment))
    return replies


def _reject(payment: Payment, booking: Booking, reason: str | None) -> list[Reply]:
    why = (reason or "").strip()[:200] or "declined by Omari"
    payment.status = PaymentStatus.REJECTED
    payment.rejected_reason = why
    amount = format_money(payment.amount, payment.currency)
    return [
        Text(
            f"❌ Your Omari payment of {amount} for booking "
            f"{booking.reference} did not go through ({why}). Type *menu* to try again or "
            "to choose another way to pay."
        )
    ]


# --- providers ------------------------------------------------------------------------


def _masked(msisdn: str) -> str:
    """``+263 ••• 4567``: enough for the customer to recognise their number."""
    return f"{msisdn[:4]} ••• {msisdn[-4:]}" if len(msisdn) > 8 else msisdn


def instructions(request: PaymentRequest) -> str:
    return (
        f"📲 Check your phone ({_masked(request.mobile_number)}): approve the Omari payment "
        f"of {format_money(request.amount, request.currency)} for booking "
        f"{request.booking_reference} with your PIN. I'll confirm here as soon as Omari "
        "tells us."
    )


class SandboxOmari:
    """An Omari that needs no network: each payment confirms itself ``delay`` seconds later.

    The confirmation goes through :func:`apply_provider_event`, exactly like Omari's
    callback. It waits for the payment row to be committed (the payment flow commits it
    after :meth:`initiate` returns), trying ``attempts`` times, ``delay`` apart. No money
    moves: this is for ``nyala chat``, sandbox servers and tests.

    Args:
        db: the database.
        sandbox: store the customer's messages as ``sandbox`` rows (never sent).
        delay: seconds before confirming (and between attempts).
        attempts: how often to look for the payment before giving up.
        fail_reason: when set, payments fail with this reason instead of succeeding.
        hooks: what a confirmation triggers (the receipt).
        on_applied: called with each outcome (e.g. to wake the sender).
    """

    name = PROVIDER

    def __init__(
        self,
        db: Database,
        *,
        sandbox: bool = True,
        delay: float = 1.0,
        attempts: int = 20,
        fail_reason: str | None = None,
        hooks: ReceiptHooks | None = None,
        on_applied: Callable[[Outcome], object] | None = None,
    ) -> None:
        self.db = db
        self.hooks = hooks
        self.sandbox = sandbox
        self.delay = delay
        self.attempts = attempts
        self.fail_reason = fail_reason
        self.on_applied = on_applied
        self.outcomes: list[Outcome] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def initiate(self, request: PaymentRequest) -> Initiated:
        """Accept at once and schedule the confirmation (or failure)."""
        reference = f"SANDBOX-{secrets.token_hex(6).upper()}"
        task = asyncio.create_task(
            self._settle_later(request, reference), name=f"sandbox-omari-{request.payment_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Initiated(
            provider_reference=reference,
            instructions=instructions(request)
            + " (Sandbox: no money moves; it confirms itself in a moment.)",
        )

    @property
    def pending(self) -> int:
        """How many payments are still waiting for their confirmation."""
        return len(self._tasks)

    async def settle(self) -> None:
        """Wait until every scheduled confirmation was applied or gave up (bound it with
        :func:`asyncio.timeout`; that leaves the confirmations running)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Cancel confirmations not applied yet."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _settle_later(self, request: PaymentRequest, reference: str) -> None:
        event = PaymentEvent(
            event_id=f"sandbox-{uuid.uuid4().hex}",
            provider_reference=reference,
            payment_id=request.payment_id,
            amount=request.amount,
            currency=request.currency,
            status=EventStatus.FAILED if self.fail_reason else EventStatus.SUCCESS,
            reason=self.fail_reason,
            occurred_at=utcnow(),
        )
        for _ in range(self.attempts):
            await asyncio.sleep(self.delay)
            try:
                outcome = await apply_provider_event(
                    self.db, event, sandbox=self.sandbox, hooks=self.hooks
                )
            except UnknownPaymentError:
                continue  # the flow's transaction has not committed the payment yet
            except Exception:
                log.exception("sandbox omari could not settle payment %s", request.payment_id)
                return
            self.outcomes.append(outcome)
            if self.on_applied is not None:
                self.on_applied(outcome)
            return
        log.warning("sandbox omari gave up on payment %s: never committed", request.payment_id)
