"""The operator sees the customer's files (payment proof, traveller IDs) in the payment
and booking pages, and a bank transfer cannot be approved without its proof; real HTTP
against the running console, both backends."""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy import func, select

from apps.safari.models import Booking, Payment, PaymentStatus, Receipt, Traveler
from storage import StoredFile
from storage.operators import OperatorRole
from tests.apps.safari import test_console_operations
from tests.apps.safari.test_console_operations import SafariConsole

console = test_console_operations.console  # the safari console with its demo data


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (12, 9), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


async def test_a_bank_transfer_without_proof_cannot_be_approved(console: SafariConsole) -> None:
    payment_id = await console.pending_payment(proof=None)
    admin = await console.browser(OperatorRole.ADMIN)
    detail = await admin.get(f"/console/payments/{payment_id}")
    assert "No proof uploaded" in detail.text
    # The button is disabled and says why ...
    assert 'type="submit" disabled aria-describedby="approve-needs-proof"' in detail.text
    assert "approved only on its proof" in detail.text
    # ... and the server refuses it anyway (a form posted by hand).
    page = await admin.post(f"/console/payments/{payment_id}/approve", follow=True)
    assert page.status == 200
    assert "Not approved: a bank transfer needs the customer&#39;s proof of payment" in page.text
    async with console.db.read() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None and payment.status is PaymentStatus.PENDING
        receipts = await session.scalar(
            select(func.count()).select_from(Receipt).where(Receipt.payment_id == payment_id)
        )
    assert receipts == 0


async def test_the_payment_page_shows_the_proof_image(console: SafariConsole) -> None:
    payment_id = await console.pending_payment(proof=png())
    viewer = await console.browser(OperatorRole.VIEWER)
    detail = await viewer.get(f"/console/payments/{payment_id}")
    assert f'<img class="proof" src="/console/payments/{payment_id}/proof"' in detail.text
    assert "approve-needs-proof" not in detail.text
    served = await viewer.get(f"/console/payments/{payment_id}/proof")
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_pdf_proof_is_a_link_not_an_image(console: SafariConsole) -> None:
    payment_id = await console.pending_payment(proof=png())
    async with console.db.transaction() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None
        stored = await session.get(StoredFile, payment.proof_file_id)
        assert stored is not None
        stored.mime_type = "application/pdf"
        stored.filename = "transfer.pdf"
    viewer = await console.browser(OperatorRole.VIEWER)
    detail = await viewer.get(f"/console/payments/{payment_id}")
    assert "Open transfer.pdf" in detail.text
    assert f'<img class="proof" src="/console/payments/{payment_id}/proof"' not in detail.text


async def test_the_booking_page_shows_a_travellers_id(console: SafariConsole) -> None:
    reference = console.demo.bookings[0].reference
    async with console.db.transaction() as session:
        booking = await session.scalar(select(Booking).where(Booking.reference == reference))
        assert booking is not None
        traveler = await session.scalar(
            select(Traveler).where(Traveler.booking_id == booking.id).limit(1)
        )
        assert traveler is not None
        stored = StoredFile.from_bytes("passport.png", "image/png", png())
        session.add(stored)
        await session.flush()
        traveler.id_file_id = stored.id
        traveler_id = traveler.id
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get(f"/console/bookings/{reference}")
    url = f"/console/bookings/{reference}/travelers/{traveler_id}/id"
    assert f'<img class="proof" src="{url}"' in page.text
    served = await viewer.get(url)
    assert served.status == 200 and served.headers["Content-Type"] == "image/png"
