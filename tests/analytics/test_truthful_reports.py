"""Issue 16, points 1–4 and 6: each report figure equals an independent SQL query over
the same rows, on data that crosses midnight in the business's time zone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text

from analytics import (
    generate_daily_snapshot,
    get_error_analysis,
    get_flow_completion_rate,
    get_step_funnel,
    using,
)
from analytics.reports import shortened
from storage import Database
from tests.analytics.truth_data import CODE, DAY, FLOW, HARARE, STEPS, write_stories

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
async def stories(db: Database) -> dict[str, int]:
    return await write_stories(db)


def local_day(db: Database, column: str) -> str:
    """SQL: ``column`` (UTC) falls on :data:`DAY` in Harare — written without the project."""
    if db.is_postgresql:
        return f"({column} AT TIME ZONE 'Africa/Harare')::date = DATE '{DAY.isoformat()}'"
    return f"date({column}, '+2 hours') = '{DAY.isoformat()}'"


def in_day(db: Database) -> str:
    """SQL: the day's customer sessions of the flow (alias ``s``)."""
    return (
        f"s.flow_name = '{FLOW}' AND {local_day(db, 's.started_at')} AND s.contact_id IN "
        "(SELECT id FROM contacts WHERE NOT sandbox)"
    )


async def sql(db: Database, query: str) -> list[Any]:
    async with db.read() as session:
        return list((await session.execute(text(query))).all())


async def sql_count(db: Database, query: str) -> int:
    rows = await sql(db, query)
    return int(rows[0][0])


async def by_status(db: Database) -> dict[str, int]:
    """Sessions per status, completed ones per outcome (``goal`` when none)."""
    rows = await sql(
        db,
        "SELECT CASE WHEN s.status = 'completed' THEN COALESCE(s.outcome, 'goal') "
        f"ELSE s.status END, count(*) FROM flow_sessions s WHERE {in_day(db)} GROUP BY 1",
    )
    return {str(name): int(n) for name, n in rows}


REPORT: dict[str, Any] = {"date_from": DAY, "date_to": DAY, "tz": HARARE, "now": NOW}


async def test_completion_counts_the_business_day_and_names_outcomes(
    db: Database, stories: dict[str, int]
) -> None:
    report = await get_flow_completion_rate(FLOW, db=db, **REPORT)
    expected = await by_status(db)
    total = sum(expected.values())
    assert report["total_sessions"] == total == 8  # 00:30 and 23:30 local in, the others out
    assert report["completed_sessions"] == expected["goal"] == 2
    assert report["cancelled_sessions"] == expected["cancelled"] == 1
    assert report["nothing_to_do_sessions"] == expected["nothing_to_do"] == 1
    assert report["abandoned_sessions"] == expected["abandoned"] == 2
    assert report["error_sessions"] == expected["error"] == 1
    assert report["active_sessions"] == expected["active"] == 1
    # Completion means an order: the cancellation does not inflate it.
    assert report["completion_rate"] == round(100 * 2 / 8, 2)
    assert report["cancellation_rate"] == round(100 * 1 / 8, 2)
    assert report["statuses"] == {
        "active": 1,
        "completed": 2,
        "cancelled": 1,
        "nothing_to_do": 1,
        "abandoned": 2,
        "error": 1,
    }


async def test_a_settled_snapshot_keeps_the_outcomes(
    db: Database, stories: dict[str, int]
) -> None:
    from_events = await get_flow_completion_rate(FLOW, db=db, use_snapshots=False, **REPORT)
    # Snapshots read only settled days: none may be active, so end the open one first.
    async with db.transaction() as session:
        await session.execute(
            text("UPDATE flow_sessions SET status = 'abandoned' WHERE status = 'active'")
        )
    await generate_daily_snapshot(FLOW, DAY, db=db, tz=HARARE, now=NOW)
    from_snapshot = await get_flow_completion_rate(FLOW, db=db, **REPORT)
    assert from_snapshot["source"]["snapshot_days"] == 1
    for key in ("completed_sessions", "cancelled_sessions", "nothing_to_do_sessions"):
        assert from_snapshot[key] == from_events[key], key
    assert from_snapshot["abandoned_sessions"] == from_events["abandoned_sessions"] + 1


async def test_funnel_in_flow_order_with_skips_never_over_100_or_negative(
    db: Database, stories: dict[str, int]
) -> None:
    reached = {
        str(step): int(n)
        for step, n in await sql(
            db,
            "SELECT e.step_name, count(DISTINCT e.session_id) FROM flow_step_events e "
            "JOIN flow_sessions s ON s.id = e.session_id "
            f"WHERE {in_day(db)} AND e.action IN ('entered', 'skipped') GROUP BY e.step_name",
        )
    }
    stopped = {
        str(step): int(n)
        for step, n in await sql(
            db,
            f"SELECT s.current_step, count(*) FROM flow_sessions s WHERE {in_day(db)} "
            "AND s.status IN ('abandoned', 'error') GROUP BY s.current_step",
        )
    }
    total = sum((await by_status(db)).values())
    # The flow's order comes from the context a running app sets (its flow files)…
    with using(db, flow_steps={FLOW: STEPS}):
        funnel = await get_step_funnel(FLOW, **REPORT)
    assert [row["step_name"] for row in funnel] == list(STEPS)
    for row in funnel:
        name = row["step_name"]
        assert row["sessions"] == reached.get(name, 0), name
        assert row["drop_off"] == stopped.get(name, 0), name
        assert 0 <= row["percentage"] <= 100
        assert row["percentage"] == round(100 * reached.get(name, 0) / total, 2)
        assert row["drop_off"] >= 0
    by_step = {row["step_name"]: row for row in funnel}
    # Two sessions only skipped ask_name: they reached it.
    assert by_step["ask_name"]["sessions"] == 8
    assert by_step["ask_name"]["skipped"] == 2
    # …and without it, the order steps were first seen (still the flow's order here).
    derived = await get_step_funnel(FLOW, db=db, **REPORT)
    assert [row["step_name"] for row in derived] == [s for s in STEPS if reached.get(s)]


async def test_errors_grouped_by_code_with_short_examples_of_what_was_typed(
    db: Database, stories: dict[str, int]
) -> None:
    expected = {
        (str(step), str(code)): int(n)
        for step, code, n in await sql(
            db,
            "SELECT e.step_name, e.error_code, count(*) FROM flow_step_events e "
            "JOIN flow_sessions s ON s.id = e.session_id "
            f"WHERE {in_day(db)} AND e.action IN ('retry', 'error') "
            "GROUP BY e.step_name, e.error_code",
        )
    }
    rows = await get_error_analysis(FLOW, db=db, **REPORT)
    assert {(r["step_name"], r["error_type"]): r["count"] for r in rows} == expected
    bad_names = next(r for r in rows if r["error_type"] == CODE)
    assert bad_names["count"] == 3  # "a", "b…" and "x": one row of 3, not three of 1
    assert len(bad_names["inputs"]) == 3
    assert all(len(i) <= 40 for i in bad_names["inputs"])
    assert shortened("b" * 300) in bad_names["inputs"]
    assert {"a", "x"} <= set(bad_names["inputs"])


async def test_days_without_a_timezone_of_their_own_follow_the_context(
    db: Database, stories: dict[str, int]
) -> None:
    with using(db, tz=HARARE):
        report = await get_flow_completion_rate(FLOW, date_from=DAY, date_to=DAY, now=NOW)
    assert report["period"]["timezone"] == "Africa/Harare"
    assert report["total_sessions"] == sum((await by_status(db)).values())
