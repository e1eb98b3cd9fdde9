"""The safari app's console pages (bookings, payments, receipts, tour summaries), through a
running ``nyala serve`` of the safari app: each action does what it says, tells the
customer where it should, and leaves an audit row naming who did it. Also what the
framework shows for the app: its navigation links, dashboard card and contact facts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from apps.safari import app as safari
from apps.safari.demo import DemoData, load_demo_data
from apps.safari.models import (
    Booking,
    BookingStatus,
    Customer,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
)
from bot.server import create_app
from storage import (
    AuditEntry,
    Contact,
    Database,
    OutboundMessage,
    OutboundStatus,
    StoredFile,
    utcnow,
)
from storage.operators import OperatorRole
from tests.console.conftest import Console, sandbox_settings

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


class SafariConsole(Console):
    """The safari app's console, its demo data, and payments to review."""

    demo: DemoData

    async def pending_payment(self, *, proof: bytes | None = None) -> int:
        """A bank transfer with an uploaded proof, waiting for approval, on a demo booking."""
        reference = self.demo.bookings[0].reference
        async with self.db.transaction() as session:
            booking = await session.scalar(select(Booking).where(Booking.reference == reference))
            assert booking is not None
            file_id = None
            if proof is not None:
                row = StoredFile.from_bytes("proof.png", "image/png", proof)
                session.add(row)
                await session.flush()
                file_id = row.id
            payment = Payment(
                booking_id=booking.id,
                amount=Decimal("25.00"),
                currency=booking.currency,
                method=PaymentMethod.BANK_TRANSFER,
                status=PaymentStatus.PENDING,
                proof_file_id=file_id,
            )
            session.add(payment)
            await session.flush()
            return payment.id


@pytest_asyncio.fixture
async def console(database_url: str, db: Database, tmp_path: Path) -> AsyncIterator[SafariConsole]:
    """``nyala serve`` of the safari app in sandbox mode with its demo data, each backend."""
    demo = await load_demo_data(db, tz=safari.timezone)
    server = TestServer(create_app(sandbox_settings(database_url), safari), host="127.0.0.1")
    await server.start_server()
    running = SafariConsole(str(server.make_url("")).rstrip("/"), db, safari)
    running.demo = demo
    try:
        yield running
    finally:
        for http in running.browsers:
            await http.close()
        await server.close()


async def audit_rows(console: SafariConsole, action: str) -> list[AuditEntry]:
    async with console.db.read() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


async def outbound_for_booking(console: SafariConsole, reference: str) -> list[OutboundMessage]:
    async with console.db.read() as session:
        contact_id = await session.scalar(
            select(Customer.contact_id)
            .join(Booking, Booking.customer_id == Customer.id)
            .where(Booking.reference == reference)
        )
        return list(
            await session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.contact_id == contact_id)
                .order_by(OutboundMessage.id)
            )
        )


async def open_window(console: SafariConsole, whatsapp: str) -> None:
    """The customer wrote recently: WhatsApp's 24-hour window is open (no template)."""
    async with console.db.transaction() as session:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == whatsapp))
        assert contact is not None
        contact.last_inbound_at = utcnow()


async def test_the_safari_pages_are_in_the_navigation_and_on_the_dashboard(
    console: SafariConsole,
) -> None:
    payment_id = await console.pending_payment()
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get("/console/")
    for link in ("/console/bookings", "/console/payments", "/console/summaries"):
        assert f'href="{link}"' in page.text
    assert "Payments awaiting approval" in page.text
    assert f"/console/payments/{payment_id}" in (await viewer.get("/console/payments")).text
    booking = console.demo.bookings[0]
    async with console.db.read() as session:
        contact = await session.scalar(select(Contact.id).where(Contact.wa_id == booking.whatsapp))
    conversation = await viewer.get(f"/console/conversations/{contact}")
    assert "/console/bookings?q=" in conversation.text


@pytest.mark.parametrize(
    "path",
    [
        "/console/bookings",
        "/console/bookings?status=confirmed&from=2026-01-01",
        "/console/payments",
        "/console/payments?status=all",
        "/console/summaries",
        "/console/summaries?days=3",
        "/console/summaries?kind=reminder&hours=72",
    ],
)
async def test_every_safari_page_renders_for_a_viewer(console: SafariConsole, path: str) -> None:
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get(path)
    assert page.status == 200, page.text[-500:]
    assert "Something went wrong" not in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/console/bookings/SAF-ZZZZZZ",
        "/console/bookings/<script>",
        "/console/payments/999999",
        "/console/payments/12abc",
        "/console/payments/999999/receipt.pdf",
        "/console/payments/999999/proof",
        "/console/summaries/SAF-ZZZZZZ",
    ],
)
async def test_unknown_safari_things_are_404_pages(console: SafariConsole, path: str) -> None:
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get(path)
    assert page.status == 404
    assert "<script>" not in page.text


ROLE_CASES = [
    ("POST", "/console/payments/{payment}/approve"),
    ("POST", "/console/bookings/{booking}/payments"),
    ("POST", "/console/bookings/{booking}/cancel"),
    ("POST", "/console/payments/{payment}/reject"),
    ("POST", "/console/payments/{payment}/receipt"),
]


@pytest.mark.parametrize(("method", "path"), ROLE_CASES)
async def test_safari_admin_actions_need_an_admin(
    console: SafariConsole, method: str, path: str
) -> None:
    payment = await console.pending_payment()
    url = path.format(payment=payment, booking=console.demo.bookings[0].reference)
    data = {"reason": "no", "amount": "10", "method": "cash"}
    agent = await console.browser(OperatorRole.AGENT)
    denied = await agent.post(url, data)
    assert denied.status == 403 and "needs the admin role" in denied.text
    admin = await console.browser(OperatorRole.ADMIN)
    assert (await admin.post(url, data)).status in (200, 303)


async def test_approving_a_payment_sends_the_news_and_the_receipt(console: SafariConsole) -> None:
    payment_id = await console.pending_payment(proof=PNG)
    await open_window(console, console.demo.bookings[0].whatsapp)
    admin = await console.browser(OperatorRole.ADMIN)
    queue = await admin.get("/console/payments")
    assert f"/console/payments/{payment_id}" in queue.text
    detail = await admin.get(f"/console/payments/{payment_id}")
    assert "Approve payment" in detail.text
    assert f"/console/payments/{payment_id}/proof" in detail.text
    page = await admin.post(f"/console/payments/{payment_id}/approve", follow=True)
    assert page.status == 200
    assert "approved" in page.text and "RCT-" in page.text
    async with console.db.read() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None and payment.status is PaymentStatus.APPROVED
        assert payment.approved_by == "admin1"
        receipt = await session.scalar(select(Receipt).where(Receipt.payment_id == payment_id))
        assert receipt is not None
    messages = await outbound_for_booking(console, console.demo.bookings[0].reference)
    kinds = [m.kind for m in messages[-2:]]
    assert kinds == ["text", "document"]
    assert all(m.status is OutboundStatus.SANDBOX for m in messages[-2:])
    [row] = await audit_rows(console, "approve_payment")
    assert row.actor == "admin1" and row.target == f"payment {payment_id}"
    # The receipt downloads as the stored PDF, and the download is audited.
    pdf = await admin.get(f"/console/payments/{payment_id}/receipt.pdf")
    assert pdf.status == 200
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.body.startswith(b"%PDF")
    assert [r.actor for r in await audit_rows(console, "download_receipt")] == ["admin1"]
    # Approving again changes nothing.
    again = await admin.post(f"/console/payments/{payment_id}/approve", follow=True)
    assert again.status == 200
    assert len(await outbound_for_booking(console, console.demo.bookings[0].reference)) == len(
        messages
    )


async def test_the_proof_is_viewable_and_served_safely(console: SafariConsole) -> None:
    payment_id = await console.pending_payment(proof=PNG)
    viewer = await console.browser(OperatorRole.VIEWER)
    proof = await viewer.get(f"/console/payments/{payment_id}/proof")
    assert proof.status == 200
    assert proof.body == PNG
    assert proof.headers["Content-Type"] == "image/png"
    assert proof.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in proof.headers["Content-Security-Policy"]
    assert [r.actor for r in await audit_rows(console, "view_proof")] == ["viewer1"]


async def test_rejecting_needs_a_reason_and_tells_the_customer(console: SafariConsole) -> None:
    payment_id = await console.pending_payment()
    await open_window(console, console.demo.bookings[0].whatsapp)
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.post(f"/console/payments/{payment_id}/reject", {"reason": "  "})
    assert page.status == 303
    async with console.db.read() as session:
        assert (await session.get(Payment, payment_id)).status is PaymentStatus.PENDING  # type: ignore[union-attr]
    page = await admin.post(
        f"/console/payments/{payment_id}/reject",
        {"reason": "The transfer has not arrived <yet>"},
        follow=True,
    )
    assert "rejected" in page.text
    assert "&lt;yet&gt;" in page.text  # the reason is shown escaped in the history
    async with console.db.read() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None and payment.status is PaymentStatus.REJECTED
    last = (await outbound_for_booking(console, console.demo.bookings[0].reference))[-1]
    assert "could not accept your payment" in last.payload["body"]
    [row] = await audit_rows(console, "reject_payment")
    assert row.actor == "admin1" and row.details == "The transfer has not arrived <yet>"
    # A rejected payment cannot be approved.
    page = await admin.post(f"/console/payments/{payment_id}/approve", follow=True)
    assert "Not approved" in page.text


async def test_generate_receipt_issues_once_and_sends(console: SafariConsole) -> None:
    payment_id = console.demo.bookings[1].payment_ids[0]  # approved, no receipt yet
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.post(f"/console/payments/{payment_id}/receipt", {"send": "1"}, follow=True)
    assert page.status == 200
    assert "issued. The customer last wrote more than 24 hours ago" in page.text
    page = await admin.post(f"/console/payments/{payment_id}/receipt", follow=True)
    assert "already issued" in page.text
    async with console.db.read() as session:
        receipts = list(
            await session.scalars(select(Receipt).where(Receipt.payment_id == payment_id))
        )
    assert len(receipts) == 1
    rows = await audit_rows(console, "generate_receipt")
    assert [r.actor for r in rows] == ["admin1", "admin1"]
    pending = await console.pending_payment()
    page = await admin.post(f"/console/payments/{pending}/receipt", follow=True)
    assert "No receipt" in page.text


async def test_the_summaries_dry_run_and_preview(console: SafariConsole) -> None:
    week = next(b for b in console.demo.bookings if b.status == BookingStatus.CONFIRMED.value)
    viewer = await console.browser(OperatorRole.VIEWER)
    days = (week.tour_date - console.demo.today).days
    page = await viewer.get(f"/console/summaries?days={days}")
    assert week.reference in page.text
    preview = await viewer.get(f"/console/summaries/{week.reference}?days={days}")
    assert preview.status == 200
    assert "nothing is sent" in preview.text
    async with console.db.read() as session:
        assert await session.scalar(select(OutboundMessage.id).limit(1)) is None  # sent nothing


async def test_bookings_search_and_detail(console: SafariConsole) -> None:
    booking = console.demo.bookings[0]
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get(f"/console/bookings?q={booking.reference.lower()}")
    assert page.url.endswith(f"/console/bookings/{booking.reference}")  # straight to it
    page = await viewer.get(f"/console/bookings?q={booking.customer.split()[0]}")
    assert booking.reference in page.text
    page = await viewer.get(f"/console/bookings/{booking.reference}")
    assert booking.customer in page.text
    assert "Balance due" in page.text


async def test_admins_record_payments_and_cancel_bookings(console: SafariConsole) -> None:
    booking = console.demo.bookings[0]
    admin = await console.browser(OperatorRole.ADMIN)
    path = f"/console/bookings/{booking.reference}"
    for junk in ("", "-5", "abc", "NaN", "1e99"):
        page = await admin.post(
            path + "/payments", {"amount": junk, "method": "cash"}, follow=True
        )
        assert "Enter the amount received" in page.text, junk
    page = await admin.post(path + "/payments", {"amount": "10", "method": "cheque"}, follow=True)
    assert "Choose cash or bank transfer" in page.text
    page = await admin.post(
        path + "/payments", {"amount": "40.5", "method": "cash", "reference": "RB-7"}, follow=True
    )
    assert "USD 40.50" in page.text or "40.50 USD" in page.text
    assert "/console/payments/" in page.url
    async with console.db.read() as session:
        payment = await session.scalar(select(Payment).where(Payment.provider_reference == "RB-7"))
        assert payment is not None and payment.status is PaymentStatus.APPROVED
        assert payment.approved_by == "admin1"
    assert [r.actor for r in await audit_rows(console, "record_payment")][-1] == "admin1"
    page = await admin.post(path + "/cancel", {"reason": " "}, follow=True)
    assert "Say why" in page.text
    page = await admin.post(path + "/cancel", {"reason": "Customer fell ill"}, follow=True)
    assert "cancelled" in page.text
    async with console.db.read() as session:
        found = await session.scalar(select(Booking).where(Booking.reference == booking.reference))
        assert found is not None and found.status is BookingStatus.CANCELLED
    [row] = await audit_rows(console, "cancel_booking")
    assert row.actor == "admin1" and row.details == "Customer fell ill"
