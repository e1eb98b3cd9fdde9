"""Payment receipts: data assembled from storage, then rendered to PDF.

Two steps, as every document (DESIGN.md, "Documents"):

1. :class:`ReceiptData`, a frozen dataclass of plain values, is assembled from storage
   (:func:`load_receipt_data`; its pure core is :func:`build_receipt_data`), with dates
   in the app's timezone.
2. :func:`render_receipt_html` fills ``templates/receipt.html`` (autoescape on: every
   value from the data is text, never markup) with the business's branding; the
   runtime's :class:`documents.PdfRenderer` converts it in a worker process, allowed to
   fetch nothing. The only image, the branding logo, is embedded as a ``data:`` URI.

Numbers and storage. :func:`issue_receipt` works in the caller's transaction: it locks
the payment, returns the stored receipt if the payment has one, otherwise takes the next
``RCT-<year>-<6 digits>`` (series ``RCT`` of :func:`documents.take_number`), renders,
and stores the PDF (``stored_files``, with its SHA-256) and the ``receipts`` row. All of
it commits or rolls back together, so a failed render leaves neither a receipt nor a
used number: numbers stay unique and gap-free per year (of issue, in the business
timezone) and a payment never gets two.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari.documents.service import TEMPLATES_DIR, SafariDocuments
from apps.safari.models import (
    PAID_STATUSES,
    RECEIPT_SERIES,
    Booking,
    Customer,
    Departure,
    Payment,
    PaymentMethod,
    Receipt,
    Tour,
    Traveler,
)
from documents import Branding, DocumentError, store_document, take_number, template_environment
from storage import Database, NotFoundError, StoredFile, utcnow

__all__ = [
    "IssuedReceipt",
    "PaymentNotPaidError",
    "ReceiptData",
    "ReceiptError",
    "build_receipt_data",
    "generate_receipt",
    "issue_receipt",
    "load_receipt_data",
    "render_receipt_html",
    "stored_receipt",
]

log = logging.getLogger("nyala.safari.receipts")

METHOD_LABELS: Final = {
    PaymentMethod.OMARI: "Omari mobile money",
    PaymentMethod.BANK_TRANSFER: "Bank transfer",
    PaymentMethod.CASH: "Cash",
}


class ReceiptError(DocumentError):
    """A receipt cannot be issued."""


class PaymentNotPaidError(ReceiptError):
    """Only approved or confirmed payments get a receipt."""


# --- the data ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptData:
    """Everything a receipt shows, as plain values (picklable for the render workers).

    Attributes:
        number: ``RCT-2026-000042``.
        issued_at: when it was issued, in the business timezone.
        payment_id: the payment's id.
        customer_name: who paid.
        customer_phone: their phone number, if known.
        customer_email: their e-mail address, if known.
        booking_reference: ``SAF-7K3QX2``.
        amount: the amount of this payment.
        currency: ISO 4217 code of every amount.
        method: how it was paid, for people (``Bank transfer``).
        transaction_reference: the provider's or bank's reference, if any.
        payment_date: when it was paid, in the business timezone.
        tour_name: the tour.
        tour_date: the departure's date.
        tour_start: the tour's start time, if known.
        travelers_count: how many travellers the booking is for.
        traveler_names: their names, in booking order.
        total_cost: the booking's total.
        total_paid: what was paid on the booking up to and including this payment.
        balance_due: ``total_cost - total_paid``, never negative.
    """

    number: str
    issued_at: dt.datetime
    payment_id: int
    customer_name: str
    customer_phone: str | None
    customer_email: str | None
    booking_reference: str
    amount: Decimal
    currency: str
    method: str
    transaction_reference: str | None
    payment_date: dt.datetime
    tour_name: str
    tour_date: dt.date
    tour_start: dt.time | None
    travelers_count: int
    traveler_names: tuple[str, ...]
    total_cost: Decimal
    total_paid: Decimal
    balance_due: Decimal

    @property
    def filename(self) -> str:
        """``Receipt_RCT-2026-000042.pdf``."""
        return f"Receipt_{self.number}.pdf"


def _paid_moment(payment: Payment) -> dt.datetime:
    moment = payment.paid_at or payment.approved_at or payment.created_at
    assert moment is not None  # created_at is always set
    return moment


def build_receipt_data(
    *,
    number: str,
    issued_at: dt.datetime,
    payment: Payment,
    booking: Booking,
    customer: Customer,
    tour: Tour,
    departure: Departure,
    travelers: Sequence[Traveler],
    payments: Sequence[Payment],
    tz: dt.tzinfo,
) -> ReceiptData:
    """Assemble the receipt of ``payment`` from loaded rows (pure: no I/O).

    The amount paid counts the booking's approved and confirmed payments made up to and
    including this one (by payment time, then id), so a receipt tells the balance as it
    stood after this payment, however late it is issued.

    Args:
        number: the receipt number.
        issued_at: when the receipt is issued (any timezone).
        payment: the payment.
        booking: its booking.
        customer: the booking's customer.
        tour: the booking's tour.
        departure: the booking's departure.
        travelers: the booking's travellers.
        payments: all payments of the booking (any status).
        tz: the business timezone (the app's) for dates and times.

    Returns:
        The receipt's data.
    """
    this = (_paid_moment(payment), payment.id)
    paid = sum(
        (
            p.amount
            for p in payments
            if p.status in PAID_STATUSES and (_paid_moment(p), p.id) <= this
        ),
        Decimal(0),
    )
    if payment.status in PAID_STATUSES and all(p.id != payment.id for p in payments):
        paid += payment.amount
    return ReceiptData(
        number=number,
        issued_at=issued_at.astimezone(tz),
        payment_id=payment.id,
        customer_name=customer.name,
        customer_phone=customer.phone,
        customer_email=customer.email,
        booking_reference=booking.reference,
        amount=payment.amount,
        currency=payment.currency.upper(),
        method=METHOD_LABELS.get(payment.method, str(payment.method).replace("_", " ")),
        transaction_reference=payment.provider_reference,
        payment_date=_paid_moment(payment).astimezone(tz),
        tour_name=tour.name,
        tour_date=departure.date,
        tour_start=tour.start_time,
        travelers_count=booking.travelers_count,
        traveler_names=tuple(t.full_name for t in sorted(travelers, key=lambda t: t.position)),
        total_cost=booking.total_cost,
        total_paid=paid,
        balance_due=max(booking.total_cost - paid, Decimal(0)),
    )


async def load_receipt_data(
    session: AsyncSession,
    payment: Payment | int,
    *,
    number: str,
    issued_at: dt.datetime,
    tz: dt.tzinfo,
) -> ReceiptData:
    """Load what the receipt of ``payment`` shows and assemble it.

    Args:
        session: a session (reads only).
        payment: the payment or its id.
        number: the receipt number.
        issued_at: when the receipt is issued.
        tz: the business timezone.

    Raises:
        NotFoundError: there is no such payment.
    """
    if isinstance(payment, int):
        found = await session.get(Payment, payment)
        if found is None:
            raise NotFoundError(f"no payment {payment}")
        payment = found
    booking = await session.get(Booking, payment.booking_id)
    assert booking is not None  # foreign keys
    customer = await session.get(Customer, booking.customer_id)
    tour = await session.get(Tour, booking.tour_id)
    departure = await session.get(Departure, booking.departure_id)
    assert customer is not None
    assert tour is not None
    assert departure is not None
    travelers = (
        await session.scalars(select(Traveler).where(Traveler.booking_id == booking.id))
    ).all()
    payments = (
        await session.scalars(select(Payment).where(Payment.booking_id == booking.id))
    ).all()
    return build_receipt_data(
        number=number, issued_at=issued_at, payment=payment, booking=booking,
        customer=customer, tour=tour, departure=departure, travelers=travelers,
        payments=payments, tz=tz,
    )  # fmt: skip


# --- rendering --------------------------------------------------------------------------


def render_receipt_html(data: ReceiptData, branding: Branding) -> str:
    """The receipt as HTML (the template with autoescape on)."""
    env = template_environment(TEMPLATES_DIR, branding.templates_dir)
    return env.get_template("receipt.html").render(r=data, b=branding)


# --- issuing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedReceipt:
    """A payment's receipt, as stored.

    Attributes:
        number: ``RCT-2026-000042``.
        payment_id: the payment.
        file_id: the PDF in ``stored_files`` (send it as ``Document(file_id, filename)``).
        filename: ``Receipt_RCT-2026-000042.pdf``.
        sha256: the PDF's SHA-256 (hex).
        issued_at: when it was issued (UTC).
        pdf: the PDF's bytes.
        created: whether this call issued it (``False``: it existed already).
    """

    number: str
    payment_id: int
    file_id: int
    filename: str
    sha256: str
    issued_at: dt.datetime
    pdf: bytes
    created: bool


async def stored_receipt(session: AsyncSession, payment_id: int) -> IssuedReceipt | None:
    """The receipt already issued for ``payment_id``, if any."""
    receipt = await session.scalar(select(Receipt).where(Receipt.payment_id == payment_id))
    if receipt is None:
        return None
    file = await session.get(StoredFile, receipt.file_id)
    assert file is not None  # a foreign key
    return IssuedReceipt(
        number=receipt.number, payment_id=payment_id, file_id=file.id, filename=file.filename,
        sha256=receipt.sha256, issued_at=receipt.issued_at, pdf=file.data, created=False,
    )  # fmt: skip


async def issue_receipt(
    session: AsyncSession,
    payment_id: int,
    documents: SafariDocuments,
    *,
    now: dt.datetime | None = None,
) -> IssuedReceipt:
    """The receipt of a payment, issued in the caller's transaction if it has none yet.

    The payment row is locked first, so two transactions never issue two receipts for
    one payment; the number is taken from the year's counter in this transaction and the
    PDF is rendered (in a worker process) and stored before it returns. If anything
    fails, the caller's rollback takes the number back with the rest.

    Args:
        session: the caller's transaction.
        payment_id: the payment.
        documents: the renderer, the app's timezone (dates, the number's year) and the
            branding.
        now: the time of issue (default: now).

    Returns:
        The stored receipt (``created`` tells whether this call issued it).

    Raises:
        NotFoundError: there is no such payment.
        PaymentNotPaidError: the payment is not approved or confirmed.
        RenderError: the PDF could not be rendered, e.g. a character none of the
            embedded fonts has (:class:`documents.MissingGlyphError`); the caller's
            rollback takes the number back.
        BrandingError: the branding file is invalid.
    """
    payment = await session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise NotFoundError(f"no payment {payment_id}")
    existing = await stored_receipt(session, payment_id)
    if existing is not None:
        return existing
    if payment.status not in PAID_STATUSES:
        raise PaymentNotPaidError(
            f"payment {payment_id} is {payment.status.value}: only approved or confirmed "
            "payments get a receipt"
        )
    brand = documents.branding()
    issued_at = now or utcnow()
    year = issued_at.astimezone(documents.tz).year
    seq, number = await take_number(session, RECEIPT_SERIES, year)
    data = await load_receipt_data(
        session, payment, number=number, issued_at=issued_at, tz=documents.tz
    )
    pdf = await documents.renderer.render(render_receipt_html(data, brand))
    file = await store_document(session, data.filename, pdf)
    receipt = Receipt(
        payment_id=payment_id, number=number, year=year, seq=seq,
        issued_at=issued_at, file_id=file.id, sha256=file.sha256,
    )  # fmt: skip
    session.add(receipt)
    await session.flush()
    log.info("issued receipt %s for payment %s", number, payment_id)
    return IssuedReceipt(
        number=number, payment_id=payment_id, file_id=file.id, filename=file.filename,
        sha256=file.sha256, issued_at=issued_at, pdf=pdf, created=True,
    )  # fmt: skip


async def generate_receipt(db: Database, payment_id: int, documents: SafariDocuments) -> bytes:
    """The PDF receipt of a payment, issued (in its own transaction) if it has none yet.

    Asking again returns the stored PDF, byte for byte, with the same number.

    Raises:
        NotFoundError: there is no such payment.
        PaymentNotPaidError: the payment is not approved or confirmed.
        RenderError: the PDF could not be rendered (nothing was stored).
    """
    async with db.transaction() as session:
        return (await issue_receipt(session, payment_id, documents)).pdf
