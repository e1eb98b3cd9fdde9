"""Money reads "USD 1,040.00" wherever a customer or an operator reads it (issue 16, point 7).

Two nets: the safari app is run (demo data, a booking chat, the console's pages after an
approval and a receipt, the receipts' PDF text, every queued message and template
parameter, the audit log) and everything it wrote is searched for an amount or a currency
code that is not in :func:`documents.format_money`'s form; and the framework's and the
examples' sources are searched for a formatter of their own, like ``test_money.py`` does
for the app.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import text

from apps.safari import app as safari
from apps.safari.demo import describe, load_demo_data
from documents import format_money
from flows.testing import ChatFactory
from storage import Database
from storage.operators import OperatorRole
from tests.apps.safari import test_console_operations
from tests.apps.safari.chat_helpers import (
    add_catalogue,
    descriptions,
    open_chat,
    reach_review,
    stored_media,
)
from tests.apps.safari.test_console_operations import PNG, SafariConsole
from tests.apps.safari.test_money import HAND_MADE
from tests.documents.pdf import pdf_text

console = test_console_operations.console

ROOT = Path(__file__).resolve().parents[3]
CODES = r"(?:USD|ZAR|EUR|GBP|ZWL|ZWG|BWP|ZMW)"
CANONICAL = re.compile(rf"\b{CODES} \d{{1,3}}(?:,\d{{3}})*\.\d{{2}}\b")
AMOUNT = re.compile(r"(?<![\d.])\d[\d,]*\.\d{2}\b(?!\s*%)")
CODE = re.compile(rf"\b{CODES}\b")
# A form's field label, "Amount (USD)", or an account's name, "USD account 0123…": a
# currency named, no amount written.
LABEL = re.compile(rf"\({CODES}\)|\b{CODES} account\b")
DOLLARS = re.compile(r"\$\s?\d")


def not_canonical(written: str) -> list[str]:
    """Each amount or currency code in ``written`` that is not part of ``USD 1,040.00``."""
    spans = [m.span() for m in CANONICAL.finditer(written)]
    spans += [m.span() for m in LABEL.finditer(written)]

    def inside(start: int, end: int) -> bool:
        return any(a <= start and end <= b for a, b in spans)

    found = [
        written[max(0, m.start() - 12) : m.end() + 12]
        for pattern in (AMOUNT, CODE)
        for m in pattern.finditer(written)
        if not inside(*m.span())
    ]
    return found + [m.group() for m in DOLLARS.finditer(written)]


def page_text(html: str) -> str:
    """What a person reads on a page: no scripts, styles, tags or attributes."""
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    plain = re.sub(r"<[^>]+>", " ", html)
    return " ".join(plain.replace("&amp;", "&").replace("&#39;", "'").split())


def test_the_check_finds_every_other_way_of_writing_money() -> None:
    for bad in (
        "Total USD 1040.00",
        "520.00 USD",
        "due 120.00",
        "Pay $50 now",
        "USD1,040.00",
        "balance: 1,040.00",
        "USD account 1040.00",  # an account named, then an amount not in the form
    ):
        assert not_canonical(bad), bad
    good = f"Total {format_money(1040, 'USD')}, paid {format_money('0', 'USD')} · Amount (USD)"
    assert not_canonical(f"{good} · USD account 01234567890123") == []
    assert not_canonical(good) == []
    assert not_canonical("4.2 s, 33.33 % completed, 12.50%, version 1.2") == []


async def test_every_amount_the_app_writes_is_canonical(console: SafariConsole) -> None:
    db = console.db
    written: dict[str, str] = {}
    data = await load_demo_data(db, tz=safari.timezone)
    written["nyala demo-bookings"] = "\n".join(describe(data))
    admin = await console.browser(OperatorRole.ADMIN)
    # Things that write money in the console and in messages: an approval (news, receipt,
    # audit), a receipt sent again, a rejection, a payment recorded by hand.
    approved = await console.pending_payment(proof=PNG)
    await admin.post(f"/console/payments/{approved}/approve", {"reference": "FBC-1"})
    rejected = await console.pending_payment(proof=PNG)
    await admin.post(f"/console/payments/{rejected}/reject", {"reason": "Not arrived"})
    paid = data.bookings[1].payment_ids[0]
    page = await admin.post(f"/console/payments/{paid}/receipt", {"send": "1"}, follow=True)
    written["generate receipt"] = page_text(page.text)
    reference = data.bookings[0].reference
    page = await admin.post(
        f"/console/bookings/{reference}/payments",
        {"method": "cash", "amount": "1040", "reference": "CASH-1"},
        follow=True,
    )
    written["record payment"] = page_text(page.text)
    paths = ["/console/bookings", "/console/payments?status=all", "/console/audit"]
    paths += [f"/console/bookings/{b.reference}" for b in data.bookings]
    async with db.read() as session:
        payment_ids = list(await session.scalars(text("SELECT id FROM payments")))
        confirmed = list(
            await session.scalars(
                text("SELECT reference FROM bookings WHERE status = 'confirmed'")
            )
        )
    paths += [f"/console/payments/{p}" for p in payment_ids]
    paths += [f"/console/summaries/{r}?kind=summary&days=7" for r in confirmed]
    for path in paths:
        page = await admin.get(path)
        assert page.status == 200, path
        written[path] = page_text(page.text)
    for p in payment_ids:
        pdf = await admin.get(f"/console/payments/{p}/receipt.pdf")
        if pdf.status == 200:
            written[f"receipt of payment {p}"] = pdf_text(pdf.body)
    async with db.read() as session:
        for kind, payload, fallback in await session.execute(
            text("SELECT kind, payload, fallback FROM outbound_messages")
        ):
            for part in (payload, fallback):
                if part is not None:
                    value = json.loads(part) if isinstance(part, str) else part
                    written[f"a {kind} message: {value}"] = json.dumps(value, ensure_ascii=False)
        for action, details in await session.execute(
            text("SELECT action, details FROM audit_log WHERE details IS NOT NULL")
        ):
            written[f"audit {action}"] = str(details)
    assert sum("USD " in w for w in written.values()) > 20  # the net caught money at all
    assert any("receipt of payment" in where for where in written)
    assert any("template" in where for where in written)
    found = {where: bad for where, w in written.items() if (bad := not_canonical(w))}
    assert found == {}


async def test_the_booking_chat_writes_canonical_amounts(
    nyala_chat: ChatFactory, db: Database
) -> None:
    await add_catalogue(db)
    chat = await open_chat(nyala_chat)
    await reach_review(chat)
    # On to the payment: the amount due, the transfer's instructions, the proof's thanks.
    await chat.send(tap="Confirm booking")
    await chat.send(tap="Bank transfer")
    await chat.send(media=await stored_media(db, "proof.pdf", "application/pdf"))
    await chat.send("FT24031ABC7")
    await chat.send("pay")
    said = "\n".join(line for who, line in chat.transcript if who == "bot")
    said += "\n" + "\n".join(d or "" for d in descriptions(chat))  # the list's rows
    assert "Total: USD 120.00 (2 × USD 60.00)" in said
    assert "Please transfer USD 120.00 to:" in said
    assert "Your proof of payment of USD 120.00" in said
    assert "USD 120.00 due · payment pending" in said
    assert not_canonical(said) == []


FRAMEWORK = ("analytics", "bot", "documents", "examples", "flows", "storage")
# The app's rules without the broad fixed-decimals one (the framework writes rates and
# chart coordinates with one decimal), plus any two-decimal format.
FRAMEWORK_RULES = {why: p for why, p in HAND_MADE.items() if "fixed-decimals" not in why}
FRAMEWORK_RULES["a two-decimals format"] = re.compile(r"\{[^{}]*:[^{}]*\.2f\}")


def test_no_money_formatting_of_its_own_in_the_framework_or_the_examples() -> None:
    sources = sorted(
        p
        for package in FRAMEWORK
        for p in (ROOT / package).rglob("*")
        if p.suffix in (".py", ".html") and "__pycache__" not in p.parts
    )
    assert len(sources) > 100
    found = [
        f"{path.relative_to(ROOT)}:{number}: {why}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for why, pattern in FRAMEWORK_RULES.items()
        if pattern.search(line)
    ]
    assert found == []
