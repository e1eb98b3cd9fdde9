"""Conversation tests of payment_flow: Omari mobile money and bank transfers.

Omari is replaced by a tiny in-test provider that records its requests; the real and
sandbox providers (apps/safari/omari.py) have their own tests. Every test runs on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from apps.safari import operations
from apps.safari.common import short_date
from apps.safari.models import Booking, Payment, PaymentMethod, PaymentStatus
from apps.safari.payments import (
    Initiated,
    PaymentOutcomeUnknownError,
    PaymentProviderError,
    PaymentProviders,
    PaymentRequest,
)
from flows.messages import Media
from flows.runtime import Runtime
from flows.testing import ChatFactory
from storage import Database, SessionStatus
from tests.apps.safari.chat_helpers import (
    PHONE,
    Catalogue,
    add_catalogue,
    all_rows,
    count,
    day,
    descriptions,
    open_chat,
    reach_review,
    seed_booking,
    stored_media,
)

INSTRUCTIONS = "Approve the Omari prompt on your phone with your PIN."
TRY_AGAIN = "This seems to be tricky. Would you like help from a person?"
REFERENCE_QUESTION = (
    "If your bank's confirmation shows a transaction reference (like FT24031ABC7), type it "
    "so we find your payment faster, or tap *Skip*."
)


class FakeOmari:
    """A mobile-money provider that records what it is asked and answers at once."""

    name = "omari"

    def __init__(self) -> None:
        self.requests: list[PaymentRequest] = []
        self.refusal: str | None = None

    async def initiate(self, request: PaymentRequest) -> Initiated:
        self.requests.append(request)
        if self.refusal:
            raise PaymentProviderError(self.refusal)
        return Initiated(provider_reference=f"OM-{len(self.requests)}", instructions=INSTRUCTIONS)


@pytest.fixture
async def catalogue(db: Database) -> Catalogue:
    """Two tours with departures relative to today, one of them nearly full."""
    return await add_catalogue(db)


@pytest.fixture
def no_provider(runtime: Runtime) -> PaymentProviders:
    """No mobile-money provider installed in the running app (its sandbox Omari is out)."""
    providers = PaymentProviders()
    runtime.services.provide(PaymentProviders, providers)
    return providers


@pytest.fixture
def omari(no_provider: PaymentProviders) -> FakeOmari:
    """The in-test Omari, installed in the running app."""
    provider = FakeOmari()
    no_provider.install(provider)
    return provider


async def pay_off(db: Database, reference: str, amount: str) -> None:
    """An operator records a payment received in cash."""
    async with db.transaction() as session:
        booking = await session.scalar(select(Booking).where(Booking.reference == reference))
        assert booking is not None
        await operations.record_payment(
            session, booking.id, amount=Decimal(amount), method=PaymentMethod.CASH, actor="ops"
        )


async def balance_due(db: Database, booking_id: int) -> Decimal:
    """The booking's balance due, from the service layer."""
    async with db.read() as session:
        booking = await session.get(Booking, booking_id)
        assert booking is not None
        return (await operations.balance(session, booking)).due


async def test_a_booking_continues_into_an_omari_payment(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue, omari: FakeOmari
) -> None:
    chat = await open_chat(nyala_chat)
    await reach_review(chat)
    await chat.send(tap="Confirm booking")
    (booking,) = await all_rows(db, Booking)

    await chat.send(tap="Omari mobile money")
    # payment_flow starts with the booking and the method: it asks straight for the number.
    assert chat.texts == [
        "Which mobile number is your Omari wallet on? Tap *Use this number* for "
        f"+{PHONE}, or type another number."
    ]
    assert chat.options == ["Use this number"]
    await chat.send(tap="Use this number")
    assert chat.texts == [INSTRUCTIONS]

    (payment,) = await all_rows(db, Payment)
    assert (payment.booking_id, payment.method, payment.status) == (
        booking.id, PaymentMethod.OMARI, PaymentStatus.PENDING,
    )  # fmt: skip
    assert (payment.amount, payment.currency) == (Decimal("120.00"), "USD")
    assert (payment.mobile_number, payment.provider_reference) == (f"+{PHONE}", "OM-1")
    assert omari.requests == [
        PaymentRequest(
            payment_id=payment.id,
            booking_reference=booking.reference,
            amount=Decimal("120.00"),
            currency="USD",
            mobile_number=f"+{PHONE}",
        )
    ]

    booking_session, payment_session = await chat.sessions()
    assert (booking_session.flow_name, booking_session.status) == (
        "booking_flow", SessionStatus.COMPLETED,
    )  # fmt: skip
    assert (payment_session.flow_name, payment_session.status) == (
        "payment_flow", SessionStatus.COMPLETED,
    )  # fmt: skip
    assert (await chat.steps("booking_flow"))[-3:] == [
        ("payment_method", "entered"),
        ("payment_method", "completed"),
        ("paying_now", "entered"),
    ]
    assert await chat.steps("payment_flow") == [
        ("choose_booking", "entered"),
        ("choose_booking", "skipped"),
        ("payment_method", "entered"),
        ("payment_method", "skipped"),
        ("omari_number", "entered"),
        ("omari_number", "completed"),
        ("omari_requested", "entered"),
    ]


async def test_paying_from_the_menu_with_bad_numbers_and_a_refusing_provider(
    nyala_chat: ChatFactory,
    db: Database,
    catalogue: Catalogue,
    no_provider: PaymentProviders,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    falls = await seed_booking(db, offset=7)  # USD 180.00
    hwange = await seed_booking(db, tour="hwange", offset=10, names=["Rudo Chikwanha"])
    await pay_off(db, hwange, "50.00")
    chat = await open_chat(nyala_chat)
    await chat.send("pay")
    assert chat.texts == ["Which booking would you like to pay for?"]
    assert chat.options == [falls, hwange]  # soonest first
    assert descriptions(chat) == [
        f"USD 180.00 due · {short_date(day(7))} · Victoria Falls guided tour",
        f"USD 100.00 due · {short_date(day(10))} · Hwange game drive",
    ]
    await chat.send(tap=hwange)
    assert chat.texts == [
        f"Booking *{hwange}* (Hwange game drive, {short_date(day(10))}): USD 100.00 is due. "
        "How would you like to pay?"
    ]
    await chat.send(tap="Omari mobile money")
    assert chat.options == ["Use this number"]

    await chat.send("12345")
    assert chat.texts[0].startswith("That isn't a phone number I can use.")
    await chat.send("+263 242 123 456")
    assert chat.texts[0] == (
        "That looks like a landline. Please send the mobile number your wallet is on."
    )
    await chat.send("0772 123 456")  # no provider installed
    assert chat.texts == [
        "Mobile money is not available right now; please choose another way to pay.",
        TRY_AGAIN,
    ]
    await chat.send(tap="Try again")
    assert chat.last_text.startswith("Which mobile number is your Omari wallet on?")

    omari = FakeOmari()
    omari.refusal = "Omari could not find a wallet on that number."
    no_provider.install(omari)
    await chat.send("0772 123 456")
    assert chat.texts[0] == "Omari could not find a wallet on that number."
    assert await count(db, Payment) == 1  # only the operator's: the attempt rolled back

    omari.refusal = None
    await chat.send("0772 123 456")
    assert chat.texts == [INSTRUCTIONS]
    payment = (await all_rows(db, Payment))[-1]
    assert (payment.method, payment.status, payment.amount) == (
        PaymentMethod.OMARI, PaymentStatus.PENDING, Decimal("100.00"),
    )  # fmt: skip
    assert (payment.mobile_number, payment.provider_reference) == ("+263772123456", "OM-2")
    assert [r.mobile_number for r in omari.requests] == ["+263772123456"] * 2

    steps = await chat.steps()
    assert steps[:6] == [
        ("choose_booking", "entered"),
        ("choose_booking", "completed"),
        ("payment_method", "entered"),
        ("payment_method", "completed"),
        ("omari_number", "entered"),
        ("omari_number", "retry"),
    ]
    assert steps[6:] == [("omari_number", "retry")] * 3 + [
        ("omari_number", "completed"),
        ("omari_requested", "entered"),
    ]
    retries = [e for e in await chat.events() if e.action.value == "retry"]
    assert [e.retry_count for e in retries] == [1, 2, 3, 4]
    assert retries[3].error_message == "Omari could not find a wallet on that number."


async def test_a_bank_transfer_with_its_proof_of_payment(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    chat = await open_chat(nyala_chat)
    await reach_review(chat)
    await chat.send(tap="Confirm booking")
    (booking,) = await all_rows(db, Booking)
    await chat.send(tap="Bank transfer")
    assert chat.texts == [
        "Please transfer USD 120.00 to:\n"
        "Savannah Trails Safaris (Pvt) Ltd\n"
        "CBZ Bank, Victoria Falls branch\n"
        "USD account 01234567890123\n"
        f"Reference: *{booking.reference}*\n\n"
        "Then send a photo or PDF of the proof of payment here (up to 10 MB)."
    ]

    await chat.send("I paid yesterday")
    assert chat.texts[0] == "Please send the file as a photo or document (JPEG, PDF, PNG)."
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    await chat.send(media=Media(id="wa-media-1", mime_type=docx, filename="proof.docx"))
    assert chat.texts[0] == f"That file type ({docx}) isn't accepted. Please send JPEG, PDF, PNG."
    big = Media(id="wa-media-2", mime_type="application/pdf", size=11 * 1024 * 1024)
    await chat.send(media=big)
    assert chat.texts == ["That file is too large; the limit is 10 MB.", TRY_AGAIN]
    assert await count(db, Payment) == 0
    await chat.send(tap="Try again")

    proof = await stored_media(db, "proof.pdf", "application/pdf")
    await chat.send(media=proof)
    assert chat.texts == [
        f"Thank you! Your proof of payment of USD 120.00 for *{booking.reference}* is now "
        "pending approval by our team. We'll confirm here once it's checked, usually within "
        "one working day.",
        REFERENCE_QUESTION,
    ]
    # The proof is a pending payment before the reference question is answered.
    assert await count(db, Payment) == 1
    await chat.send(tap="Skip")
    assert chat.texts == [
        "No problem, our team will find your transfer without it. "
        "Type *menu* if there's anything else."
    ]
    (payment,) = await all_rows(db, Payment)
    assert (payment.booking_id, payment.method, payment.status, payment.amount) == (
        booking.id, PaymentMethod.BANK_TRANSFER, PaymentStatus.PENDING, Decimal("120.00"),
    )  # fmt: skip
    assert payment.proof_media_id == proof.id
    assert payment.proof_file_id == int(proof.id.removeprefix("stored:"))
    assert (payment.mobile_number, payment.provider_reference) == (None, None)
    assert payment.customer_reference is None
    assert (await balance_due(db, booking.id)) == Decimal("120.00")  # until approved

    assert await chat.steps("payment_flow") == [
        ("choose_booking", "entered"),
        ("choose_booking", "skipped"),
        ("payment_method", "entered"),
        ("payment_method", "skipped"),
        ("proof_of_payment", "entered"),
        ("proof_of_payment", "retry"),
        ("proof_of_payment", "retry"),
        ("proof_of_payment", "retry"),
        ("proof_of_payment", "completed"),
        ("bank_reference", "entered"),
        ("bank_reference", "completed"),
        ("transfer_submitted", "entered"),
    ]
    completed = (await chat.events("payment_flow"))[-4]
    assert completed.input_value == "[document] proof.pdf"

    # The pending transfer shows in the list of what is due.
    await chat.send("pay")
    (row,) = descriptions(chat)
    assert row is not None
    assert row.startswith(f"USD 120.00 due · payment pending · {short_date(day(7))} · Victoria")


async def test_nothing_to_pay(nyala_chat: ChatFactory, db: Database, catalogue: Catalogue) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("pay")
    assert chat.texts == [
        "You don't have any upcoming bookings with us. Type *book* to book a tour."
    ]

    reference = await seed_booking(db, names=["Rudo Chikwanha"])
    await pay_off(db, reference, "60.00")
    await chat.send("pay")
    assert chat.texts == [
        "Good news: nothing is due on your bookings 🎉\n"
        f"• {reference}: Victoria Falls guided tour, {short_date(day(7))}\n\n"
        "Type *menu* if there's anything else."
    ]
    # Nothing to pay is its own outcome, neither a completed payment nor an abandonment.
    assert [(s.status, s.outcome) for s in await chat.sessions()] == [
        (SessionStatus.COMPLETED, "nothing_to_do")
    ] * 2


async def test_a_booking_paid_while_the_list_was_open_is_refused(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue, omari: FakeOmari
) -> None:
    reference = await seed_booking(db, names=["Rudo Chikwanha"])
    chat = await open_chat(nyala_chat)
    await chat.send("pay")
    await pay_off(db, reference, "60.00")
    await chat.send(tap=reference)
    assert chat.texts == [
        f"Booking {reference} has nothing left to pay. Type *pay* to see your bookings."
    ]
    assert await chat.steps() == [("choose_booking", "entered"), ("choose_booking", "retry")]
    assert omari.requests == []


async def test_an_omari_timeout_keeps_the_pending_payment_for_its_callback(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue, omari: FakeOmari
) -> None:
    falls = await seed_booking(db, offset=7)
    omari.refusal = None

    async def slow(request: PaymentRequest) -> Initiated:
        omari.requests.append(request)
        raise PaymentOutcomeUnknownError("Omari did not answer in time.")

    omari.initiate = slow  # type: ignore[method-assign]
    chat = await open_chat(nyala_chat)
    await chat.send("pay")
    await chat.send(tap=falls)
    await chat.send(tap="Omari mobile money")
    await chat.send("0772 123 456")
    assert chat.texts[0].startswith("Omari is slow to answer right now.")
    payment = (await all_rows(db, Payment))[-1]
    # Omari may have accepted it: the payment stays, so its callback can confirm it.
    assert (payment.status, payment.provider_reference) == (PaymentStatus.PENDING, None)
    assert [r.payment_id for r in omari.requests] == [payment.id]
