"""KPIs on the fixed event set, against figures worked out by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

from analytics import get_kpis
from analytics.kpis import Kpi
from storage import Database
from tests.analytics.fixed_events import FLOW, HARARE, NOW, load_fixed_events


def _by_name(kpis: list[Kpi]) -> dict[str, Kpi]:
    return {k["name"]: k for k in kpis}


def _judged(kpi: Kpi) -> tuple[Any, str | None, bool | None]:
    return kpi["value"], kpi["target"], kpi["passed"]


async def test_every_kpi_with_its_target(db: Database) -> None:
    await load_fixed_events(db)
    report = await get_kpis(FLOW, days=7, db=db, tz=HARARE, now=NOW)
    kpis = _by_name(report["kpis"])
    assert list(kpis) == [
        "completion_rate",
        "top_abandonment_points",
        "avg_flow_duration",
        "avg_time_per_step",
        "error_rate",
        "retry_recovery_rate",
        "conversion",
        "repeat_user_rate",
        "support_correlation",
    ]
    assert _judged(kpis["completion_rate"]) == (50.0, "> 80 %", False)
    assert _judged(kpis["avg_flow_duration"]) == (355.0, "< 300 s", False)
    # (10+15+5+8+600+10+10 + 20+40+12+300+10 + 25 + 30+10+300+10) / 17 completed steps
    assert _judged(kpis["avg_time_per_step"]) == (83.24, "< 300 s", True)
    assert kpis["avg_time_per_step"]["details"]["slowest_step"] == "choose_tour"
    assert _judged(kpis["error_rate"]) == (12.5, "< 10 %", False)
    assert kpis["top_abandonment_points"]["value"] == [
        {"step_name": "choose_tour", "sessions": 1, "percentage": 50.0},
        {"step_name": "traveler_count", "sessions": 1, "percentage": 50.0},
    ]
    # S2 and S3 hit a retry; S3 still completed.
    assert _judged(kpis["retry_recovery_rate"]) == (50.0, None, None)
    # Of S1, S3, S5, S8 only S1 reached a goal (S2 did too, but never completed).
    assert _judged(kpis["conversion"]) == (25.0, None, None)
    assert kpis["conversion"]["label"] == "Completion to goal ratio"
    assert kpis["conversion"]["details"] == {"completed": 4, "converted": 1}
    # S5 is contact A's second session of the flow.
    assert kpis["repeat_user_rate"]["value"] == 12.5
    # S6 was handed to a person at choose_tour (the support session is another flow).
    assert kpis["support_correlation"]["value"] == 12.5
    assert kpis["support_correlation"]["details"]["by_step"] == {"choose_tour": 1}
    assert (report["passed"], report["failed"]) == (1, 3)


async def test_kpis_per_version(db: Database) -> None:
    await load_fixed_events(db)
    report = await get_kpis(FLOW, days=7, by_version=True, db=db, tz=HARARE, now=NOW)
    v2 = _by_name(next(v for v in report["versions"] if v["flow_version"] == "v2")["kpis"])
    assert _judged(v2["completion_rate"]) == (50.0, "> 80 %", False)
    assert _judged(v2["avg_flow_duration"]) == (120.0, "< 300 s", True)
    assert v2["retry_recovery_rate"]["value"] == 100.0


async def test_a_period_without_sessions_judges_nothing(db: Database) -> None:
    await load_fixed_events(db)
    day = dt.date(2026, 1, 1)
    report = await get_kpis(FLOW, date_from=day, date_to=day, db=db, tz=HARARE, now=NOW)
    assert report["total_sessions"] == 0
    assert all(k["passed"] is None for k in report["kpis"])
    assert _by_name(report["kpis"])["completion_rate"]["value"] == 0.0
    assert (report["passed"], report["failed"]) == (0, 0)
    assert report["notes"] == [
        "no sessions of 'booking_flow' started in 2026-01-01 – 2026-01-01 (Africa/Harare)"
    ]
