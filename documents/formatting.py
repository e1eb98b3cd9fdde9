"""How money and durations are written, everywhere a customer or an operator reads them.

One formatter of each, used by chat replies, PDFs, the console, the CLI and templates, so
a total never reads "USD 1,040.00" in one place and "USD 1040.00" in another. Money is
formatted by Babel (CLDR data): the currency's own decimals (JPY 0, KWD 3) and the
locale's grouping, after rounding half up as money is rounded.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from babel.numbers import format_currency, get_currency_precision

__all__ = ["DEFAULT_LOCALE", "format_duration", "format_money"]

DEFAULT_LOCALE: Final = "en"
# The ISO code before the amount ("USD 1,040.00"): unambiguous where "$" is not.
_PATTERN: Final = "¤¤ #,##0.00"


def format_money(
    amount: Decimal | int | float | str, currency: str, *, locale: str = DEFAULT_LOCALE
) -> str:
    """``USD 1,234.50``: the amount with its currency's code, decimals and grouping.

    Args:
        amount: the amount (a ``Decimal`` for money; other numbers are converted exactly).
        currency: ISO 4217 code, e.g. ``"USD"``.
        locale: the reader's locale (grouping and decimal signs).
    """
    code = currency.strip().upper()
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    places = get_currency_precision(code)
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return format_currency(rounded, code, format=_PATTERN, locale=locale, currency_digits=True)


def format_duration(seconds: float | None) -> str:
    """``4.2 s``, ``3 min 05 s``, ``45 min``, ``2 h 10 min``, ``4 h``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
