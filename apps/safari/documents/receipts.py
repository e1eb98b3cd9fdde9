"""Payment receipts: data assembled from storage, then rendered to PDF in worker processes.

Two steps, as every document (DESIGN.md, "Documents"):

1. :class:`ReceiptData`, a frozen dataclass of plain values, is assembled from storage
   (:func:`load_receipt_data`; its pure core is :func:`build_receipt_data`).
2. :func:`render_receipt_pdf` turns it into a PDF: the Jinja2 template
   ``templates/receipt.html`` (autoescape on: every value from the data is text, never
   markup) with the business's :class:`Branding` (``branding.yaml``, or the file named by
   ``NYALA_BRANDING``), converted by xhtml2pdf under :data:`RESOURCE_POLICY`, which allows
   no network access and no local file reads at all. The only image, the branding logo,
   is read by this module and embedded as a ``data:`` URI.

Rendering is pure Python holding the GIL, so :func:`issue_receipt` runs it in a lazily
created :class:`~concurrent.futures.ProcessPoolExecutor` (``NYALA_RENDER_WORKERS``
processes, default 2; spawned, never forked from a process with an event loop).

Numbers and storage. :func:`issue_receipt` works in the caller's transaction: it locks
the payment, returns the stored receipt if the payment has one, otherwise takes the next
``RCT-<year>-<6 digits>`` from the year's counter row (:func:`storage.next_receipt_seq`),
renders, and stores the PDF (``stored_files``, with its SHA-256) and the ``receipts``
row. All of it commits or rolls back together, so a failed render leaves neither a
receipt nor a used number: numbers stay unique and gap-free per year (of issue, in the
business timezone) and a payment never gets two.

Default database. :func:`generate_receipt` (for scripts and the CLI) uses the ``db`` it
is given; without one it opens a short-lived :class:`storage.Database` on
``DATABASE_URL`` (default :data:`storage.DEFAULT_DATABASE_URL`) for that call and
disposes of it afterwards, so no module state is tied to an event loop. It does not
migrate: the database must be up to date (``nyala migrate``).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import datetime as dt
import functools
import io
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import (
    DEFAULT_DATABASE_URL,
    PAID_STATUSES,
    Booking,
    Customer,
    Database,
    Departure,
    NotFoundError,
    NyalaError,
    Payment,
    PaymentMethod,
    Receipt,
    StoredFile,
    Tour,
    Traveler,
    next_receipt_seq,
    receipt_number,
    utcnow,
)

__all__ = [
    "BUSINESS_TIMEZONE",
    "RESOURCE_POLICY_OPTIONS",
    "Branding",
    "BrandingError",
    "IssuedReceipt",
    "PaymentNotPaidError",
    "ReceiptData",
    "ReceiptError",
    "ReceiptRenderError",
    "build_receipt_data",
    "format_money",
    "generate_receipt",
    "html_to_pdf",
    "issue_receipt",
    "load_branding",
    "load_receipt_data",
    "render_in_pool",
    "render_receipt_html",
    "render_receipt_pdf",
    "shutdown_render_pool",
    "stored_receipt",
    "template_environment",
]

log = logging.getLogger("nyala.documents")

HERE: Final = Path(__file__).parent
TEMPLATES_DIR: Final = HERE / "templates"
DEFAULT_BRANDING: Final = HERE / "branding.yaml"
BUSINESS_TIMEZONE: Final = ZoneInfo("Africa/Harare")
PDF_MIME: Final = "application/pdf"
LOGO_TYPES: Final = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
LOGO_MAX_BYTES: Final = 2 * 1024 * 1024

# What xhtml2pdf may fetch while rendering: nothing. ``allow_remote=False`` refuses every
# http(s) URL before any connection; ``base_dir=None`` (with no extra roots) names no
# directory a document may read, which refuses every local path and file: URL; other
# schemes are refused anyway. ``data:`` URIs are part of the document (our logo).
# ``ResourceAccessPolicy.server`` also turns on its limits on size, depth and time.
RESOURCE_POLICY_OPTIONS: Final[dict[str, Any]] = {
    "base_dir": None,
    "allow_remote": False,
    "allow_private_networks": False,
    "extra_roots": (),
    "allow_local_outside_base": False,
    "max_render_seconds": 60,
}

METHOD_LABELS: Final = {
    PaymentMethod.OMARI: "Omari mobile money",
    PaymentMethod.BANK_TRANSFER: "Bank transfer",
    PaymentMethod.CASH: "Cash",
}
# ISO 4217 minor units that differ from 2 (the currencies a tour operator may meet).
MINOR_UNITS: Final = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip


class ReceiptError(NyalaError):
    """A receipt cannot be issued."""


class PaymentNotPaidError(ReceiptError):
    """Only approved or confirmed payments get a receipt."""


class ReceiptRenderError(ReceiptError):
    """The PDF could not be rendered (nothing was stored, no number was used)."""


class BrandingError(ReceiptError):
    """The branding file is missing or invalid."""


def format_money(amount: Decimal, currency: str) -> str:
    """``USD 1,234.50``: the amount with its currency's decimals and thousands separators.

    Args:
        amount: the amount.
        currency: ISO 4217 code.
    """
    code = currency.upper()
    places = MINOR_UNITS.get(code, 2)
    exponent = Decimal(1).scaleb(-places)
    return f"{code} {amount.quantize(exponent, rounding=ROUND_HALF_UP):,.{places}f}"


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
    tz: dt.tzinfo = BUSINESS_TIMEZONE,
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
        tz: the business timezone for dates and times.

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
    tz: dt.tzinfo = BUSINESS_TIMEZONE,
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


# --- branding ---------------------------------------------------------------------------

Colour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]


class BrandColors(BaseModel):
    """The document colours (``#RRGGBB``: they are written into the stylesheet)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    primary: Colour = "#2B3A28"
    accent: Colour = "#C8641E"
    muted: Colour = "#6B6F66"
    light: Colour = "#F4EFE6"


class Branding(BaseModel):
    """A business's look and contact details, from a branding YAML file.

    Attributes:
        company_name: the name printed in the header.
        tagline: a line under the name.
        logo_data_uri: the logo file, read and embedded as a ``data:`` URI (never a
            URL the renderer would fetch).
        colors: the colours.
        address: address lines.
        phone: the business phone number.
        email: the business e-mail address.
        website: the website, as printed.
        tax_id: a tax or registration number, printed when set.
        terms: terms and conditions for the footer.
        thank_you: the closing words.
        templates_dir: a folder of the business's own templates (falls back to the
            shipped ones for files it lacks).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    company_name: str = Field(min_length=1, max_length=120)
    tagline: str | None = None
    logo_data_uri: str | None = None
    colors: BrandColors = BrandColors()
    address: tuple[str, ...] = ()
    phone: str | None = None
    email: str | None = None
    website: str | None = None
    tax_id: str | None = None
    terms: str = ""
    thank_you: str = "Thank you for your business!"
    templates_dir: Path | None = None


def _logo_data_uri(path: Path) -> str:
    mime = LOGO_TYPES.get(path.suffix.lower())
    if mime is None:
        raise BrandingError(f"logo {path.name}: use a .png or .jpg file")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise BrandingError(f"logo {path}: {exc.strerror or exc}") from exc
    if len(content) > LOGO_MAX_BYTES:
        raise BrandingError(f"logo {path.name} is larger than {LOGO_MAX_BYTES} bytes")
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


@functools.lru_cache(maxsize=8)
def _load_branding(path: str, _mtime_ns: int) -> Branding:
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BrandingError(f"branding file {file}: {exc}") from exc
    if not isinstance(raw, dict):
        raise BrandingError(f"branding file {file}: expected a mapping")
    values = dict(raw)
    logo = values.pop("logo", None)
    if logo:
        values["logo_data_uri"] = _logo_data_uri(file.parent / str(logo))
    if values.get("templates_dir"):
        values["templates_dir"] = file.parent / str(values["templates_dir"])
    try:
        return Branding.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BrandingError(f"branding file {file}: {where}: {first['msg']}") from None


def load_branding(path: str | Path | None = None) -> Branding:
    """The branding from ``path``, else ``$NYALA_BRANDING``, else the shipped file.

    Relative paths in the file (``logo``, ``templates_dir``) are relative to the file.
    Cached until the file changes.

    Raises:
        BrandingError: the file or its logo cannot be read, or a value is invalid.
    """
    chosen = Path(path or os.environ.get("NYALA_BRANDING") or DEFAULT_BRANDING).resolve()
    try:
        mtime = chosen.stat().st_mtime_ns
    except OSError as exc:
        raise BrandingError(f"branding file {chosen}: {exc.strerror or exc}") from exc
    return _load_branding(str(chosen), mtime)


# --- rendering --------------------------------------------------------------------------


def _day(value: dt.date) -> str:
    return f"{value:%a} {value.day} {value:%b %Y}"


def _moment(value: dt.datetime) -> str:
    return f"{value.day} {value:%b %Y, %H:%M} {value.tzname() or ''}".rstrip()


@functools.lru_cache(maxsize=8)
def template_environment(templates_dir: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(TEMPLATES_DIR)]
    if templates_dir is not None:
        loaders.insert(0, jinja2.FileSystemLoader(templates_dir))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,  # every value is text, in the CSS include too
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=format_money, day=_day, moment=_moment)
    return env


def render_receipt_html(data: ReceiptData, branding: Branding) -> str:
    """The receipt as HTML (the template with autoescape on)."""
    template = template_environment(branding.templates_dir).get_template("receipt.html")
    return template.render(r=data, b=branding)


def html_to_pdf(html: str) -> bytes:
    """Convert HTML to PDF with xhtml2pdf, allowed to fetch nothing.

    Every fetch the markup asks for (``<img src>``, ``@import``, ``@font-face``,
    backgrounds, ``<pdf:*>`` tags) goes through xhtml2pdf's resource policy, here one
    that refuses every URL and every local file (:data:`RESOURCE_POLICY_OPTIONS`);
    refused resources are left out. ``data:`` URIs are part of the document.

    Raises:
        ReceiptRenderError: xhtml2pdf reported errors.
    """
    from xhtml2pdf import pisa
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    policy = ResourceAccessPolicy.server(**RESOURCE_POLICY_OPTIONS)
    out = io.BytesIO()
    status = pisa.pisaDocument(
        html, dest=out, encoding="utf-8", resource_policy=policy, raise_exception=True
    )
    if status.err:
        raise ReceiptRenderError(f"the PDF could not be rendered ({status.err} errors)")
    return out.getvalue()


def render_receipt_pdf(data: ReceiptData, branding: Branding | None = None) -> bytes:
    """Render the receipt to PDF bytes (top-level, so a worker process can run it).

    Args:
        data: the receipt's data.
        branding: the branding (default: :func:`load_branding`, in the calling process).
    """
    return html_to_pdf(render_receipt_html(data, branding or load_branding()))


_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ProcessPoolExecutor:
    global _pool  # noqa: PLW0603 - one lazily created pool per process
    with _pool_lock:
        if _pool is None:
            workers = int(os.environ.get("NYALA_RENDER_WORKERS") or 2)
            _pool = ProcessPoolExecutor(
                max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn")
            )
        return _pool


def shutdown_render_pool() -> None:
    """Stop the render worker processes (a later render starts new ones)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_render_pool)


async def render_in_pool(function: Callable[..., bytes], *args: Any) -> bytes:
    """Run a PDF render function in the render worker processes, off the event loop.

    xhtml2pdf is pure Python holding the GIL: in a thread it would stall the loop for
    the whole render. ``function`` must be a top-level function (it is pickled by name).

    Raises:
        ReceiptRenderError: the render failed or its worker died.
    """
    pool = _executor()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, function, *args)
    except BrokenProcessPool as exc:
        with _pool_lock:
            global _pool  # noqa: PLW0603
            if _pool is pool:
                _pool = None
        raise ReceiptRenderError(f"the render worker died: {exc}") from exc
    except ReceiptError:
        raise
    except Exception as exc:
        raise ReceiptRenderError(f"the PDF could not be rendered: {exc}") from exc


async def _render(data: ReceiptData, branding: Branding) -> bytes:
    return await render_in_pool(render_receipt_pdf, data, branding)


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
    *,
    tz: dt.tzinfo = BUSINESS_TIMEZONE,
    branding: Branding | None = None,
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
        tz: the business timezone (dates on the receipt, the year of the number).
        branding: the branding (default: :func:`load_branding`).
        now: the time of issue (default: now).

    Returns:
        The stored receipt (``created`` tells whether this call issued it).

    Raises:
        NotFoundError: there is no such payment.
        PaymentNotPaidError: the payment is not approved or confirmed.
        ReceiptRenderError: the PDF could not be rendered.
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
    brand = branding or load_branding()
    issued_at = now or utcnow()
    year = issued_at.astimezone(tz).year
    number = receipt_number(year, await next_receipt_seq(session, year))
    data = await load_receipt_data(session, payment, number=number, issued_at=issued_at, tz=tz)
    pdf = await _render(data, brand)
    file = StoredFile.from_bytes(data.filename, PDF_MIME, pdf)
    session.add(file)
    await session.flush()
    receipt = Receipt(
        payment_id=payment_id, number=number, year=year, seq=int(number[-6:]),
        issued_at=issued_at, file_id=file.id, sha256=file.sha256,
    )  # fmt: skip
    session.add(receipt)
    await session.flush()
    log.info("issued receipt %s for payment %s", number, payment_id)
    return IssuedReceipt(
        number=number, payment_id=payment_id, file_id=file.id, filename=file.filename,
        sha256=file.sha256, issued_at=issued_at, pdf=pdf, created=True,
    )  # fmt: skip


async def generate_receipt(
    payment_id: int, *, db: Database | None = None, tz: dt.tzinfo = BUSINESS_TIMEZONE
) -> bytes:
    """The PDF receipt of a payment, issued (in its own transaction) if it has none yet.

    Asking again returns the stored PDF, byte for byte, with the same number.

    Args:
        payment_id: an approved or confirmed payment.
        db: the database (default: a short-lived one on ``$DATABASE_URL``).
        tz: the business timezone.

    Raises:
        NotFoundError: there is no such payment.
        PaymentNotPaidError: the payment is not approved or confirmed.
        ReceiptRenderError: the PDF could not be rendered (nothing was stored).
    """
    own = db is None
    database = db or Database(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    try:
        async with database.transaction() as session:
            return (await issue_receipt(session, payment_id, tz=tz)).pdf
    finally:
        if own:
            await database.dispose()
