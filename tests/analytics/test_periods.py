"""Report periods in the business's timezone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from analytics.periods import resolve_period, snapshot_period, snapshot_periods
from storage import SnapshotPeriod

LONDON = ZoneInfo("Europe/London")


def test_days_are_the_last_calendar_days_including_today() -> None:
    now = dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.UTC)  # already the 26th in Harare
    period = resolve_period(days=7, tz=ZoneInfo("Africa/Harare"), now=now)
    assert (period.first_day, period.last_day) == (dt.date(2026, 11, 20), dt.date(2026, 11, 26))
    assert period.start == dt.datetime(2026, 11, 19, 22, tzinfo=dt.UTC)


def test_a_day_that_changes_clocks_has_its_real_length() -> None:
    day = dt.date(2026, 3, 29)  # British Summer Time starts: 23 hours
    period = snapshot_period(SnapshotPeriod.DAILY, day, LONDON)
    assert period.end - period.start == dt.timedelta(hours=23)


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    weeks = snapshot_periods(
        SnapshotPeriod.WEEKLY, dt.date(2026, 11, 25), dt.date(2026, 12, 2), dt.UTC
    )
    assert [(w.first_day.isoformat(), w.days) for w in weeks] == [
        ("2026-11-23", 7),
        ("2026-11-30", 7),
    ]
    february = snapshot_period(SnapshotPeriod.MONTHLY, dt.date(2028, 2, 10), dt.UTC)
    assert (february.first_day, february.last_day) == (dt.date(2028, 2, 1), dt.date(2028, 2, 29))
