"""The one money formatter and the one duration formatter."""

from __future__ import annotations

from decimal import Decimal

import pytest

from documents import format_duration, format_money


def test_money_is_written_per_currency() -> None:
    assert format_money(Decimal("1040"), "USD") == "USD 1,040.00"
    assert format_money(Decimal("1234.5"), "USD") == "USD 1,234.50"
    assert format_money(Decimal("1234567.891"), "zar") == "ZAR 1,234,567.89"
    assert format_money(Decimal("1234.5"), "JPY") == "JPY 1,235"
    assert format_money(Decimal("1.2345"), "KWD") == "KWD 1.235"
    assert format_money(Decimal("0.005"), "USD") == "USD 0.01"  # half up, as money
    assert format_money(0, "USD") == "USD 0.00"
    assert format_money("12.5", " eur ") == "EUR 12.50"


def test_money_follows_the_readers_locale() -> None:
    assert format_money(Decimal("1234.5"), "EUR", locale="de") == "EUR 1.234,50"


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (None, "—"),
        (4.23, "4.2 s"),
        (185, "3 min 05 s"),
        (2700, "45 min"),
        (4 * 3600, "4 h"),
        (2 * 3600 + 600, "2 h 10 min"),
    ],
)
def test_durations(seconds: float | None, written: str) -> None:
    assert format_duration(seconds) == written
