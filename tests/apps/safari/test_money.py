"""Money is written one way everywhere a customer or an operator reads it in the safari app:
by :func:`documents.format_money` ("USD 1,040.00"), never by a formatter of its own."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from apps.safari.models import Payment
from apps.safari.omari import EventStatus, PaymentEvent, apply_provider_event, instructions
from apps.safari.payments import PaymentRequest
from storage import AuditEntry, Database, OutboundMessage
from tests.apps.safari.test_omari import seed_payment

APPS = Path(__file__).resolve().parents[3] / "apps"

# An amount written next to its currency by hand, in Python (f-strings) or in templates.
HAND_MADE = {
    "a money-like fixed-decimals format": re.compile(r"\{[^{}]*:[^{}]*\.[0-3]f\}"),
    "a currency before an interpolated amount": re.compile(r"currency\}\s*\{(?!format_money)"),
    "an interpolated amount before its currency": re.compile(r"\{[^{}]*\}\s*\{[^{}]*currency\}"),
    "a currency code before an amount": re.compile(r"\b(USD|ZAR|EUR|ZWL)\s*\{(?!format_money)"),
    "a template amount beside its currency": re.compile(r"\}\}\s*\{\{[^}]*currency"),
    "a template amount without the money filter": re.compile(
        r"\{\{[^}|]*(amount|total|balance|due|paid|price)[^}|]*\}\}\s*(USD|\{\{)"
    ),
}


def sources() -> list[Path]:
    return sorted(
        p for p in APPS.rglob("*") if p.suffix in (".py", ".html") and "fake_omari" not in p.name
    )


def test_the_check_finds_what_it_forbids() -> None:
    bad = [
        'f"{currency} {amount:,.2f}"',
        'f"{payment.amount} {payment.currency}"',
        'f"USD {total}"',
        "{{ p.amount }} {{ p.currency }}",
        'f"{amount.quantize(CENTS):.2f}"',
    ]
    for line in bad:
        assert any(p.search(line) for p in HAND_MADE.values()), line
    assert not any(
        p.search('f"Paid {format_money(payment.amount, payment.currency)}"')
        for p in HAND_MADE.values()
    )


def test_no_other_money_formatting_in_apps() -> None:
    found = [
        f"{path.relative_to(APPS.parent)}:{number}: {why}: {line.strip()}"
        for path in sources()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for why, pattern in HAND_MADE.items()
        if pattern.search(line)
    ]
    assert found == []
    assert len(sources()) > 30  # the check reads the app, not an empty folder


def test_omari_asks_for_the_amount_as_customers_read_it() -> None:
    request = PaymentRequest(
        payment_id=1, booking_reference="SAF-7K3QX2", amount=Decimal("1040"),
        currency="USD", mobile_number="+263771234567",
    )  # fmt: skip
    assert "approve the Omari payment of USD 1,040.00 for booking SAF-7K3QX2" in instructions(
        request
    )


@pytest.mark.parametrize("status", [EventStatus.SUCCESS, EventStatus.FAILED])
async def test_omari_messages_and_the_audit_log_say_usd_1040(
    db: Database, status: EventStatus
) -> None:
    seeded = await seed_payment(db, amount="1040.00", total="2080.00")
    event = PaymentEvent(
        event_id="evt-money", provider_reference="OM-TEST-1", payment_id=seeded.payment_id,
        amount=Decimal("1040.00"), currency="USD", status=status, reason="Declined",
        occurred_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    await apply_provider_event(db, event, sandbox=True)
    async with db.read() as session:
        [message] = (await session.scalars(select(OutboundMessage))).all()
        details = await session.scalar(select(AuditEntry.details))
        payment = await session.get(Payment, seeded.payment_id)
    assert payment is not None
    body = str(message.payload["body"])
    if status is EventStatus.SUCCESS:
        assert body.startswith("✅ Payment of USD 1,040.00 received for booking SAF-7K3QX2.")
        assert "Balance due: USD 1,040.00." in body
    else:
        assert "Your Omari payment of USD 1,040.00 for booking SAF-7K3QX2" in body
    assert details is not None and details.startswith("USD 1,040.00 booking SAF-7K3QX2")
