"""Report periods: calendar days in the business's timezone, as UTC bounds.

Every report counts the sessions that *started* in its period, so a period is a whole
number of local calendar days, ``first_day`` to ``last_day`` inclusive. Its UTC bounds
come from local midnights, which keeps days that change with daylight saving right.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from analytics.errors import PeriodError
from storage import SnapshotPeriod, utcnow

UTC = ZoneInfo("UTC")
# Ten years: anything longer is a typo, not a report.
MAX_DAYS = 3660
EARLIEST = dt.date(2000, 1, 1)


def local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The start of ``day`` in ``tz``, as an aware UTC datetime."""
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)


def today_in(tz: dt.tzinfo, now: dt.datetime | None = None) -> dt.date:
    """Today's date in ``tz``."""
    return (now or utcnow()).astimezone(tz).date()


@dataclass(frozen=True, slots=True, kw_only=True)
class Period:
    """Local calendar days ``first_day`` … ``last_day`` (inclusive) in ``tz``."""

    first_day: dt.date
    last_day: dt.date
    tz: dt.tzinfo

    @property
    def start(self) -> dt.datetime:
        """UTC start (local midnight of the first day)."""
        return local_midnight(self.first_day, self.tz)

    @property
    def end(self) -> dt.datetime:
        """UTC end, exclusive (local midnight after the last day)."""
        return local_midnight(self.last_day + dt.timedelta(days=1), self.tz)

    @property
    def days(self) -> int:
        """How many calendar days the period has."""
        return (self.last_day - self.first_day).days + 1

    def each_day(self) -> Iterator[dt.date]:
        """Every day of the period, in order."""
        for offset in range(self.days):
            yield self.first_day + dt.timedelta(days=offset)

    def describe(self) -> str:
        """``2026-11-19 – 2026-11-25 (Europe/Lisbon)``."""
        return f"{self.first_day.isoformat()} – {self.last_day.isoformat()} ({self.tz})"


def resolve_period(
    *,
    days: int | None = 7,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    tz: dt.tzinfo = UTC,
    now: dt.datetime | None = None,
) -> Period:
    """The period a report covers.

    ``date_from``/``date_to`` (inclusive; ``date_to`` defaults to today) win over
    ``days``; otherwise the last ``days`` calendar days, today included.

    Raises:
        PeriodError: a reversed, empty or absurdly long range.
    """
    today = today_in(tz, now)
    if date_from is None and date_to is not None:
        raise PeriodError("give a start date with the end date (--from with --to)")
    if date_from is not None:
        last = date_to or today
        if date_from > last:
            raise PeriodError(
                f"the date range is reversed: {date_from.isoformat()} is after {last.isoformat()}"
            )
        first = date_from
    else:
        if days is None or days < 1:
            raise PeriodError(f"days must be at least 1, not {days}")
        if days > MAX_DAYS:
            raise PeriodError(f"days must be at most {MAX_DAYS}, not {days}")
        last = today
        first = today - dt.timedelta(days=days - 1)
    if first < EARLIEST:
        raise PeriodError(f"the range starts on {first.isoformat()}, before {EARLIEST.year}")
    if (last - first).days + 1 > MAX_DAYS:
        raise PeriodError(
            f"the range {first.isoformat()} – {last.isoformat()} is longer than {MAX_DAYS} days"
        )
    return Period(first_day=first, last_day=last, tz=tz)


def snapshot_period(kind: SnapshotPeriod, day: dt.date, tz: dt.tzinfo) -> Period:
    """The day, ISO week (Monday–Sunday) or calendar month containing ``day``."""
    if kind is SnapshotPeriod.DAILY:
        return Period(first_day=day, last_day=day, tz=tz)
    if kind is SnapshotPeriod.WEEKLY:
        monday = day - dt.timedelta(days=day.weekday())
        return Period(first_day=monday, last_day=monday + dt.timedelta(days=6), tz=tz)
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return Period(first_day=first, last_day=following - dt.timedelta(days=1), tz=tz)


def snapshot_periods(
    kind: SnapshotPeriod, first: dt.date, last: dt.date, tz: dt.tzinfo
) -> list[Period]:
    """Every day/week/month period touching ``first`` … ``last``, in order."""
    periods: list[Period] = []
    day = first
    while day <= last:
        period = snapshot_period(kind, day, tz)
        periods.append(period)
        day = period.last_day + dt.timedelta(days=1)
    return periods
