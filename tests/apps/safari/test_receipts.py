"""PDF receipts on both backends: content, numbering, idempotency, lockdown and triggers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import func, select

from documents.receipts import (
    BUSINESS_TIMEZONE,
    PaymentNotPaidError,
    ReceiptRenderError,
    build_receipt_data,
    format_money,
    generate_receipt,
    html_to_pdf,
    issue_receipt,
)
from flows.messages import Document
from flows.safari import app, operations
from flows.safari.omari import EventStatus, PaymentEvent, apply_provider_event
from flows.safari.receipts import approve_payment_and_send_receipt
from flows.testing import ChatFactory
from storage import (
    Booking,
    BookingStatus,
    Customer,
    Database,
    Departure,
    NotFoundError,
    OutboundMessage,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    ReceiptCounter,
    StoredFile,
    Tour,
    Traveler,
    migrate,
)
from tests.cli import nyala
from tests.documents.pdf import pdf_text
from tests.safari.catalogue import add_contact, add_tour
from tests.safari.chat_helpers import PHONE, add_catalogue, open_chat, seed_booking

DAY = dt.datetime.now(BUSINESS_TIMEZONE).date() + dt.timedelta(days=12)
YEAR = dt.datetime.now(BUSINESS_TIMEZONE).year
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


# --- content ------------------------------------------------------------------------------


async def test_the_pdf_shows_every_field_and_the_balance_due(db: Database) -> None:
    seeded = await seed(db)
    pdf = await generate_receipt(seeded.payment_ids[1], db=db)
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


async def test_a_receipt_counts_payments_up_to_its_own(db: Database) -> None:
    seeded = await seed(db)
    first = pdf_text(await generate_receipt(seeded.payment_ids[0], db=db))
    assert "Amount paid USD 100.00" in first and "Balance due USD 260.00" in first


async def test_a_fully_paid_booking_says_so(db: Database) -> None:
    seeded = await seed(db, payments=(("360.00", PaymentStatus.CONFIRMED, PaymentMethod.OMARI,
                                       "OM-1"),))  # fmt: skip
    text = pdf_text(await generate_receipt(seeded.payment_ids[0], db=db))
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
    )  # fmt: skip
    assert data.traveler_names == ("A B", "Z")
    assert (data.total_paid, data.balance_due, data.currency) == (
        Decimal(1000), Decimal("234.50"), "USD")  # fmt: skip
    assert data.issued_at.tzname() == "CAT" and data.payment_date.hour == 10
    assert data.filename == "Receipt_RCT-2026-000007.pdf"


def test_money_is_written_per_currency() -> None:
    assert format_money(Decimal("1234.5"), "USD") == "USD 1,234.50"
    assert format_money(Decimal("1234567.891"), "zar") == "ZAR 1,234,567.89"
    assert format_money(Decimal("1234.5"), "JPY") == "JPY 1,235"
    assert format_money(Decimal("1.2345"), "KWD") == "KWD 1.235"


# --- numbers, idempotency, refusals -----------------------------------------------------------


async def test_asking_again_returns_the_stored_pdf_and_number(db: Database) -> None:
    seeded = await seed(db)
    first = await generate_receipt(seeded.payment_ids[1], db=db)
    second = await generate_receipt(seeded.payment_ids[1], db=db)
    assert first == second
    async with db.transaction() as s:
        again = await issue_receipt(s, seeded.payment_ids[1])
        assert (again.number, again.created, again.pdf) == (f"RCT-{YEAR}-000001", False, first)
        other = await issue_receipt(s, seeded.payment_ids[0])
        assert (other.number, other.created) == (f"RCT-{YEAR}-000002", True)
    assert await rows(db, Receipt) == 2 and await rows(db, StoredFile) == 2
    async with db.read() as s:
        assert await s.scalar(select(ReceiptCounter.last_seq)) == 2


async def test_only_paid_payments_get_a_receipt(db: Database) -> None:
    seeded = await seed(db, payments=(
        ("50.00", PaymentStatus.PENDING, PaymentMethod.BANK_TRANSFER, None),
        ("60.00", PaymentStatus.REJECTED, PaymentMethod.BANK_TRANSFER, None),
    ))  # fmt: skip
    for payment_id, status in zip(seeded.payment_ids, ("pending", "rejected"), strict=True):
        with pytest.raises(PaymentNotPaidError, match=f"is {status}: only approved or confirmed"):
            await generate_receipt(payment_id, db=db)
    with pytest.raises(NotFoundError, match="no payment 999999"):
        await generate_receipt(999999, db=db)
    assert await rows(db, Receipt) == 0 and await rows(db, ReceiptCounter) == 0


async def test_a_failed_render_keeps_no_receipt_and_no_number(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await seed(db)

    async def broken(*_: object) -> bytes:
        raise ReceiptRenderError("boom")

    with monkeypatch.context() as patched:
        patched.setattr("documents.receipts._render", broken)
        with pytest.raises(ReceiptRenderError):
            await generate_receipt(seeded.payment_ids[0], db=db)
    assert await rows(db, Receipt) == 0 and await rows(db, StoredFile) == 0
    assert await rows(db, ReceiptCounter) == 0
    pdf = await generate_receipt(seeded.payment_ids[0], db=db)
    assert f"RCT-{YEAR}-000001" in pdf_text(pdf)


async def test_twenty_concurrent_approvals_number_without_gaps(db: Database) -> None:
    seeded = await seed(
        db,
        payments=tuple(
            ("10.00", PaymentStatus.PENDING, PaymentMethod.BANK_TRANSFER, f"T{i}")
            for i in range(20)
        ),
    )

    async def approve(payment_id: int) -> None:
        async with db.transaction() as s:
            await approve_payment_and_send_receipt(s, payment_id, actor="ops@example")

    await asyncio.gather(*(approve(p) for p in seeded.payment_ids))
    async with db.read() as s:
        receipts = (await s.scalars(select(Receipt).order_by(Receipt.seq))).all()
        documents = (
            await s.scalars(select(OutboundMessage).where(OutboundMessage.kind == "document"))
        ).all()
        assert await s.scalar(select(ReceiptCounter.last_seq)) == 20
    assert [r.number for r in receipts] == [f"RCT-{YEAR}-{n:06d}" for n in range(1, 21)]
    assert sorted(r.payment_id for r in receipts) == sorted(seeded.payment_ids)
    assert len(documents) == 20


# --- no resource access for data ------------------------------------------------------------


@pytest_asyncio.fixture
async def trap() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback HTTP server recording every request (none must come)."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=b"body{color:red}", content_type="text/css")

    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


async def test_markup_in_the_data_prints_literally_and_fetches_nothing(
    db: Database, trap: tuple[str, list[str]]
) -> None:
    url, hits = trap
    name = '<img src="file:///etc/passwd">'
    email = f"@import url({url}/x.css)"
    reference = f'<img src="{url}/x.png"><link rel="stylesheet" href="{url}/y.css">'
    seeded = await seed(db, customer_name=name, email=email, payments=(
        ("10.00", PaymentStatus.APPROVED, PaymentMethod.BANK_TRANSFER, reference),))  # fmt: skip
    text = pdf_text(await generate_receipt(seeded.payment_ids[0], db=db))
    for literal in (name, email, f'<img src="{url}/x.png">'):
        assert literal in text, (literal, text)
    assert "root:" not in text
    assert hits == []


LOCKDOWN_PROBE = """
import json, sys
from documents.receipts import html_to_pdf
url, secret = sys.argv[1], sys.argv[2]
html = f'''<html><head>
<link rel="stylesheet" href="{url}/link.css">
<style>@import url({url}/import.css); @import url(file://{secret});
@font-face {{ font-family: X; src: url({url}/font.ttf); }}
@font-face {{ font-family: Y; src: url({secret}); }}
body {{ background-image: url({url}/bg.png); }}</style></head><body>
<img src="{url}/img.png"><img src="file://{secret}"><img src="{secret}">
<img src="file:///etc/passwd"><img src="ftp://127.0.0.1/x"><p>text</p>
<pdf:barcode value="x"/></body></html>'''
events = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)) and (
        "passwd" in str(args[0]) or "secret" in str(args[0])):
        events.append(("open", str(args[0])))
    elif event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        events.append((event, repr(args)[:200]))
sys.addaudithook(hook)
pdf = html_to_pdf(html)
print(json.dumps({"events": events, "pdf": pdf[:4].decode()}))
"""


async def test_the_renderer_itself_reads_no_file_and_opens_no_connection(
    tmp_path: Path, trap: tuple[str, list[str]]
) -> None:
    """Even markup that escaped the template would fetch nothing: the policy refuses it."""
    url, hits = trap
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not really")
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKDOWN_PROBE, url, str(secret),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(probe.communicate(), 120)
    assert probe.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result == {"events": [], "pdf": "%PDF"}
    assert hits == []
    assert "Blocked by the resource policy" in err.decode()


def test_the_shipped_template_escapes_and_embeds_only_the_logo() -> None:
    from documents.receipts import load_branding, render_receipt_html

    data = build_receipt_data(
        number="RCT-2026-000001", issued_at=NEW_YEAR,
        payment=Payment(id=1, amount=Decimal(1), currency="USD", method=PaymentMethod.CASH,
                        status=PaymentStatus.APPROVED, paid_at=NEW_YEAR),
        booking=Booking(id=1, reference="<b>R</b>", travelers_count=1, total_cost=Decimal(1),
                        currency="USD"),
        customer=Customer(name="<script>x</script>"), tour=Tour(name="T", start_time=None),
        departure=Departure(date=dt.date(2026, 1, 2)),
        travelers=[], payments=[],
    )  # fmt: skip
    html = render_receipt_html(data, load_branding())
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&lt;b&gt;R&lt;/b&gt;" in html
    assert re.findall(r'src="([^"]{0,22})', html) == ["data:image/png;base64,"]
    assert "http://" not in html and "https://" not in html
    assert html_to_pdf(html).startswith(b"%PDF")


# --- triggers -------------------------------------------------------------------------------


async def outbound(db: Database) -> list[OutboundMessage]:
    async with db.read() as s:
        return list((await s.scalars(select(OutboundMessage).order_by(OutboundMessage.id))).all())


async def test_an_omari_confirmation_sends_the_receipt(db: Database) -> None:
    seeded = await seed(db, payments=(("360.00", PaymentStatus.PENDING, PaymentMethod.OMARI,
                                       "OM-REF-1"),))  # fmt: skip
    event = PaymentEvent(
        event_id="evt-r1", provider_reference="OM-REF-1", payment_id=seeded.payment_ids[0],
        amount=Decimal("360.00"), currency="USD", status=EventStatus.SUCCESS,
        occurred_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    outcome = await apply_provider_event(db, event, sandbox=True)
    assert outcome.queued == 2
    messages = await outbound(db)
    assert [m.kind for m in messages] == ["text", "document"]
    number = f"RCT-{YEAR}-000001"
    assert messages[1].payload["filename"] == f"Receipt_{number}.pdf"
    assert number in messages[1].payload["caption"]
    async with db.read() as s:
        file = await s.get(StoredFile, messages[1].payload["file_id"])
        assert file is not None and "Omari mobile money" in pdf_text(file.data)


async def test_an_approval_sends_the_news_and_the_receipt_once(db: Database) -> None:
    seeded = await seed(db, payments=(("200.00", PaymentStatus.PENDING,
                                       PaymentMethod.BANK_TRANSFER, "BANK-9"),))  # fmt: skip
    for _ in range(2):
        async with db.transaction() as s:
            payment = await approve_payment_and_send_receipt(
                s, seeded.payment_ids[0], actor="ops@example", sandbox=True
            )
            assert payment.status is PaymentStatus.APPROVED
    messages = await outbound(db)
    assert [m.kind for m in messages] == ["text", "document"]
    assert "was approved. Balance due: USD 160.00." in messages[0].payload["body"]
    assert messages[1].payload["filename"] == f"Receipt_RCT-{YEAR}-000001.pdf"
    assert await rows(db, Receipt) == 1


async def test_a_late_approval_sends_the_template_and_the_tap_brings_the_receipt(
    db: Database, nyala_chat: ChatFactory
) -> None:
    """The customer last wrote two days ago: only the approved template may go out. The
    receipt is issued all the same; tapping the template's button sends it."""
    seeded = await seed(db, payments=(("200.00", PaymentStatus.PENDING,
                                       PaymentMethod.BANK_TRANSFER, "BANK-7"),),
                        wrote=dt.timedelta(days=2))  # fmt: skip
    async with db.transaction() as s:
        await approve_payment_and_send_receipt(s, seeded.payment_ids[0], actor="ops@example")
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
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await seed(db, payments=(("200.00", PaymentStatus.PENDING,
                                       PaymentMethod.BANK_TRANSFER, None),))  # fmt: skip

    async def broken(*_: object) -> bytes:
        raise ReceiptRenderError("boom")

    monkeypatch.setattr("documents.receipts._render", broken)
    async with db.transaction() as s:
        await approve_payment_and_send_receipt(s, seeded.payment_ids[0], actor="ops")
    assert [m.kind for m in await outbound(db)] == ["text"]
    assert await rows(db, Receipt) == 0 and await rows(db, ReceiptCounter) == 0
    async with db.read() as s:
        payment = await s.get(Payment, seeded.payment_ids[0])
        assert payment is not None and payment.status is PaymentStatus.APPROVED


async def test_send_receipt_in_the_chat(nyala_chat: ChatFactory, db: Database) -> None:
    await add_catalogue(db)
    chat = await open_chat(nyala_chat)
    await chat.send("send receipt")
    assert "no receipt to send" in chat.last_text
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
        await migrate(db)
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
