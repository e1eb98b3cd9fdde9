"""What the business sends a customer unasked, and what the console says about it
(issue 16, point 5), and what a receipt of an approved proof shows (point 9).

Every business-initiated message (approval, rejection, Omari's confirmation or failure,
a receipt sent from the console) carries an approved template: outside the customer's
24-hour window only the template is queued, never a message WhatsApp refuses with 131047.
The rows are checked by independent SQL, the receipts by the PDF's text (pdftotext).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text

from apps.safari import app as safari
from apps.safari.models import Booking, Payment, PaymentMethod, PaymentStatus
from apps.safari.notices import Notice, notify_customer, payment_template
from apps.safari.omari import EventStatus, PaymentEvent, apply_provider_event
from documents.html import format_moment
from flows.messages import Text
from flows.outreach import Delivery
from storage import Contact, Database, OutboundMessage, OutboundStatus, StoredFile, utcnow
from storage.operators import OperatorRole
from tests.apps.safari import test_console_operations
from tests.apps.safari.test_console_operations import PNG, SafariConsole
from tests.apps.safari.test_omari import seed_payment
from tests.documents.pdf import pdf_text

TWO_DAYS = dt.timedelta(days=2)

console = test_console_operations.console


async def contact_of(db: Database, reference: str) -> int:
    async with db.read() as session:
        found = (
            await session.execute(
                text(
                    "SELECT c.contact_id FROM customers c JOIN bookings b "
                    "ON b.customer_id = c.id WHERE b.reference = :r"
                ),
                {"r": reference},
            )
        ).scalar_one()
    return int(found)


async def last_wrote(db: Database, contact_id: int, ago: dt.timedelta) -> None:
    async with db.transaction() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        contact.last_inbound_at = utcnow() - ago


async def rows_after(db: Database, contact_id: int, after: int) -> list[dict[str, Any]]:
    """The customer's outbound rows after id ``after``, by plain SQL."""
    async with db.read() as session:
        result = await session.execute(
            text(
                "SELECT id, kind, status, payload, fallback FROM outbound_messages "
                "WHERE contact_id = :c AND id > :a ORDER BY id"
            ),
            {"c": contact_id, "a": after},
        )
        return [dict(row._mapping) for row in result]


async def last_row_id(db: Database) -> int:
    async with db.read() as session:
        found = await session.scalar(text("SELECT max(id) FROM outbound_messages"))
    return int(found or 0)


def payload(row: dict[str, Any]) -> dict[str, Any]:
    """A JSON column as a dict (SQLite's driver gives the text)."""
    value = row["payload"]
    if isinstance(value, str):
        value = json.loads(value)
    assert isinstance(value, dict)
    return value


def as_utc(value: object) -> dt.datetime:
    """A timestamp read by plain SQL (SQLite gives text), as an aware UTC datetime."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def flash(page_text: str) -> str:
    """The page's text without markup, whitespace collapsed (what the operator reads)."""
    plain = re.sub(r"<[^>]+>", " ", page_text)
    return " ".join(plain.replace("&#39;", "'").replace("&amp;", "&").split())


# --- point 5: Generate Receipt, Reject, Approve --------------------------------------------


async def test_generate_receipt_outside_the_window_queues_the_template_and_says_so(
    console: SafariConsole,
) -> None:
    booking = console.demo.bookings[1]
    payment_id = booking.payment_ids[0]  # approved, no receipt yet
    contact = await contact_of(console.db, booking.reference)
    await last_wrote(console.db, contact, TWO_DAYS)
    before = await last_row_id(console.db)
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.post(f"/console/payments/{payment_id}/receipt", {"send": "1"}, follow=True)
    said = flash(page.text)
    assert "The customer last wrote more than 24 hours ago" in said
    assert "payment_receipt was queued; the rest follows when they tap Get my receipt" in said
    assert "sent to the customer" not in said
    [row] = await rows_after(console.db, contact, before)
    assert row["kind"] == "template" and payload(row)["name"] == "payment_receipt"
    assert payload(row)["buttons"][0]["id"] == "flow:receipt_flow"
    # The payment's page lists what was queued, with its status.
    page = await admin.get(f"/console/payments/{payment_id}")
    assert "Messages to the customer" in page.text
    assert "template payment_receipt" in flash(page.text)


async def test_generate_receipt_inside_the_window_queues_the_document_with_a_fallback(
    console: SafariConsole,
) -> None:
    booking = console.demo.bookings[1]
    payment_id = booking.payment_ids[0]
    contact = await contact_of(console.db, booking.reference)
    await last_wrote(console.db, contact, dt.timedelta(minutes=3))
    before = await last_row_id(console.db)
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.post(f"/console/payments/{payment_id}/receipt", {"send": "1"}, follow=True)
    assert "Queued 1 message for the customer" in flash(page.text)
    [row] = await rows_after(console.db, contact, before)
    assert row["kind"] == "document"
    assert row["fallback"] is not None and "payment_receipt" in str(row["fallback"])
    page = await admin.post(f"/console/payments/{payment_id}/receipt", follow=True)
    assert "already issued. Not sent to the customer." in flash(page.text)
    assert len(await rows_after(console.db, contact, before)) == 1


async def test_a_rejection_outside_the_window_is_the_rejection_template_with_the_reason(
    console: SafariConsole,
) -> None:
    payment_id = await console.pending_payment(proof=PNG)
    contact = await contact_of(console.db, console.demo.bookings[0].reference)
    await last_wrote(console.db, contact, TWO_DAYS)
    before = await last_row_id(console.db)
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.post(
        f"/console/payments/{payment_id}/reject",
        {"reason": "The transfer has not\n arrived yet"},
        follow=True,
    )
    said = flash(page.text)
    assert f"Payment {payment_id} rejected. The customer last wrote more than 24 hours" in said
    assert "payment_rejected was queued" in said
    [row] = await rows_after(console.db, contact, before)
    assert row["kind"] == "template" and payload(row)["name"] == "payment_rejected"
    params = list(payload(row)["parameters"])
    assert params[1] == "USD 25.00" and params[3] == "The transfer has not arrived yet"
    assert payload(row)["buttons"][0]["id"] == "flow:payment_flow"


async def test_an_approval_says_what_was_queued(console: SafariConsole) -> None:
    payment_id = await console.pending_payment(proof=PNG)
    contact = await contact_of(console.db, console.demo.bookings[0].reference)
    await last_wrote(console.db, contact, TWO_DAYS)
    before = await last_row_id(console.db)
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.post(f"/console/payments/{payment_id}/approve", follow=True)
    said = flash(page.text)
    assert re.search(
        rf"Payment {payment_id} approved\. Receipt RCT-\d{{4}}-\d{{6}} issued\.", said
    )
    assert "payment_receipt was queued" in said
    assert [r["kind"] for r in await rows_after(console.db, contact, before)] == ["template"]
    page = await admin.post(f"/console/payments/{payment_id}/approve", follow=True)
    assert "already approved; nothing was sent" in flash(page.text)


# --- point 5: the services, outside the sandbox ---------------------------------------------


async def test_outside_the_window_nothing_is_queued_that_whatsapp_refuses(db: Database) -> None:
    """Not sandboxed: the rows are ``queued`` for the outbox, and the only one outside the
    window is the template (a plain message there would fail with 131047)."""
    seeded = await seed_payment(db, wrote=TWO_DAYS)
    async with db.transaction() as session:
        booking = await session.scalar(select(Booking).where(Booking.reference == "SAF-7K3QX2"))
        assert booking is not None
        payment = await session.get(Payment, seeded.payment_id)
        assert payment is not None
        notice = await notify_customer(
            session,
            booking,
            [Text("news"), Text("more news")],
            template=await payment_template(session, booking, payment),
            sandbox=False,
            now=utcnow(),
        )
    assert notice == Notice(
        delivery=Delivery.TEMPLATE, queued=1, template="payment_receipt",
        button="Get my receipt", sandbox=False,
    )  # fmt: skip
    contact = await contact_of(db, "SAF-7K3QX2")
    [row] = await rows_after(db, contact, 0)
    assert (row["kind"], row["status"]) == ("template", "queued")


async def test_notice_without_whatsapp_says_nothing_was_sent(db: Database) -> None:
    seeded = await seed_payment(db)
    async with db.transaction() as session:
        await session.execute(text("UPDATE customers SET contact_id = NULL"))
        payment = await session.get(Payment, seeded.payment_id)
        assert payment is not None
        booking = await session.get(Booking, payment.booking_id)
        assert booking is not None
        notice = await notify_customer(
            session, booking, [Text("x")],
            template=await payment_template(session, booking, payment),
            sandbox=False, now=utcnow(),
        )  # fmt: skip
    assert notice.delivery is None
    assert notice.describe() == "The customer has no WhatsApp contact: nothing was sent."


async def test_a_failed_omari_payment_outside_the_window_is_the_rejection_template(
    db: Database,
) -> None:
    seeded = await seed_payment(db, wrote=TWO_DAYS)
    event = PaymentEvent(
        event_id="evt-late", provider_reference="OM-TEST-1", payment_id=seeded.payment_id,
        amount=Decimal("50.00"), currency="USD", status=EventStatus.FAILED,
        reason="Insufficient funds", occurred_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    outcome = await apply_provider_event(db, event, sandbox=False)
    assert outcome.queued == 1
    [row] = await rows_after(db, await contact_of(db, "SAF-7K3QX2"), 0)
    assert (row["kind"], row["status"]) == ("template", "queued")
    body = payload(row)
    assert body["name"] == "payment_rejected"
    assert list(body["parameters"])[1:] == ["USD 50.00", "SAF-7K3QX2", "Insufficient funds"]


# --- point 9: the receipt of an approved proof ----------------------------------------------


async def proof_payment(console: SafariConsole, arrived: dt.datetime) -> int:
    """A pending bank transfer whose proof arrived at ``arrived``."""
    reference = console.demo.bookings[0].reference
    async with console.db.transaction() as session:
        booking_id = (
            await session.execute(
                text("SELECT id FROM bookings WHERE reference = :r"), {"r": reference}
            )
        ).scalar_one()
        proof = StoredFile.from_bytes("proof.png", "image/png", PNG)
        session.add(proof)
        await session.flush()
        payment = Payment(
            booking_id=booking_id, amount=Decimal("25.00"), currency="USD",
            method=PaymentMethod.BANK_TRANSFER, status=PaymentStatus.PENDING,
            proof_file_id=proof.id, created_at=arrived,
        )  # fmt: skip
        session.add(payment)
        await session.flush()
        return payment.id


@pytest.mark.parametrize("typed", ["  FBC-TRX 4471 ", ""])
async def test_the_receipt_shows_when_the_proof_arrived_and_the_reference_given(
    console: SafariConsole, typed: str
) -> None:
    # 22:40 UTC three days ago is 00:40 the next day in Victoria Falls (CAT): the
    # receipt's date is the business's day of the proof, not of the approval.
    day = utcnow().date() - dt.timedelta(days=3)
    arrived = dt.datetime.combine(day, dt.time(22, 40), tzinfo=dt.UTC)
    payment_id = await proof_payment(console, arrived)
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.get(f"/console/payments/{payment_id}")
    assert 'name="reference"' in page.text  # the approval form asks for the bank reference
    page = await admin.post(
        f"/console/payments/{payment_id}/approve", {"reference": typed}, follow=True
    )
    assert f"Payment {payment_id} approved" in flash(page.text)
    async with console.db.read() as session:
        paid_at, approved_at, reference = (
            await session.execute(
                text(
                    "SELECT paid_at, approved_at, provider_reference FROM payments WHERE id = :p"
                ),
                {"p": payment_id},
            )
        ).one()
    assert reference == ("FBC-TRX 4471" if typed else None)
    pdf = await admin.get(f"/console/payments/{payment_id}/receipt.pdf")
    receipt = pdf_text(pdf.body)
    shown = format_moment(arrived.astimezone(safari.timezone))
    assert shown.startswith(f"{(day + dt.timedelta(days=1)).day} ")  # the CAT day
    assert f"Payment date {shown}" in receipt
    assert f"Transaction reference {reference or '—'}" in receipt
    # The stored payment time is the proof's, independent of the approval's.
    assert as_utc(paid_at) == arrived
    assert as_utc(approved_at) - arrived > dt.timedelta(days=2)


async def test_a_reference_already_on_another_payment_is_refused(console: SafariConsole) -> None:
    first = await proof_payment(console, utcnow())
    second = await proof_payment(console, utcnow())
    admin = await console.browser(OperatorRole.ADMIN)
    await admin.post(f"/console/payments/{first}/approve", {"reference": "BANK-1"})
    page = await admin.post(
        f"/console/payments/{second}/approve", {"reference": "BANK-1"}, follow=True
    )
    assert f"Not approved: the reference BANK-1 is already on payment {first}" in flash(page.text)
    async with console.db.read() as session:
        status = await session.scalar(
            text("SELECT status FROM payments WHERE id = :p"), {"p": second}
        )
    assert status == "pending"


async def test_the_payment_page_says_which_message_failed_and_why(console: SafariConsole) -> None:
    booking = console.demo.bookings[1]
    payment_id = booking.payment_ids[0]
    contact = await contact_of(console.db, booking.reference)
    async with console.db.transaction() as session:
        session.add(
            OutboundMessage(
                contact_id=contact, inbound_id=None, kind="document",
                payload={"file_id": 1, "filename": "Receipt_RCT-2026-000009.pdf"},
                status=OutboundStatus.FAILED, created_at=utcnow(), error_code=131047,
                last_error="Re-engagement message",
            )
        )  # fmt: skip
    admin = await console.browser(OperatorRole.ADMIN)
    said = flash((await admin.get(f"/console/payments/{payment_id}")).text)
    assert "document Receipt_RCT-2026-000009.pdf failed 131047: Re-engagement message" in said
