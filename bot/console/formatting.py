"""Jinja filters for console pages: times, durations, money, status badges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from documents.formatting import format_duration, format_money
from storage import utcnow

# Status → badge colour (CSS class ``badge-<colour>``).
BADGES = {
    "completed": "green",
    "confirmed": "green",
    "approved": "green",
    "delivered": "green",
    "read": "green",
    "done": "green",
    "verified": "green",
    "sent": "blue",
    "received": "blue",
    "active": "blue",
    "entered": "blue",
    "queued": "blue",
    "pending": "amber",
    "retry": "amber",
    "skipped": "grey",
    "sandbox": "grey",
    "missing": "amber",
    "abandoned": "grey",
    "cancelled": "grey",
    "refunded": "grey",
    "error": "red",
    "failed": "red",
    "rejected": "red",
    "admin": "purple",
    "agent": "blue",
    "viewer": "grey",
}


def when(value: dt.datetime | None, tz: dt.tzinfo = dt.UTC) -> str:
    """``2026-11-25 14:03`` in ``tz`` (the console passes the business's), or an em dash."""
    if value is None:
        return "—"
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def when_seconds(value: dt.datetime | None, tz: dt.tzinfo = dt.UTC) -> str:
    """``14:03:27`` in ``tz``, with the date when it is not today there."""
    if value is None:
        return "—"
    value = value.astimezone(tz)
    if value.date() == utcnow().astimezone(tz).date():
        return value.strftime("%H:%M:%S")
    return value.strftime("%Y-%m-%d %H:%M:%S")


def ago(value: dt.datetime | None) -> str:
    """``3 min ago``, ``2 h ago``, ``5 d ago``."""
    if value is None:
        return "—"
    seconds = (utcnow() - value).total_seconds()
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def duration(seconds: float | None) -> str:
    """``4.2 s``, ``3 min 05 s``, ``2 h 10 min`` (the one duration formatter)."""
    return format_duration(seconds)


def money(amount: Decimal | float | None, currency: str) -> str:
    """``USD 1,250.00`` (the one money formatter); ``—`` when there is no amount."""
    if amount is None:
        return "—"
    return format_money(Decimal(str(amount)), currency)


def percent(value: float | None, digits: int = 1) -> str:
    """``82.5 %`` from 82.5 (a percentage, not a fraction)."""
    if value is None:
        return "—"
    return f"{value:.{digits}f} %"


def badge(value: Any) -> str:
    """The badge colour of a status."""
    return BADGES.get(str(getattr(value, "value", value)), "grey")


def label(value: Any) -> str:
    """An enum's value, or the value as text."""
    return str(getattr(value, "value", value))


def phone(value: str | None) -> str:
    """``+263771234567``; a sandbox id (no country code starts with 0) is no phone
    number and is not written as one: ``sandbox 0001``."""
    if not value:
        return "—"
    if value.startswith("0"):
        return f"sandbox {value}"
    return value if value.startswith("+") else f"+{value}"


def zoned(tz: dt.tzinfo) -> dict[str, Callable[..., Any]]:
    """The time filters in the business's timezone: the console shows the same days and
    times as the reports and its date filters (one notion of "day")."""
    return {
        "when": lambda value: when(value, tz),
        "when_seconds": lambda value: when_seconds(value, tz),
    }


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when,
    "when_seconds": when_seconds,
    "ago": ago,
    "duration": duration,
    "money": money,
    "percent": percent,
    "badge": badge,
    "label": label,
    "phone": phone,
}
