"""The bank reference a customer gives after their proof of payment (issue 16, point 9).

After the proof, payment_flow asks for the reference the bank gave the transfer
(optional: *Skip*). It is kept on the pending payment as the customer's claim, shown on
the console's payment page and pre-filled in the approval form, which the operator may
correct or clear; the receipt prints what the approval settled. Checked by plain SQL and
by the receipt's text (pdftotext), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import subprocess
from decimal import Decimal

import pytest
from sqlalchemy import text

from apps.safari import app as safari
from apps.safari import operations
from apps.safari.documents.receipts import build_receipt_data, render_receipt_html
from apps.safari.models import (
    Booking,
    Customer,
    Departure,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Tour,
)
from apps.safari.payment import BANK_REFERENCE_MAX, SKIP, bank_reference
from apps.safari.settings import DEFAULT_BRANDING
from documents import html_to_pdf, load_branding
from flows import Accepted, Rejected, UserMessage
from flows import ValidationContext as Context
from flows.messages import MessageKind, reply_options
from flows.testing import ChatFactory
from flows.validators import ECHO_MAX
from storage import Database, utcnow
from storage.operators import OperatorRole
from tests.apps.safari import test_console_operations
from tests.apps.safari.chat_helpers import (
    Catalogue,
    add_catalogue,
    open_chat,
    seed_booking,
    stored_media,
)
from tests.apps.safari.test_console_operations import SafariConsole
from tests.apps.safari.test_customer_notices import flash, proof_payment
from tests.documents.pdf import pdf_text

console = test_console_operations.console

QUESTION = (
    "If your bank's confirmation shows a transaction reference (like FT24031ABC7), type it "
    "so we find your payment faster, or tap *Skip*."
)
_ids = iter(range(1, 10_000))


def said(
    text: str | None = None, *, kind: MessageKind = "text", reply_id: str | None = None
) -> UserMessage:
    """A customer's message (a typed text unless ``kind`` says otherwise)."""
    return UserMessage(id=f"wamid.ref.{next(_ids)}", kind=kind, text=text, reply_id=reply_id)


CHECK = bank_reference()


def check(message: UserMessage) -> Accepted | Rejected:
    return CHECK(message, Context())


@pytest.mark.parametrize(
    ("typed", "saved"),
    [
        ("  FT24031ABC7  ", "FT24031ABC7"),
        ("FBC-TRX   4471", "FBC-TRX 4471"),  # inner spaces collapsed
        ("ＦＴ２４０３１", "FT24031"),  # full-width, as some keyboards type it
        ("REF 2024/11/30-77", "REF 2024/11/30-77"),
        ("A" * (BANK_REFERENCE_MAX - 1) + "1", "A" * (BANK_REFERENCE_MAX - 1) + "1"),
        ("skip", ""),
        ("No.", ""),
    ],
)
def test_a_reference_is_kept_trimmed(typed: str, saved: str) -> None:
    assert check(said(typed)) == Accepted(saved, saved or "skipped")


def test_the_skip_button_saves_nothing() -> None:
    assert check(said("Skip", kind="reply", reply_id=SKIP)) == Accepted("", "skipped")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (said("FT24\u202e031"), "bank_reference.control"),  # a bidi override
        (said("FT24\x00031"), "bank_reference.control"),
        (said("FT24\u200b031"), "bank_reference.control"),  # a zero-width space
        (said("A" * BANK_REFERENCE_MAX + "1"), "bank_reference.too_long"),
        (said("x" * 300 + "@example.com"), "bank_reference.too_long"),
        (said("I paid it on 3 Dec"), "bank_reference.invalid"),  # five groups
        (said("paid yesterday"), "bank_reference.invalid"),  # no digit
        (said("FT24031 🎉"), "bank_reference.invalid"),  # nothing the receipt can't draw
        (said("Référence 42"), "bank_reference.invalid"),
        (said("FT_24031_"), "bank_reference.invalid"),  # WhatsApp markup when echoed
        (said(kind="sticker"), "bank_reference.not_text"),
        (said("   "), "bank_reference.not_text"),
    ],
)
def test_what_is_not_a_reference_is_refused_with_a_code(message: UserMessage, code: str) -> None:
    result = check(message)
    assert isinstance(result, Rejected)
    assert result.code == code
    assert "*Skip*" in result.reason
    # Never more than a short piece of what was typed comes back.
    typed = message.text or ""
    longest_echo = max((n for n in range(len(typed) + 1) if typed[:n] in result.reason), default=0)
    assert longest_echo <= ECHO_MAX


async def payment_row(db: Database, payment_id: int) -> dict[str, object]:
    async with db.read() as session:
        row = (
            await session.execute(
                text(
                    "SELECT status, customer_reference, provider_reference "
                    "FROM payments WHERE id = :p"
                ),
                {"p": payment_id},
            )
        ).one()
    return dict(row._mapping)


@pytest.mark.parametrize(
    ("posted", "printed"),
    [
        ("FT24031 ABC7", "FT24031 ABC7"),  # approved as the customer typed it
        (" FT24031ABC7 ", "FT24031ABC7"),  # corrected from the bank statement
        ("", "—"),  # cleared: the operator found no such reference
    ],
)
async def test_the_reference_the_customer_typed_reaches_the_console_and_the_receipt(
    nyala_chat: ChatFactory, console: SafariConsole, posted: str, printed: str
) -> None:
    db = console.db
    chat = await open_chat(nyala_chat)
    # A booking of the demo catalogue the console shows: its first date, one traveller.
    await chat.send("book")
    await chat.send(tap="VFA-FALLS-SUNSET")
    first_date = next(o for r in chat.replies for o in reply_options(r))
    await chat.send(tap=first_date.id)
    await chat.send("1")
    await chat.send("Rudo Chikwanha")
    await chat.send("rudo@example.com")
    await chat.send(tap="Confirm booking")
    await chat.send(tap="Bank transfer")
    await chat.send(media=await stored_media(db, "proof.pdf", "application/pdf"))
    assert chat.texts[-1] == QUESTION

    # Repeated bad inputs: each says what was wrong and asks again; the proof is pending.
    long_answer = "my reference is " + "9" * 290
    await chat.send(long_answer)
    assert chat.texts[0].startswith(f"That's {len(long_answer)} characters;")
    assert not any("9" * (ECHO_MAX + 1) in said for who, said in chat.transcript if who == "bot")
    await chat.send("FT24\u202e031")
    assert chat.texts[0].startswith("That reference has characters a bank doesn't use.")
    await chat.send("  FT24031   ABC7 ")
    assert chat.texts == [
        "Thanks, I've noted the reference *FT24031 ABC7* with your payment. "
        "Type *menu* if there's anything else."
    ]
    retries = [
        e.error_code for e in await chat.events("payment_flow") if e.action.value == "retry"
    ]
    assert retries == ["bank_reference.too_long", "bank_reference.control"]

    async with db.read() as session:
        payment_id = int(
            (await session.execute(text("SELECT max(id) FROM payments"))).scalar_one()
        )
    assert await payment_row(db, payment_id) == {
        "status": "pending",
        "customer_reference": "FT24031 ABC7",
        "provider_reference": None,
    }

    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.get(f"/console/payments/{payment_id}")
    shown = html.unescape(page.text)
    assert "Reference — the customer typed FT24031 ABC7 Received" in flash(page.text)
    assert 'name="reference" maxlength="120" autocomplete="off" value="FT24031 ABC7"' in shown

    page = await admin.post(
        f"/console/payments/{payment_id}/approve", {"reference": posted}, follow=True
    )
    assert f"Payment {payment_id} approved" in flash(page.text)
    assert await payment_row(db, payment_id) == {
        "status": "approved",
        "customer_reference": "FT24031 ABC7",  # the customer's claim stays as it was
        "provider_reference": posted.strip() or None,
    }
    pdf = await admin.get(f"/console/payments/{payment_id}/receipt.pdf")
    receipt = pdf_text(pdf.body)
    assert f"Transaction reference {printed} " in receipt
    if posted:
        assert f"(Bank transfer, ref. {printed})." in receipt
    else:
        assert "(Bank transfer)." in receipt


async def test_an_approval_without_the_form_takes_the_customers_reference(
    db: Database, catalogue: Catalogue
) -> None:
    reference = await seed_booking(db)
    async with db.transaction() as session:
        booking_id = (
            await session.execute(
                text("SELECT id FROM bookings WHERE reference = :r"), {"r": reference}
            )
        ).scalar_one()
        payment = Payment(
            booking_id=booking_id, amount=Decimal("50.00"), currency="USD",
            method=PaymentMethod.BANK_TRANSFER, status=PaymentStatus.PENDING,
            customer_reference="FT99",
        )  # fmt: skip
        session.add(payment)
        await session.flush()
        payment_id = payment.id
    async with db.transaction() as session:
        await operations.approve_payment(session, payment_id, actor="ops")
    assert await payment_row(db, payment_id) == {
        "status": "approved",
        "customer_reference": "FT99",
        "provider_reference": "FT99",
    }


@pytest.fixture
async def catalogue(db: Database) -> Catalogue:
    """The two test tours with departures relative to today."""
    return await add_catalogue(db)


def word_boxes(pdf: bytes) -> dict[str, float]:
    """Each word of the PDF with the right edge of its box (``pdftotext -bbox``)."""
    out = subprocess.run(
        ["pdftotext", "-bbox", "-", "-"], input=pdf, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    return {
        html.unescape(word): float(x_max)
        for x_max, word in re.findall(r'<word [^>]*xMax="([\d.]+)"[^>]*>([^<]*)</word>', out)
    }


@pytest.mark.parametrize(
    "reference", ["FT24031 ABC7", "FBCMWQ/2026/12/06-000123456MWQABC1", "A" * 34 + "9"]
)
def test_a_long_reference_prints_whole_inside_the_page(reference: str) -> None:
    # A reference has no space to wrap at: the longest a bank writes (35 characters)
    # must still print whole within the receipt's right margin, not run off the page.
    assert len(reference) <= BANK_REFERENCE_MAX
    paid = dt.datetime(2026, 12, 5, 22, 40, tzinfo=dt.UTC)  # 00:40 on the 6th in CAT
    data = build_receipt_data(
        number="RCT-2026-000001", issued_at=paid,
        payment=Payment(id=1, amount=Decimal(25), currency="USD",
                        method=PaymentMethod.BANK_TRANSFER, status=PaymentStatus.APPROVED,
                        paid_at=paid, provider_reference=reference),
        booking=Booking(id=1, reference="SAF-7K3QX2", travelers_count=1,
                        total_cost=Decimal(25), currency="USD"),
        customer=Customer(name="Rudo Chikwanha"), tour=Tour(name="Walk", start_time=None),
        departure=Departure(date=dt.date(2026, 12, 20)), travelers=[], payments=[],
        tz=safari.timezone,
    )  # fmt: skip
    pdf = html_to_pdf(render_receipt_html(data, load_branding(DEFAULT_BRANDING)))
    receipt = pdf_text(pdf)
    assert "Transaction reference" in receipt and f" {reference} " in receipt
    assert "Payment date 6 Dec 2026, 00:40 CAT" in receipt
    boxes = word_boxes(pdf)
    right_margin = boxes["RECEIPT"]
    for word in reference.split():
        assert boxes[word] <= right_margin, (word, boxes[word], right_margin)


async def test_the_payment_page_shows_times_in_the_business_zone(console: SafariConsole) -> None:
    # The proof arrived at 22:40 UTC, 00:40 the next day in Victoria Falls: the page shows
    # the business's time like every console page, and does not call it UTC.
    day = utcnow().date() - dt.timedelta(days=3)
    arrived = dt.datetime.combine(day, dt.time(22, 40), tzinfo=dt.UTC)
    payment_id = await proof_payment(console, arrived)
    admin = await console.browser(OperatorRole.ADMIN)
    page = flash((await admin.get(f"/console/payments/{payment_id}")).text)
    local = arrived.astimezone(safari.timezone)
    assert local.date() == day + dt.timedelta(days=1)
    assert f"Received {local:%Y-%m-%d %H:%M} Paid" in page
    assert "UTC" not in page
