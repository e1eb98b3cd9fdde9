"""PDF receipts on both backends: content, numbering, idempotency, escaping and triggers.

The renderer's lockdown (no file read, no connection, whatever the markup) is tested
with the generic renderer in ``tests/documents/test_pdf.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from apps.safari import app, operations
from apps.safari.documents import SafariDocuments
from apps.safari.documents.receipts import (
    PaymentNotPaidError,
    build_receipt_data,
    generate_receipt,
    issue_receipt,
    render_receipt_html,
)
from apps.safari.models import (
    RECEIPT_SERIES,
    Booking,
    BookingStatus,
    Customer,
    Departure,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    Tour,
    Traveler,
)
from apps.safari.omari import EventStatus, PaymentEvent, ReceiptHooks, apply_provider_event
from apps.safari.receipts import approve_payment_and_send_receipt
from apps.safari.settings import DEFAULT_BRANDING
from documents import MissingGlyphError, PdfRenderer, RenderError, html_to_pdf, load_branding
from flows.messages import Document
from flows.runtime import Runtime
from flows.testing import ChatFactory
from storage import Database, DocumentCounter, NotFoundError, OutboundMessage, StoredFile, migrate
from tests.apps.safari.catalogue import add_contact, add_tour
from tests.apps.safari.chat_helpers import PHONE, add_catalogue, open_chat, seed_booking
from tests.cli import nyala
from tests.documents.pdf import pdf_fonts, pdf_info, pdf_text
from tests.documents.trap import trap_server  # noqa: F401 - the fixture `trap`

DAY = dt.datetime.now(app.timezone).date() + dt.timedelta(days=12)
YEAR = dt.datetime.now(app.timezone).year
NAMES = ("Rudo Chikwanha", "Ana Moyo", "Ben Dube")
NEW_YEAR = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Seeded:
    booking_id: int
    reference: str
    payment_ids: list[int]


async def seed(
    db: Database,
    *,
    customer_name: str = "Rudo Chikwanha",
    email: str | None = "rudo@example.com",
    payments: tuple[tuple[str, PaymentStatus, PaymentMethod, str | None], ...] = (
        ("100.00", PaymentStatus.APPROVED, PaymentMethod.CASH, None),
        ("150.00", PaymentStatus.APPROVED, PaymentMethod.BANK_TRANSFER, "FBC-TRX-88213"),
    ),
    wa_id: str = "263770000321",
    code: str = "falls",
    wrote: dt.timedelta | None = dt.timedelta(minutes=5),
) -> Seeded:
    """A 3-traveller booking (USD 360.00) with ``payments`` (amount, status, method, ref);
    the customer last wrote ``wrote`` ago (``None``: never)."""
    async with db.transaction() as s:
        tour, [departure] = await add_tour(
            s, code=code, price="120.00", departures=((DAY, 10, 7),)
        )
        contact = await add_contact(s, wa_id)
        if wrote is not None:
            contact.last_inbound_at = dt.datetime.now(dt.UTC) - wrote
        customer = Customer(
            contact_id=contact.id, name=customer_name, phone=f"+{wa_id}", email=email
        )
        s.add(customer)
        await s.flush()
        booking = Booking(
            reference=f"SAF-{code[:3].upper()}{wa_id[-3:]}", customer_id=customer.id,
            tour_id=tour.id, departure_id=departure.id, travelers_count=3,
            total_cost=Decimal("360.00"), currency="USD", status=BookingStatus.CONFIRMED,
        )  # fmt: skip
        s.add(booking)
        await s.flush()
        s.add_all(
            Traveler(booking_id=booking.id, position=i, full_name=n)
            for i, n in enumerate(NAMES, 1)
        )
        ids = []
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=len(payments))
        for i, (amount, status, method, ref) in enumerate(payments):
            payment = Payment(
                booking_id=booking.id, amount=Decimal(amount), currency="USD", method=method,
                status=status, provider_reference=ref,
                paid_at=start + dt.timedelta(days=i) if status in (
                    PaymentStatus.APPROVED, PaymentStatus.CONFIRMED) else None,
            )  # fmt: skip
            s.add(payment)
            await s.flush()
            ids.append(payment.id)
        return Seeded(booking.id, booking.reference, ids)


async def rows(db: Database, model: type[object]) -> int:
    async with db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def receipt_counter(db: Database) -> int | None:
    """The last receipt number used this year (``None``: none yet)."""
    async with db.read() as s:
        return await s.scalar(
            select(DocumentCounter.last_seq).where(
                DocumentCounter.series == RECEIPT_SERIES, DocumentCounter.year == YEAR
            )
        )


class BrokenRenderer(PdfRenderer):
    """A renderer whose every render fails, as a crashed worker would."""

    async def render(self, html: str) -> bytes:
        raise RenderError("boom")


def broken_documents() -> SafariDocuments:
    return SafariDocuments(BrokenRenderer(), app.timezone)


# --- content ------------------------------------------------------------------------------


async def test_the_pdf_shows_every_field_and_the_balance_due(
    db: Database, documents: SafariDocuments
) -> None:
    seeded = await seed(db)
    pdf = await generate_receipt(db, seeded.payment_ids[1], documents)
    text = pdf_text(pdf)
    number = f"RCT-{YEAR}-000001"
    for expected in (
        "Savannah Trails Safaris", "RECEIPT", number, "Issued", "CAT",
        "Rudo Chikwanha", "+263770000321", "rudo@example.com", seeded.reference,
        "Amount paid USD 150.00", "Bank transfer", "FBC-TRX-88213", "Payment date",
        "Victoria Falls guided tour", f"{DAY.day} {DAY:%b %Y}", "Ana Moyo", "Ben Dube",
        "Travellers", "USD 360.00", "Amount paid USD 250.00", "Balance due USD 110.00",
        "BALANCE DUE USD 110.00", "Terms & conditions", "bookings@savannahtrails.example",
        "Thank you for travelling",
    ):  # fmt: skip
        assert expected in text, (expected, text)
    async with db.read() as s:
        receipt = await s.scalar(select(Receipt))
        assert receipt is not None
        file = await s.get(StoredFile, receipt.file_id)
        assert file is not None
        assert (receipt.number, receipt.year, receipt.seq) == (number, YEAR, 1)
        assert (file.filename, file.mime_type) == (f"Receipt_{number}.pdf", "application/pdf")
        assert file.data == pdf and receipt.sha256 == file.sha256


async def test_a_receipt_counts_payments_up_to_its_own(
    db: Database, documents: SafariDocuments
) -> None:
    seeded = await seed(db)
    first = pdf_text(await generate_receipt(db, seeded.payment_ids[0], documents))
    assert "Amount paid USD 100.00" in first and "Balance due USD 260.00" in first


async def test_a_fully_paid_booking_says_so(db: Database, documents: SafariDocuments) -> None:
    seeded = await seed(db, payments=(("360.00", PaymentStatus.CONFIRMED, PaymentMethod.OMARI,
                                       "OM-1"),))  # fmt: skip
    text = pdf_text(await generate_receipt(db, seeded.payment_ids[0], documents))
    assert "PAID IN FULL" in text and "Balance due USD 0.00" in text
    assert "Omari mobile money" in text and "OM-1" in text


def test_receipt_data_is_assembled_without_io() -> None:
    paid = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
    booking = Booking(id=1, reference="SAF-X", travelers_count=2,
                      total_cost=Decimal("1234.50"), currency="USD")  # fmt: skip
    payment = Payment(
        id=2, booking_id=1, amount=Decimal("1000"), currency="usd",
        method=PaymentMethod.CASH, status=PaymentStatus.APPROVED, paid_at=paid,
    )  # fmt: skip
    data = build_receipt_data(
        number="RCT-2026-000007", issued_at=paid, payment=payment, booking=booking,
        customer=Customer(name="A B", phone=None, email=None),
        tour=Tour(name="Walk", start_time=dt.time(8)),
        departure=Departure(date=dt.date(2026, 3, 9)),
        travelers=[Traveler(position=2, full_name="Z"), Traveler(position=1, full_name="A B")],
        payments=[payment, Payment(id=3, amount=Decimal(5), status=PaymentStatus.PENDING,
                                   paid_at=paid, method=PaymentMethod.CASH)],
        tz=app.timezone,
    )  # fmt: skip
    assert data.traveler_names == ("A B", "Z")
    assert (data.total_paid, data.balance_due, data.currency) == (
        Decimal(1000), Decimal("234.50"), "USD")  # fmt: skip
    assert data.issued_at.tzname() == "CAT" and data.payment_date.hour == 10
    assert data.filename == "Receipt_RCT-2026-000007.pdf"


# --- numbers, idempotency, refusals -----------------------------------------------------------


async def test_asking_again_returns_the_stored_pdf_and_number(
    db: Database, documents: SafariDocuments
) -> None:
    seeded = await seed(db)
    first = await generate_receipt(db, seeded.payment_ids[1], documents)
    second = await generate_receipt(db, seeded.payment_ids[1], documents)
    assert first == second
    async with db.transaction() as s:
        again = await issue_receipt(s, seeded.payment_ids[1], documents)
        assert (again.number, again.created, again.pdf) == (f"RCT-{YEAR}-000001", False, first)
        other = await issue_receipt(s, seeded.payment_ids[0], documents)
        assert (other.number, other.created) == (f"RCT-{YEAR}-000002", True)
    assert await rows(db, Receipt) == 2 and await rows(db, StoredFile) == 2
    assert await receipt_counter(db) == 2


async def test_only_paid_payments_get_a_receipt(db: Database, documents: SafariDocuments) -> None:
    seeded = await seed(db, payments=(
        ("50.00", PaymentStatus.PENDING, PaymentMethod.BANK_TRANSFER, None),
        ("60.00", PaymentStatus.REJECTED, PaymentMethod.BANK_TRANSFER, None),
    ))  # fmt: skip
    for payment_id, status in zip(seeded.payment_ids, ("pending", "rejected"), strict=True):
        with pytest.raises(PaymentNotPaidError, match=f"is {status}: only approved or confirmed"):
            await generate_receipt(db, payment_id, documents)
    with pytest.raises(NotFoundError, match="no payment 999999"):
        await generate_receipt(db, 999999, documents)
    assert await rows(db, Receipt) == 0 and await receipt_counter(db) is None


async def test_a_failed_render_keeps_no_receipt_and_no_number(
    db: Database, documents: SafariDocuments
) -> None:
    seeded = await seed(db)
    with pytest.raises(RenderError, match="boom"):
        await generate_receipt(db, seeded.payment_ids[0], broken_documents())
    assert await rows(db, Receipt) == 0 and await rows(db, StoredFile) == 0
    assert await receipt_counter(db) is None
    pdf = await generate_receipt(db, seeded.payment_ids[0], documents)
    assert f"RCT-{YEAR}-000001" in pdf_text(pdf)


async def test_twenty_concurrent_approvals_number_without_gaps(
    db: Database, documents: SafariDocuments
) -> None:
    seeded = await seed(
        db,
        payments=tuple(
            ("10.00", PaymentStatus.PENDING, PaymentMethod.BANK_TRANSFER, f"T{i}")
            for i in range(20)
        ),
    )

    async def approve(payment_id: int) -> None:
        async with db.transaction() as s:
            await approve_payment_and_send_receipt(s, payment_id, documents, actor="ops@example")

    await asyncio.gather(*(approve(p) for p in seeded.payment_ids))
    async with db.read() as s:
        receipts = (await s.scalars(select(Receipt).order_by(Receipt.seq))).all()
        sent = (
            await s.scalars(select(OutboundMessage).where(OutboundMessage.kind == "document"))
        ).all()
    assert await receipt_counter(db) == 20
    assert [r.number for r in receipts] == [f"RCT-{YEAR}-{n:06d}" for n in range(1, 21)]
    assert sorted(r.payment_id for r in receipts) == sorted(seeded.payment_ids)
    assert len(sent) == 20


# --- no resource access for data ------------------------------------------------------------


async def test_markup_in_the_data_prints_literally_and_fetches_nothing(
    db: Database, documents: SafariDocuments, trap: tuple[str, list[str]]
) -> None:
    url, hits = trap
    name = '<img src="file:///etc/passwd">'
    email = f"@import url({url}/x.css)"
    reference = f'<img src="{url}/x.png"><link rel="stylesheet" href="{url}/y.css">'
    seeded = await seed(db, customer_name=name, email=email, payments=(
        ("10.00", PaymentStatus.APPROVED, PaymentMethod.BANK_TRANSFER, reference),))  # fmt: skip
    text = pdf_text(await generate_receipt(db, seeded.payment_ids[0], documents))
    for literal in (name, email, f'<img src="{url}/x.png">'):
        assert literal in text, (literal, text)
    assert "root:" not in text
    assert hits == []


def test_the_shipped_template_escapes_and_embeds_only_the_logo() -> None:
    data = build_receipt_data(
        number="RCT-2026-000001", issued_at=NEW_YEAR,
        payment=Payment(id=1, amount=Decimal(1), currency="USD", method=PaymentMethod.CASH,
                        status=PaymentStatus.APPROVED, paid_at=NEW_YEAR),
        booking=Booking(id=1, reference="<b>R</b>", travelers_count=1, total_cost=Decimal(1),
                        currency="USD"),
        customer=Customer(name="<script>x</script>"), tour=Tour(name="T", start_time=None),
        departure=Departure(date=dt.date(2026, 1, 2)),
        travelers=[], payments=[], tz=app.timezone,
    )  # fmt: skip
    html = render_receipt_html(data, load_branding(DEFAULT_BRANDING))
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&lt;b&gt;R&lt;/b&gt;" in html
    assert re.findall(r'src="([^"]{0,22})', html) == ["data:image/png;base64,"]
    assert "http://" not in html and "https://" not in html
    assert html_to_pdf(html).startswith(b"%PDF")


# --- triggers -------------------------------------------------------------------------------


async def outbound(db: Database) -> list[OutboundMessage]:
    async with db.read() as s:
        return list((await s.scalars(select(OutboundMessage).order_by(OutboundMessage.id))).all())


async def test_an_omari_confirmation_sends_the_receipt(db: Database, runtime: Runtime) -> None:
    seeded = await seed(db, payments=(("360.00", PaymentStatus.PENDING, PaymentMethod.OMARI,
                                       "OM-REF-1"),))  # fmt: skip
    event = PaymentEvent(
        event_id="evt-r1", provider_reference="OM-REF-1", payment_id=seeded.payment_ids[0],
        amount=Decimal("360.00"), currency="USD", status=EventStatus.SUCCESS,
        occurred_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    hooks = runtime.services.get(ReceiptHooks)
    outcome = await apply_provider_event(db, event, sandbox=True, hooks=hooks)
    assert outcome.queued == 2
    messages = await outbound(db)
    assert [m.kind for m in messages] == ["text", "document"]
    number = f"RCT-{YEAR}-000001"
    assert messages[1].payload["filename"] == f"Receipt_{number}.pdf"
    assert number in messages[1].payload["caption"]
    async with db.read() as s:
        file = await s.get(StoredFile, messages[1].payload["file_id"])
        assert file is not None and "Omari mobile money" in pdf_text(file.data)


async def test_an_approval_sends_the_news_and_the_receipt_once(
    db: Database, documents: SafariDocuments
) -> None:
    seeded = await seed(db, payments=(("200.00", PaymentStatus.PENDING,
                                       PaymentMethod.BANK_TRANSFER, "BANK-9"),))  # fmt: skip
    for _ in range(2):
        async with db.transaction() as s:
            payment = await approve_payment_and_send_receipt(
                s, seeded.payment_ids[0], documents, actor="ops@example", sandbox=True
            )
            assert payment.status is PaymentStatus.APPROVED
    messages = await outbound(db)
    assert [m.kind for m in messages] == ["text", "document"]
    assert "was approved. Balance due: USD 160.00." in messages[0].payload["body"]
    assert messages[1].payload["filename"] == f"Receipt_RCT-{YEAR}-000001.pdf"
    assert await rows(db, Receipt) == 1


async def test_a_late_approval_sends_the_template_and_the_tap_brings_the_receipt(
    db: Database, documents: SafariDocuments, nyala_chat: ChatFactory
) -> None:
    """The customer last wrote two days ago: only the approved template may go out. The
    receipt is issued all the same; tapping the template's button sends it."""
    seeded = await seed(db, payments=(("200.00", PaymentStatus.PENDING,
                                       PaymentMethod.BANK_TRANSFER, "BANK-7"),),
                        wrote=dt.timedelta(days=2))  # fmt: skip
    async with db.transaction() as s:
        await approve_payment_and_send_receipt(
            s, seeded.payment_ids[0], documents, actor="ops@example"
        )
    (message,) = await outbound(db)
    assert message.kind == "template" and message.payload["name"] == "payment_receipt"
    assert list(message.payload["parameters"]) == ["Rudo", "USD 200.00", seeded.reference]
    assert message.payload["buttons"][0]["id"] == "flow:receipt_flow"
    assert await rows(db, Receipt) == 1
    chat = await nyala_chat(app, phone="263770000321")
    await chat.send("Get my receipt", tap_id="flow:receipt_flow")
    (document,) = [r for r in chat.replies if isinstance(r, Document)]
    assert document.filename == f"Receipt_RCT-{YEAR}-000001.pdf"
    assert await rows(db, Receipt) == 1


async def test_an_automatic_receipt_that_fails_does_not_block_the_approval(
    db: Database,
) -> None:
    seeded = await seed(db, payments=(("200.00", PaymentStatus.PENDING,
                                       PaymentMethod.BANK_TRANSFER, None),))  # fmt: skip
    async with db.transaction() as s:
        await approve_payment_and_send_receipt(
            s, seeded.payment_ids[0], broken_documents(), actor="ops"
        )
    assert [m.kind for m in await outbound(db)] == ["text"]
    assert await rows(db, Receipt) == 0 and await receipt_counter(db) is None
    async with db.read() as s:
        payment = await s.get(Payment, seeded.payment_ids[0])
        assert payment is not None and payment.status is PaymentStatus.APPROVED


async def test_send_receipt_in_the_chat(nyala_chat: ChatFactory, db: Database) -> None:
    await add_catalogue(db)
    chat = await open_chat(nyala_chat)
    await chat.send("send receipt")
    assert "no receipt to send" in chat.last_text
    # Nothing to send is its own outcome, not an abandoned session (issue 16.6).
    async with db.read() as s:
        stored = (
            await s.execute(
                text("SELECT status, outcome FROM flow_sessions WHERE flow_name = 'receipt_flow'")
            )
        ).all()
    assert [tuple(row) for row in stored] == [("completed", "nothing_to_do")]
    reference = await seed_booking(db, names=("Rudo Chikwanha",))
    async with db.transaction() as s:
        booking = await s.scalar(select(Booking).where(Booking.reference == reference))
        assert booking is not None
        first = await operations.record_payment(
            s, booking.id, amount=Decimal("20.00"), method=PaymentMethod.CASH, actor="ops"
        )
        first_id = first.id
    await chat.send("receipt")
    documents = [r for r in chat.replies if isinstance(r, Document)]
    assert len(documents) == 1, chat.transcript
    assert documents[0].filename == f"Receipt_RCT-{YEAR}-000001.pdf"
    assert reference in (documents[0].caption or "")
    async with db.transaction() as s:
        await operations.record_payment(
            s, booking.id, amount=Decimal("30.00"), method=PaymentMethod.CASH, actor="ops"
        )
    await chat.send("my receipt")
    assert chat.last_text == "Which payment would you like the receipt for?"
    assert [o.split(" · ")[0] for o in chat.options] == ["USD 30.00", "USD 20.00"]
    await chat.send(tap=str(first_id))
    documents = [r for r in chat.replies if isinstance(r, Document)]
    assert [d.filename for d in documents] == [f"Receipt_RCT-{YEAR}-000001.pdf"]
    assert await rows(db, Receipt) == 1  # the same receipt again, no new number
    async with db.read() as s:
        contact_phone = await s.scalar(select(Customer.phone))
    assert contact_phone == f"+{PHONE}"


# --- CLI ------------------------------------------------------------------------------------


async def test_the_cli_writes_the_receipt(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    db = Database(url)
    try:
        await migrate(db, app.migration_locations)
        seeded = await seed(db, payments=(
            ("75.00", PaymentStatus.APPROVED, PaymentMethod.CASH, None),
            ("75.00", PaymentStatus.PENDING, PaymentMethod.CASH, None),
        ))  # fmt: skip
    finally:
        await db.dispose()
    env = {"DATABASE_URL": url}
    first = await asyncio.to_thread(nyala, "receipt", str(seeded.payment_ids[0]), cwd=tmp_path,
                                    env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    written = tmp_path / f"Receipt_RCT-{YEAR}-000001.pdf"
    assert written.read_bytes().startswith(b"%PDF")
    assert "issued" in first.stdout
    target = tmp_path / "out" / "r.pdf"
    target.parent.mkdir()
    again = await asyncio.to_thread(nyala, "receipt", str(seeded.payment_ids[0]), "-o",
                                    str(target), cwd=tmp_path, env=env)  # fmt: skip
    assert again.returncode == 0 and "already issued" in again.stdout
    assert target.read_bytes() == written.read_bytes()
    for payment_id, message in ((seeded.payment_ids[1], "is pending"), (999, "no payment 999")):
        failed = await asyncio.to_thread(nyala, "receipt", str(payment_id), cwd=tmp_path,
                                         env=env)  # fmt: skip
        assert failed.returncode == 1
        assert failed.stderr.count("\n") == 1 and message in failed.stderr, failed.stderr


# --- every script (issue 15) ---------------------------------------------------------------

EVERY_SCRIPT_NAME = "Łukasz Żółć 王芳 Nguyễn"


async def test_a_name_in_any_script_prints_in_embedded_fonts_with_metadata(
    db: Database, documents: SafariDocuments
) -> None:
    seeded = await seed(db, customer_name=EVERY_SCRIPT_NAME)
    pdf = await generate_receipt(db, seeded.payment_ids[1], documents)
    text = pdf_text(pdf)
    assert EVERY_SCRIPT_NAME in text, text
    assert "■" not in text
    fonts = pdf_fonts(pdf)
    assert fonts and all(embedded for _, embedded in fonts), fonts
    assert any("WenQuanYi" in name for name, _ in fonts) and any(
        "DejaVuSans" in name for name, _ in fonts
    )
    info = pdf_info(pdf)
    number = f"RCT-{YEAR}-000001"
    assert info["Title"] == f"Receipt {number}"
    assert info["Author"] == "Savannah Trails Safaris"
    assert info["Subject"] == (
        f"Payment receipt for booking {seeded.reference} ({EVERY_SCRIPT_NAME}): "
        "Victoria Falls guided tour"
    )
    assert info["Creator"] == "Nyala (safari bot)"


async def test_a_receipt_that_cannot_draw_its_text_is_not_issued_or_numbered(
    db: Database, documents: SafariDocuments
) -> None:
    """A name the validator accepts in a script no embedded font has (Tibetan here):
    the issue fails loudly, nothing is stored and no number is used."""
    undrawable = await seed(db, customer_name="Tenzin ཀཁ")
    with pytest.raises(MissingGlyphError, match="U\\+0F40") as raised:
        await generate_receipt(db, undrawable.payment_ids[0], documents)
    assert set(raised.value.characters) == {"ཀ", "ཁ"}
    assert await rows(db, Receipt) == 0 and await rows(db, StoredFile) == 0
    assert await receipt_counter(db) is None
    other = await seed(
        db, wa_id="263770000999", code="zambezi",
        payments=(("80.00", PaymentStatus.APPROVED, PaymentMethod.CASH, None),),
    )  # fmt: skip
    pdf = await generate_receipt(db, other.payment_ids[0], documents)
    assert f"RCT-{YEAR}-000001" in pdf_text(pdf)
    with pytest.raises(MissingGlyphError):  # asking again: still refused, still no number
        await generate_receipt(db, undrawable.payment_ids[0], documents)
    assert await rows(db, Receipt) == 1 and await receipt_counter(db) == 1
