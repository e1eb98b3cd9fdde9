"""Reading list filters from the query string: junk is ignored with a notice, never a 500.

Every value is parsed into a type (a member of a fixed set, a date, a bounded integer, a
short text) before it reaches a query, and queries bind values as parameters, so neither
SQL nor HTML can be injected through a filter.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.console.web import notice, parse_id

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PAGE_SIZE = 50
MAX_PAGE = 2000


class Filters:
    """The query string of a list page, read with notices for what was ignored."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.raw: Mapping[str, str] = request.query
        self.kept: dict[str, str] = {}

    def _ignore(self, name: str, value: str, why: str) -> None:
        shown = value if len(value) <= 40 else value[:39] + "…"
        notice(self.request, f"Ignored {name} {shown!r}: {why}.")

    def choice(self, name: str, allowed: Iterable[str], default: str | None = None) -> str | None:
        """One of ``allowed`` (``default`` when absent or not allowed)."""
        value = self.raw.get(name, "").strip()
        options = list(allowed)
        if not value:
            return default
        if value not in options:
            self._ignore(name, value, "use one of " + ", ".join(options[:12]))
            return default
        self.kept[name] = value
        return value

    def date(self, name: str) -> dt.date | None:
        """A ``YYYY-MM-DD`` date."""
        value = self.raw.get(name, "").strip()
        if not value:
            return None
        try:
            parsed = dt.date.fromisoformat(value)
        except ValueError:
            self._ignore(name, value, "not a date (YYYY-MM-DD)")
            return None
        if not 2000 <= parsed.year <= 2100:
            self._ignore(name, value, "out of range")
            return None
        self.kept[name] = value
        return parsed

    def integer(self, name: str, *, low: int, high: int, default: int | None = None) -> int | None:
        """An integer in ``[low, high]``."""
        value = self.raw.get(name, "").strip()
        if not value:
            return default
        number = parse_id(value)  # ASCII digits only: int() takes "١٢" and "１２" too
        if number is None or not low <= number <= high:
            self._ignore(name, value, f"use a whole number from {low} to {high}")
            return default
        self.kept[name] = value
        return number

    def text(self, name: str, *, max_length: int = 100) -> str | None:
        """Free text: control characters dropped, cut to ``max_length``."""
        value = _CONTROL.sub("", self.raw.get(name, "")).strip()
        if not value:
            return None
        if len(value) > max_length:
            self._ignore(name, value, f"longer than {max_length} characters (cut)")
            value = value[:max_length]
        self.kept[name] = value
        return value

    def page(self) -> int:
        """The page number (1-based)."""
        return self.integer("page", low=1, high=MAX_PAGE, default=1) or 1

    def query(self, **changes: Any) -> str:
        """This page's query string with ``changes`` (``None`` removes a key)."""
        values: dict[str, Any] = {k: v for k, v in self.kept.items() if k != "page"}
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        return urllib.parse.urlencode(values)


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a list: one more row than shown is fetched to know if there is a next."""

    number: int
    has_next: bool
    prev_url: str | None
    next_url: str | None
    label: str


def page_of(filters: Filters, rows: list[Any], number: int, size: int = PAGE_SIZE) -> Page:
    """The pager for ``rows`` (fetched with ``limit(size + 1)``); trims ``rows`` in place."""
    has_next = len(rows) > size
    del rows[size:]
    first = (number - 1) * size + 1
    label = f"{first}–{first + len(rows) - 1}" if rows else "no rows"
    return Page(
        number=number,
        has_next=has_next,
        prev_url="?" + filters.query(page=number - 1) if number > 1 else None,
        next_url="?" + filters.query(page=number + 1) if has_next and number < MAX_PAGE else None,
        label=f"Rows {label}",
    )


def day_start(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """Midnight of ``day`` in ``tz`` (the business's timezone), as UTC.

    Every date filter of the console means a day where the business is, as the reports
    do: a session at 00:30 local time (22:30 UTC the day before) belongs to the local day.
    """
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
