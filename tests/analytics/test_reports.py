"""Reports on the fixed event set, checked against figures worked out by hand.

See :mod:`tests.analytics.fixed_events` for each session's story; the 7 days are the
local days 2026-11-19 … 2026-11-25 in Harare: S1–S8 (S9 started 23:30 local on the 18th).
"""

from __future__ import annotations

import datetime as dt

import pytest

from analytics import AnalyticsError, PeriodError, using
from analytics.reports import (
    generate_daily_snapshot,
    get_error_analysis,
    get_flow_completion_rate,
    get_step_funnel,
)
from storage import Database
from tests.analytics.fixed_events import FLOW, HARARE, NOW, RETRY_REASON, STEPS, load_fixed_events


@pytest.fixture
async def fixed(db: Database) -> Database:
    await load_fixed_events(db)
    return db


async def test_completion_rate_counts_sessions_per_status(fixed: Database) -> None:
    metrics = await get_flow_completion_rate(FLOW, days=7, db=fixed, tz=HARARE, now=NOW)
    assert metrics["flow"] == FLOW
    assert metrics["period"] == {
        "date_from": "2026-11-19",
        "date_to": "2026-11-25",
        "days": 7,
        "timezone": "Africa/Harare",
    }
    # S1, S3, S5, S8 completed; S2, S6 abandoned; S4 error; S7 still active.
    assert metrics["total_sessions"] == 8
    assert metrics["statuses"] == {
        "active": 1,
        "completed": 4,
        "cancelled": 0,
        "nothing_to_do": 0,
        "abandoned": 2,
        "error": 1,
    }
    assert metrics["completion_rate"] == 50.0
    assert metrics["abandonment_rate"] == 25.0
    assert metrics["error_rate"] == 12.5
    # (60 + 120 + 1200 + 40) / 4
    assert metrics["avg_duration_seconds"] == 355.0
    assert metrics["notes"] == []


async def test_the_period_is_local_days_in_the_business_timezone(fixed: Database) -> None:
    # In UTC the 7 days are 11-19 … 11-25 UTC: S8 (22:30 UTC on the 18th) falls out.
    utc = await get_flow_completion_rate(FLOW, days=7, db=fixed, tz=dt.UTC, now=NOW)
    assert utc["total_sessions"] == 7
    # S5 started 23:50 on the 24th in Harare and ended after midnight: it is the 24th's.
    day = dt.date(2026, 11, 24)
    metrics = await get_flow_completion_rate(
        FLOW, date_from=day, date_to=day, db=fixed, tz=HARARE, now=NOW
    )
    assert (metrics["total_sessions"], metrics["completed_sessions"]) == (2, 2)
    assert metrics["avg_duration_seconds"] == 630.0
    eight = await get_flow_completion_rate(FLOW, days=8, db=fixed, tz=HARARE, now=NOW)
    assert eight["total_sessions"] == 9


async def test_completion_rate_per_version(fixed: Database) -> None:
    metrics = await get_flow_completion_rate(
        FLOW, days=7, by_version=True, db=fixed, tz=HARARE, now=NOW
    )
    versions = {v["flow_version"]: v for v in metrics["versions"]}
    assert list(versions) == ["v1", "v2"]  # v1 seen first (S8 on the 19th)
    assert versions["v1"]["statuses"] == {
        "active": 1,
        "completed": 3,
        "cancelled": 0,
        "nothing_to_do": 0,
        "abandoned": 2,
        "error": 0,
    }
    assert versions["v2"]["statuses"] == {
        "active": 0,
        "completed": 1,
        "cancelled": 0,
        "nothing_to_do": 0,
        "abandoned": 0,
        "error": 1,
    }
    assert versions["v2"]["completion_rate"] == 50.0


async def test_step_and_action_filters_narrow_the_sessions(fixed: Database) -> None:
    retried = await get_flow_completion_rate(
        FLOW, step="traveler_count", action="retry", db=fixed, tz=HARARE, now=NOW
    )
    # S2 (abandoned) and S3 (completed) hit a retry at traveler_count.
    assert retried["statuses"] == {
        "active": 0,
        "completed": 1,
        "cancelled": 0,
        "nothing_to_do": 0,
        "abandoned": 1,
        "error": 0,
    }
    skipped = await get_flow_completion_rate(FLOW, action="skipped", db=fixed, tz=HARARE, now=NOW)
    assert skipped["total_sessions"] == 4  # S1, S4, S5, S8 skipped lead_traveler_name


async def test_funnel_in_flow_order_with_drop_off(fixed: Database) -> None:
    funnel = await get_step_funnel(FLOW, days=7, steps=STEPS, db=fixed, tz=HARARE, now=NOW)
    assert [(s["step_name"], s["sessions"], s["percentage"], s["drop_off"]) for s in funnel] == [
        ("choose_tour", 8, 100.0, 1),
        # drop_off: sessions that ended at the step (S7, active there, has not dropped).
        ("traveler_count", 7, 87.5, 1),
        ("lead_traveler_name", 5, 62.5, 0),  # skipped steps count as reached
        ("review_booking", 5, 62.5, 1),
        ("done", 4, 50.0, 0),
    ]
    by_step = {s["step_name"]: s for s in funnel}
    assert by_step["lead_traveler_name"]["skipped"] == 4
    assert by_step["traveler_count"]["retries"] == 2
    assert by_step["review_booking"]["errors"] == 1
    # (10 + 15 + 5 + 8 + 600 + 10 + 10) / 7 and (20 + 40 + 12 + 300 + 10) / 5
    assert by_step["choose_tour"]["avg_time_spent"] == 94.0
    assert by_step["traveler_count"]["avg_time_spent"] == 76.4
    assert by_step["choose_tour"]["abandoned_here"] == 1
    assert by_step["traveler_count"]["abandoned_here"] == 1
    # A step nobody reached is listed, with nobody dropping off there.
    with_branch = await get_step_funnel(
        FLOW, steps=[STEPS[0], "choose_departure", *STEPS[1:]], db=fixed, tz=HARARE, now=NOW
    )
    assert [(s["step_name"], s["sessions"], s["drop_off"]) for s in with_branch][:3] == [
        ("choose_tour", 8, 1),
        ("choose_departure", 0, 0),
        ("traveler_count", 7, 1),
    ]
    # Without the flow's order the data gives the same one.
    derived = await get_step_funnel(FLOW, days=7, db=fixed, tz=HARARE, now=NOW)
    assert [s["step_name"] for s in derived] == STEPS
    # Seed usage: each step's name and percentage.
    lines = [f"{s['step_name']}: {s['percentage']}%" for s in derived]
    assert lines[:2] == ["choose_tour: 100.0%", "traveler_count: 87.5%"]


async def test_funnel_per_version(fixed: Database) -> None:
    funnel = await get_step_funnel(
        FLOW, days=7, steps=STEPS, by_version=True, db=fixed, tz=HARARE, now=NOW
    )
    v2 = [(s["step_name"], s["sessions"]) for s in funnel if s["flow_version"] == "v2"]
    assert v2 == [
        ("choose_tour", 2),
        ("traveler_count", 2),
        ("lead_traveler_name", 2),
        ("review_booking", 2),
        ("done", 1),
    ]


async def test_error_analysis_by_step_and_type(fixed: Database) -> None:
    errors = await get_error_analysis(FLOW, days=7, db=fixed, tz=HARARE, now=NOW)
    assert [(e["step_name"], e["action"], e["error_type"], e["count"]) for e in errors] == [
        ("traveler_count", "retry", RETRY_REASON, 2),
        ("review_booking", "error", "KeyError", 1),
    ]
    assert errors[0]["sessions"] == 2
    assert errors[0]["example_input"] == "lots"
    assert errors[1]["examples"] == ["KeyError: 'tour_id'"]
    assert errors[1]["last_seen"] == "2026-11-21T09:00:26+02:00"
    only_errors = await get_error_analysis(
        FLOW, days=7, action="error", db=fixed, tz=HARARE, now=NOW
    )
    assert [e["step_name"] for e in only_errors] == ["review_booking"]
    at_step = await get_error_analysis(
        FLOW, days=7, step="traveler_count", db=fixed, tz=HARARE, now=NOW
    )
    assert [e["action"] for e in at_step] == ["retry"]


async def test_unknown_flow_is_an_empty_result_with_a_note(fixed: Database) -> None:
    metrics = await get_flow_completion_rate("bookng_flow", db=fixed, tz=HARARE, now=NOW)
    assert metrics["total_sessions"] == 0
    assert metrics["completion_rate"] == 0.0
    assert metrics["avg_duration_seconds"] is None
    assert metrics["notes"] == [
        "no sessions of flow 'bookng_flow' have ever been recorded; "
        "flows with sessions: booking_flow, support_flow"
    ]
    funnel = await get_step_funnel("bookng_flow", db=fixed, tz=HARARE, now=NOW)
    assert funnel == []
    assert funnel.notes == metrics["notes"]
    errors = await get_error_analysis("bookng_flow", db=fixed, tz=HARARE, now=NOW)
    assert errors == [] and "bookng_flow" in errors.notes[0]


async def test_a_quiet_period_gives_zeros(fixed: Database) -> None:
    day = dt.date(2026, 10, 1)
    metrics = await get_flow_completion_rate(
        FLOW, date_from=day, date_to=day, db=fixed, tz=HARARE, now=NOW
    )
    assert metrics["total_sessions"] == 0
    assert metrics["completion_rate"] == metrics["error_rate"] == 0.0
    assert metrics["notes"] == [
        "no sessions of 'booking_flow' started in 2026-10-01 – 2026-10-01 (Africa/Harare)"
    ]
    assert await get_step_funnel(FLOW, date_from=day, date_to=day, db=fixed, now=NOW) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"date_from": dt.date(2026, 11, 20), "date_to": dt.date(2026, 11, 10)},
            "the date range is reversed: 2026-11-20 is after 2026-11-10",
        ),
        ({"days": 0}, "days must be at least 1, not 0"),
        ({"days": 100_000}, "days must be at most 3660, not 100000"),
        ({"date_from": dt.date(1900, 1, 1)}, "the range starts on 1900-01-01, before 2000"),
    ],
)
async def test_bad_ranges_are_one_line_errors(
    fixed: Database, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(PeriodError) as caught:
        await get_flow_completion_rate(FLOW, db=fixed, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


async def test_an_unknown_action_is_a_clear_error(fixed: Database) -> None:
    with pytest.raises(AnalyticsError, match="unknown action 'retried': use one of entered"):
        await get_step_funnel(FLOW, action="retried", db=fixed, now=NOW)


async def test_reports_read_settled_snapshots_and_give_the_same_figures(
    fixed: Database,
) -> None:
    before = await get_step_funnel(FLOW, days=7, steps=STEPS, db=fixed, tz=HARARE, now=NOW)
    completion = await get_flow_completion_rate(FLOW, days=7, db=fixed, tz=HARARE, now=NOW)
    after_the_day = NOW + dt.timedelta(days=1)
    for offset in range(7):
        day = dt.date(2026, 11, 19) + dt.timedelta(days=offset)
        await generate_daily_snapshot(FLOW, day, db=fixed, tz=HARARE, now=after_the_day)
    from_snapshots = await get_flow_completion_rate(FLOW, days=7, db=fixed, tz=HARARE, now=NOW)
    # Today's snapshot still has S7 open, so today comes from the events.
    assert from_snapshots["source"] == {"snapshot_days": 6, "event_days": 1}
    for key in ("statuses", "completion_rate", "error_rate", "avg_duration_seconds"):
        assert from_snapshots[key] == completion[key]
    funnel = await get_step_funnel(FLOW, days=7, steps=STEPS, db=fixed, tz=HARARE, now=NOW)
    assert funnel == before
    raw = await get_step_funnel(
        FLOW, days=7, steps=STEPS, db=fixed, tz=HARARE, now=NOW, use_snapshots=False
    )
    assert raw == before


async def test_the_seed_calls_work_with_the_context_database(fixed: Database) -> None:
    with using(fixed, tz=HARARE):
        metrics = await get_flow_completion_rate("booking_flow", days=7, now=NOW)
        funnel = await get_step_funnel("booking_flow", days=7, now=NOW)
        errors = await get_error_analysis("booking_flow", days=7, now=NOW)
        snapshot = await generate_daily_snapshot("booking_flow", dt.date(2026, 11, 24))
    assert f"Completion rate: {metrics['completion_rate']}%" == "Completion rate: 50.0%"
    assert [f"{s['step_name']}: {s['percentage']}%" for s in funnel][-1] == "done: 50.0%"
    assert [f"{e['step_name']}: {e['count']} errors" for e in errors] == [
        "traveler_count: 2 errors",
        "review_booking: 1 errors",
    ]
    assert snapshot is not None and snapshot.total_sessions == 2
