"""Omari's confirmation service on both backends, the sandbox provider and the HTTP client."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari.fake_omari import FakeOmari
from apps.safari.models import (
    Booking,
    BookingStatus,
    Customer,
    Payment,
    PaymentMethod,
    PaymentStatus,
    ProviderEvent,
)
from apps.safari.omari import (
    BUSY,
    CUSTOMER_ERRORS,
    REFUSED,
    TIMED_OUT,
    EventStatus,
    OutcomeKind,
    PaymentConflictError,
    PaymentEvent,
    ReceiptHooks,
    SandboxOmari,
    UnknownPaymentError,
    apply_provider_event,
)
from apps.safari.omari_client import OmariClient
from apps.safari.payments import (
    UNAVAILABLE,
    PaymentOutcomeUnknownError,
    PaymentProviderError,
    PaymentProviders,
    PaymentRequest,
)
from bot.cli.chat import TerminalChat
from flows import App, Engine
from flows.messages import Reply, Text
from flows.runtime import Runtime
from storage import AuditEntry, Database, OutboundMessage, OutboundStatus
from tests.apps.safari.catalogue import add_contact, add_tour

DAY = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=20)
MERCHANT_KEY = "test-merchant-key"
CALLBACK_SECRET = "test-callback-secret"


@dataclass(frozen=True)
class Seeded:
    """A pending Omari payment on a pending booking, made with the storage models."""

    payment_id: int
    booking_id: int
    booking_reference: str
    contact_id: int
    amount: Decimal
    provider_reference: str | None


async def seed_payment(
    db: Database,
    *,
    amount: str = "50.00",
    total: str = "120.00",
    provider_reference: str | None = "OM-TEST-1",
    wa_id: str = "263770000321",
    method: PaymentMethod = PaymentMethod.OMARI,
    reference: str = "SAF-7K3QX2",
    wrote: dt.timedelta = dt.timedelta(minutes=5),
) -> Seeded:
    """A tour, a departure, a customer with a WhatsApp contact, a booking and a payment;
    the customer last wrote ``wrote`` ago (paying in the chat)."""
    async with db.transaction() as s:
        tour, [departure] = await add_tour(s, code=reference, departures=((DAY, 10, 8),))
        contact = await add_contact(s, wa_id)
        contact.last_inbound_at = dt.datetime.now(dt.UTC) - wrote
        customer = Customer(contact_id=contact.id, name="Rudo Chikwanha", phone=f"+{wa_id}")
        s.add(customer)
        await s.flush()
        booking = Booking(
            reference=reference, customer_id=customer.id, tour_id=tour.id,
            departure_id=departure.id, travelers_count=2, total_cost=Decimal(total),
            currency="USD", status=BookingStatus.PENDING,
        )  # fmt: skip
        s.add(booking)
        await s.flush()
        payment = Payment(
            booking_id=booking.id, amount=Decimal(amount), currency="USD", method=method,
            status=PaymentStatus.PENDING, provider_reference=provider_reference,
            mobile_number=f"+{wa_id}",
        )  # fmt: skip
        s.add(payment)
        await s.flush()
        return Seeded(
            payment.id, booking.id, booking.reference, contact.id, Decimal(amount),
            provider_reference,
        )  # fmt: skip


def event_for(seeded: Seeded, **changes: Any) -> PaymentEvent:
    """A success event matching the seeded payment, with ``changes``."""
    values: dict[str, Any] = {
        "event_id": "evt_1",
        "provider_reference": seeded.provider_reference or "OM-ADOPTED",
        "payment_id": seeded.payment_id,
        "amount": seeded.amount,
        "currency": "USD",
        "status": EventStatus.SUCCESS,
        "occurred_at": dt.datetime.now(dt.UTC),
    }
    values.update(changes)
    return PaymentEvent(**values)


@dataclass(frozen=True)
class Snapshot:
    """Everything a provider event may write."""

    payment_status: PaymentStatus
    paid_at: dt.datetime | None
    rejected_reason: str | None
    provider_reference: str | None
    booking_status: BookingStatus
    events: int
    messages: list[str]
    message_statuses: list[OutboundStatus]
    audits: list[str]


async def snapshot(db: Database, seeded: Seeded) -> Snapshot:
    async with db.read() as s:
        payment = await s.get(Payment, seeded.payment_id)
        booking = await s.get(Booking, seeded.booking_id)
        assert payment is not None and booking is not None
        rows = (await s.scalars(select(OutboundMessage).order_by(OutboundMessage.id))).all()
        events = await s.scalar(select(func.count()).select_from(ProviderEvent))
        audits = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    return Snapshot(
        payment.status, payment.paid_at, payment.rejected_reason, payment.provider_reference,
        booking.status, int(events or 0),
        [r.payload.get("body", r.kind) for r in rows], [r.status for r in rows], list(audits),
    )  # fmt: skip


async def assert_untouched(db: Database, seeded: Seeded) -> None:
    after = await snapshot(db, seeded)
    assert after == Snapshot(
        PaymentStatus.PENDING, None, None, seeded.provider_reference, BookingStatus.PENDING,
        0, [], [], [],
    )  # fmt: skip


# --- the confirmation service -----------------------------------------------------------


async def test_a_success_confirms_payment_and_booking_and_tells_the_customer(
    db: Database,
) -> None:
    seeded = await seed_payment(db, amount="50.00", total="120.00")
    outcome = await apply_provider_event(db, event_for(seeded), sandbox=True)
    assert outcome.kind is OutcomeKind.CONFIRMED
    assert (outcome.payment_id, outcome.booking_reference, outcome.queued) == (
        seeded.payment_id, "SAF-7K3QX2", 1,
    )  # fmt: skip
    after = await snapshot(db, seeded)
    assert after.payment_status is PaymentStatus.CONFIRMED
    assert after.paid_at is not None
    assert after.booking_status is BookingStatus.CONFIRMED
    assert after.events == 1
    assert after.messages == [
        "✅ Payment of USD 50.00 received for booking SAF-7K3QX2. Balance due: USD 70.00."
    ]
    assert after.message_statuses == [OutboundStatus.SANDBOX]
    assert after.audits == ["payment_confirmed"]
    async with db.read() as s:
        row = await s.scalar(select(OutboundMessage))
    assert row is not None and row.contact_id == seeded.contact_id and row.inbound_id is None


async def test_a_confirmation_after_the_window_closed_sends_the_template(db: Database) -> None:
    """Omari confirms a day after the customer last wrote: only the approved template may
    go out; its button asks for the receipt."""
    seeded = await seed_payment(db, wrote=dt.timedelta(hours=25))
    outcome = await apply_provider_event(db, event_for(seeded), sandbox=False)
    assert outcome.queued == 1
    async with db.read() as s:
        (row,) = (await s.scalars(select(OutboundMessage))).all()
    assert row.kind == "template" and row.payload["name"] == "payment_receipt"
    assert list(row.payload["parameters"]) == ["Rudo", "USD 50.00", "SAF-7K3QX2"]
    assert row.payload["buttons"][0]["id"] == "flow:receipt_flow"


async def test_a_full_payment_outside_the_sandbox_is_queued_for_the_sender(db: Database) -> None:
    seeded = await seed_payment(db, amount="120.00", total="120.00")
    await apply_provider_event(db, event_for(seeded), sandbox=False)
    after = await snapshot(db, seeded)
    assert after.messages == [
        "✅ Payment of USD 120.00 received for booking SAF-7K3QX2. Balance due: USD 0.00 — "
        "fully paid, thank you!"
    ]
    assert after.message_statuses == [OutboundStatus.QUEUED]
    async with db.read() as s:
        row = await s.scalar(select(OutboundMessage))
    assert row is not None and row.next_attempt_at is not None


async def test_a_failure_rejects_the_payment_with_the_reason(db: Database) -> None:
    seeded = await seed_payment(db)
    outcome = await apply_provider_event(
        db, event_for(seeded, status=EventStatus.FAILED, reason="Insufficient funds"), sandbox=True
    )
    assert outcome.kind is OutcomeKind.FAILED
    after = await snapshot(db, seeded)
    assert (after.payment_status, after.rejected_reason) == (
        PaymentStatus.REJECTED, "Insufficient funds",
    )  # fmt: skip
    assert after.booking_status is BookingStatus.PENDING
    assert after.paid_at is None
    assert after.messages == [
        "❌ Your Omari payment of USD 50.00 for booking SAF-7K3QX2 did not go through "
        "(Insufficient funds). Type *menu* to try again or to choose another way to pay."
    ]
    assert after.audits == ["payment_failed"]


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": Decimal("5.00")},
        {"amount": Decimal("50.01")},
        {"currency": "ZWG"},
        {"provider_reference": "OM-SOMEONE-ELSE"},
    ],
    ids=["amount", "cents", "currency", "reference"],
)
async def test_a_different_amount_or_reference_is_refused_and_writes_nothing(
    db: Database, changes: dict[str, Any]
) -> None:
    seeded = await seed_payment(db)
    with pytest.raises(PaymentConflictError):
        await apply_provider_event(db, event_for(seeded, **changes), sandbox=True)
    await assert_untouched(db, seeded)


async def test_the_same_amount_written_differently_is_the_same_amount(db: Database) -> None:
    seeded = await seed_payment(db, amount="50.00")
    outcome = await apply_provider_event(
        db, event_for(seeded, amount=Decimal("50"), currency="usd"), sandbox=True
    )
    assert outcome.kind is OutcomeKind.CONFIRMED


async def test_an_unknown_payment_is_refused_and_writes_nothing(db: Database) -> None:
    seeded = await seed_payment(db)
    with pytest.raises(UnknownPaymentError):
        await apply_provider_event(db, event_for(seeded, payment_id=999_999), sandbox=True)
    await assert_untouched(db, seeded)


async def test_a_bank_transfer_is_not_an_omari_payment(db: Database) -> None:
    seeded = await seed_payment(db, method=PaymentMethod.BANK_TRANSFER)
    with pytest.raises(UnknownPaymentError):
        await apply_provider_event(db, event_for(seeded), sandbox=True)
    await assert_untouched(db, seeded)


async def test_events_are_idempotent(db: Database) -> None:
    seeded = await seed_payment(db)
    first = await apply_provider_event(db, event_for(seeded), sandbox=True)
    again = await apply_provider_event(db, event_for(seeded), sandbox=True)
    # Another delivery of the same news under a new event id changes nothing either.
    other = await apply_provider_event(db, event_for(seeded, event_id="evt_2"), sandbox=True)
    assert [first.kind, again.kind, other.kind] == [
        OutcomeKind.CONFIRMED, OutcomeKind.DUPLICATE, OutcomeKind.DUPLICATE,
    ]  # fmt: skip
    assert again.queued == other.queued == 0
    after = await snapshot(db, seeded)
    assert len(after.messages) == 1
    assert after.events == 2
    assert after.audits == ["payment_confirmed"]
    async with db.read() as s:
        outcomes = (
            await s.scalars(select(ProviderEvent.outcome).order_by(ProviderEvent.id))
        ).all()
    assert outcomes == ["confirmed", "duplicate"]


async def test_a_failure_after_a_confirmation_is_a_conflict(db: Database) -> None:
    seeded = await seed_payment(db)
    await apply_provider_event(db, event_for(seeded), sandbox=True)
    before = await snapshot(db, seeded)
    with pytest.raises(PaymentConflictError, match="is confirmed"):
        await apply_provider_event(
            db, event_for(seeded, event_id="evt_2", status=EventStatus.FAILED), sandbox=True
        )
    assert await snapshot(db, seeded) == before


async def test_an_event_id_cannot_move_to_another_payment(db: Database) -> None:
    seeded = await seed_payment(db)
    await apply_provider_event(db, event_for(seeded), sandbox=True)
    async with db.transaction() as s:
        second = Payment(
            booking_id=seeded.booking_id, amount=Decimal("70.00"), currency="USD",
            method=PaymentMethod.OMARI, provider_reference="OM-TEST-2",
        )  # fmt: skip
        s.add(second)
        await s.flush()
        second_id = second.id
    with pytest.raises(PaymentConflictError, match="another payment"):
        await apply_provider_event(
            db,
            event_for(
                seeded,
                payment_id=second_id,
                amount=Decimal("70.00"),
                provider_reference="OM-TEST-2",
            ),
            sandbox=True,
        )


async def test_concurrent_deliveries_apply_once(db: Database) -> None:
    seeded = await seed_payment(db)
    outcomes = await asyncio.gather(
        *(apply_provider_event(db, event_for(seeded), sandbox=True) for _ in range(5))
    )
    kinds = sorted(o.kind.value for o in outcomes)
    assert kinds == ["confirmed", "duplicate", "duplicate", "duplicate", "duplicate"]
    after = await snapshot(db, seeded)
    assert (len(after.messages), after.events) == (1, 1)


async def test_a_payment_without_a_stored_reference_adopts_the_providers(db: Database) -> None:
    seeded = await seed_payment(db, provider_reference=None)
    await apply_provider_event(db, event_for(seeded, provider_reference="OM-LATE"), sandbox=True)
    assert (await snapshot(db, seeded)).provider_reference == "OM-LATE"


async def test_a_cancelled_booking_stays_cancelled(db: Database) -> None:
    seeded = await seed_payment(db)
    async with db.transaction() as s:
        booking = await s.get(Booking, seeded.booking_id)
        assert booking is not None
        booking.status = BookingStatus.CANCELLED
    await apply_provider_event(db, event_for(seeded), sandbox=True)
    after = await snapshot(db, seeded)
    assert (after.payment_status, after.booking_status) == (
        PaymentStatus.CONFIRMED, BookingStatus.CANCELLED,
    )  # fmt: skip


# --- the receipt hook -------------------------------------------------------------------


async def test_the_receipt_hook_runs_once_per_confirmation(db: Database) -> None:
    seen: list[tuple[int, PaymentStatus]] = []

    async def receipt(session: AsyncSession, payment: Payment) -> Sequence[Reply]:
        assert session.in_transaction()
        seen.append((payment.id, payment.status))
        return [Text(f"Receipt for payment {payment.id}")]

    hooks = ReceiptHooks()
    hooks.register(receipt)
    hooks.register(receipt)  # once is enough
    seeded = await seed_payment(db)
    failed = await seed_payment(
        db, wa_id="263770000999", reference="SAF-SECOND", provider_reference="OM-TEST-F"
    )
    await apply_provider_event(db, event_for(seeded), sandbox=True, hooks=hooks)
    await apply_provider_event(db, event_for(seeded), sandbox=True, hooks=hooks)
    await apply_provider_event(
        db,
        event_for(failed, event_id="evt_f", status=EventStatus.FAILED, reason="Cancelled"),
        sandbox=True,
        hooks=hooks,
    )
    assert seen == [(seeded.payment_id, PaymentStatus.CONFIRMED)]
    messages = (await snapshot(db, seeded)).messages
    assert messages[1] == f"Receipt for payment {seeded.payment_id}"


async def test_a_failing_receipt_hook_rolls_the_confirmation_back(db: Database) -> None:
    async def broken(session: AsyncSession, payment: Payment) -> None:
        raise RuntimeError("the printer is on fire")

    seeded = await seed_payment(db)
    hooks = ReceiptHooks()
    hooks.register(broken)
    with pytest.raises(RuntimeError, match="on fire"):
        await apply_provider_event(db, event_for(seeded), sandbox=True, hooks=hooks)
    await assert_untouched(db, seeded)
    hooks.unregister(broken)
    assert hooks.hooks == ()


# --- the sandbox provider ---------------------------------------------------------------


def request_for(seeded: Seeded) -> PaymentRequest:
    return PaymentRequest(
        payment_id=seeded.payment_id,
        booking_reference=seeded.booking_reference,
        amount=seeded.amount,
        currency="USD",
        mobile_number="+263770000321",
    )


async def test_the_sandbox_confirms_a_payment_once_it_is_committed(db: Database) -> None:
    seeded = await seed_payment(db, provider_reference=None)
    provider = SandboxOmari(db, delay=0.05)
    # As the payment flow does: initiate inside the transaction that stores the reference,
    # which commits only later.
    async with db.transaction() as s:
        initiated = await provider.initiate(request_for(seeded))
        payment = await s.get(Payment, seeded.payment_id)
        assert payment is not None
        payment.provider_reference = initiated.provider_reference
        await asyncio.sleep(0.2)
    assert "approve the Omari payment of USD 50.00" in initiated.instructions
    async with asyncio.timeout(10):
        await provider.settle()
    assert [o.kind for o in provider.outcomes] == [OutcomeKind.CONFIRMED]
    after = await snapshot(db, seeded)
    assert after.payment_status is PaymentStatus.CONFIRMED
    assert after.provider_reference == initiated.provider_reference
    assert after.message_statuses == [OutboundStatus.SANDBOX]


async def test_the_sandbox_can_fail_payments(db: Database) -> None:
    seeded = await seed_payment(db, provider_reference=None)
    provider = SandboxOmari(db, delay=0.01, fail_reason="Declined by the customer")
    await provider.initiate(request_for(seeded))
    async with asyncio.timeout(10):
        await provider.settle()
    after = await snapshot(db, seeded)
    assert (after.payment_status, after.rejected_reason) == (
        PaymentStatus.REJECTED, "Declined by the customer",
    )  # fmt: skip


async def test_closing_the_sandbox_cancels_pending_confirmations(db: Database) -> None:
    seeded = await seed_payment(db)
    provider = SandboxOmari(db, delay=30)
    await provider.initiate(request_for(seeded))
    assert provider.pending == 1
    await provider.close()
    assert provider.pending == 0
    await assert_untouched(db, seeded)


# --- the HTTP client against the fake Omari ---------------------------------------------


@pytest_asyncio.fixture
async def omari() -> AsyncIterator[tuple[FakeOmari, OmariClient]]:
    async with (
        FakeOmari(merchant_key=MERCHANT_KEY, callback_secret=CALLBACK_SECRET, hang=5) as fake,
        aiohttp.ClientSession() as http,
    ):
        assert fake.base_url is not None
        client = OmariClient(
            http, base_url=fake.base_url, merchant_key=MERCHANT_KEY,
            callback_url="http://127.0.0.1:9/payments/omari/callback", timeout=0.5,
        )  # fmt: skip
        yield fake, client


REQUEST = PaymentRequest(
    payment_id=42,
    booking_reference="SAF-7K3QX2",
    amount=Decimal("120"),
    currency="USD",
    mobile_number="+263771234567",
)


async def test_the_client_initiates_a_payment(omari: tuple[FakeOmari, OmariClient]) -> None:
    fake, client = omari
    initiated = await client.initiate(REQUEST)
    assert initiated.provider_reference in fake.payments
    assert "+263 ••• 4567" in initiated.instructions
    [request] = fake.requests
    assert request.status == 201
    assert request.body == {
        "merchant_reference": "42",
        "booking_reference": "SAF-7K3QX2",
        "amount": "120.00",
        "currency": "USD",
        "msisdn": "+263771234567",
        "callback_url": "http://127.0.0.1:9/payments/omari/callback",
    }
    assert MERCHANT_KEY not in repr(client)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ((500, "internal_error", "boom"), BUSY),
        ((429, "rate_limited", "slow down"), BUSY),
        ((422, "limit_exceeded", "too much"), CUSTOMER_ERRORS["limit_exceeded"]),
        ((400, "something_new", "what"), REFUSED),
    ],
    ids=["5xx", "429", "known-code", "unknown-code"],
)
async def test_client_errors_become_customer_messages(
    omari: tuple[FakeOmari, OmariClient], fault: tuple[int, str, str], message: str
) -> None:
    fake, client = omari
    fake.fail_next(*fault)
    with pytest.raises(PaymentProviderError) as caught:
        await client.initiate(REQUEST)
    assert str(caught.value) == message


async def test_an_unregistered_number_is_explained(omari: tuple[FakeOmari, OmariClient]) -> None:
    fake, client = omari
    fake.unregistered.add("+263771234567")
    with pytest.raises(PaymentProviderError, match="isn't registered for Omari"):
        await client.initiate(REQUEST)


async def test_a_wrong_merchant_key_is_not_the_customers_problem(
    omari: tuple[FakeOmari, OmariClient], caplog: pytest.LogCaptureFixture
) -> None:
    fake, client = omari
    wrong = OmariClient(
        client.http, base_url=client.base_url, merchant_key="wrong-key",
        callback_url=client.callback_url,
    )  # fmt: skip
    with pytest.raises(PaymentProviderError) as caught:
        await wrong.initiate(REQUEST)
    assert str(caught.value) == UNAVAILABLE
    assert fake.requests[-1].status == 401
    assert "wrong-key" not in caplog.text


async def test_a_timeout_is_explained(omari: tuple[FakeOmari, OmariClient]) -> None:
    fake, client = omari
    fake.hang_next()
    with pytest.raises(PaymentProviderError) as caught:
        await client.initiate(REQUEST)
    assert str(caught.value) == TIMED_OUT
    assert isinstance(caught.value, PaymentOutcomeUnknownError)  # the payment is kept


async def test_an_unreachable_omari_is_explained() -> None:
    async with aiohttp.ClientSession() as http:
        client = OmariClient(
            http, base_url="http://127.0.0.1:9/v1", merchant_key=MERCHANT_KEY,
            callback_url="http://127.0.0.1:9/cb", timeout=2,
        )  # fmt: skip
        with pytest.raises(PaymentProviderError) as caught:
            await client.initiate(REQUEST)
    assert str(caught.value) == BUSY


async def test_the_chat_shows_a_sandbox_confirmation_arriving_later(
    db: Database, runtime: Runtime, cafe: App, tmp_path: Path
) -> None:
    """The running app's sandbox Omari is background work the terminal chat waits for."""
    seeded = await seed_payment(db, provider_reference=None, wa_id="263770000321")
    sandbox = runtime.services.get(SandboxOmari)
    assert runtime.services.get(PaymentProviders).get("omari") is sandbox
    sandbox.delay = 0.01
    out = io.StringIO()
    chat = TerminalChat(
        Engine(db, cafe, services=runtime.services), "263770000321",
        stdin=io.StringIO("hi\n"), stdout=out, files_dir=tmp_path,
    )  # fmt: skip
    # As if the customer had just asked to pay: the confirmation is on its way.
    await sandbox.initiate(request_for(seeded))
    await chat.run()
    lines = out.getvalue().splitlines()
    confirmed = lines.index(
        "bot> ✅ Payment of USD 50.00 received for booking SAF-7K3QX2. Balance due: USD 70.00."
    )
    assert confirmed < lines.index("you> hi")
    assert sum(line.startswith("bot> ✅") for line in lines) == 1
