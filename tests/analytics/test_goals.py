"""Conversion is counted from the goal events an app records, never from its tables; step
events keep a stable error code; reports read the analytics context of the running app."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import analytics
from analytics import (
    Goal,
    generate_daily_snapshot,
    get_error_analysis,
    get_flow_completion_rate,
    get_kpis,
)
from analytics.config import current
from analytics.kpis import Kpi
from flows import App, FlowContext
from flows.runtime import Runtime
from flows.testing import ChatFactory
from storage import Database, FlowStepEvent, GoalEvent, StepAction
from tests.analytics.fixed_events import FLOW, HARARE, NOW, load_fixed_events
from tests.cafe import ORDER_GOAL


def _by_name(kpis: list[Kpi]) -> dict[str, Kpi]:
    return {k["name"]: k for k in kpis}


async def order(chat: object) -> None:
    for text in ("order", "Ada Lovelace"):
        await chat.send(text)  # type: ignore[attr-defined]
    await chat.send(tap="Large")  # type: ignore[attr-defined]
    await chat.send("2")  # type: ignore[attr-defined]
    await chat.send(tap="Confirm")  # type: ignore[attr-defined]


async def test_conversion_per_goal_is_counted_from_goal_events(db: Database) -> None:
    await load_fixed_events(db)
    goals: list[Goal | str] = [Goal("order", label="coffee order"), "loyalty"]
    report = await get_kpis(FLOW, days=7, goals=goals, db=db, tz=HARARE, now=NOW)
    kpis = _by_name(report["kpis"])
    assert "conversion" not in kpis
    # S1 completed after reaching the goal; S2 reached it but never completed; the goal
    # reached outside any session counts for no flow.
    assert kpis["conversion_order"]["label"] == "Completion to coffee order ratio"
    assert kpis["conversion_order"]["value"] == 25.0
    assert kpis["conversion_order"]["details"] == {
        "goal": "order",
        "completed": 4,
        "converted": 1,
    }
    assert kpis["conversion_loyalty"]["label"] == "Completion to loyalty ratio"
    assert kpis["conversion_loyalty"]["value"] == 0.0
    by_version = await get_kpis(
        FLOW, days=7, goals=goals, by_version=True, db=db, tz=HARARE, now=NOW
    )
    v1 = next(v for v in by_version["versions"] if v.get("flow_version") == "v1")
    # v1 completed S1, S5 and S8; S1 converted.
    assert _by_name(v1["kpis"])["conversion_order"]["value"] == 33.33


async def test_settled_snapshots_keep_conversions(db: Database) -> None:
    await load_fixed_events(db)
    for offset in range(7):
        day = dt.date(2026, 11, 19) + dt.timedelta(days=offset)
        await generate_daily_snapshot(FLOW, day, db=db, tz=HARARE, now=NOW + dt.timedelta(days=2))
    later = NOW + dt.timedelta(days=1)
    fresh = await get_kpis(FLOW, days=7, goals=[ORDER_GOAL], db=db, tz=HARARE, now=later)
    raw = await get_kpis(
        FLOW, days=7, goals=[ORDER_GOAL], db=db, tz=HARARE, now=later, use_snapshots=False
    )
    assert fresh["source"]["snapshot_days"] > 0
    assert _by_name(fresh["kpis"])["conversion_order"] == _by_name(raw["kpis"])["conversion_order"]
    plain = await get_kpis(FLOW, days=7, db=db, tz=HARARE, now=later)
    assert _by_name(plain["kpis"])["conversion"]["details"]["converted"] == 1


async def test_a_chat_that_orders_converts_its_session(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    chat = await nyala_chat(cafe)
    await order(chat)
    assert chat.texts == ["☕ Brewing now.", "Order placed, Ada Lovelace!"]
    [session] = await chat.sessions()
    async with nyala_db.read() as s:
        [goal] = (await s.scalars(select(GoalEvent))).all()
    assert (goal.goal, goal.session_id, goal.reference) == ("order", session.id, "2 large")
    report = await get_kpis("order_flow", days=1, goals=cafe.goals.values(), db=nyala_db)
    conversion = _by_name(report["kpis"])["conversion_order"]
    assert conversion["label"] == "Completion to coffee order ratio"
    assert conversion["value"] == 100.0


async def test_a_refused_or_failed_action_takes_its_goal_back(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    chat = await nyala_chat(cafe)
    cafe.state["fail"] = "sold_out"  # type: ignore[attr-defined]
    await order(chat)
    assert chat.texts[0] == "Sorry, we just sold out of that. Please choose again."
    cafe.state["fail"] = "crash"  # type: ignore[attr-defined]
    await chat.send(tap="Confirm")
    assert "something went wrong" in chat.last_text
    async with nyala_db.read() as s:
        assert (await s.scalars(select(GoalEvent))).all() == []
    report = await get_kpis("order_flow", days=1, goals=[ORDER_GOAL], db=nyala_db)
    assert _by_name(report["kpis"])["conversion_order"]["details"]["converted"] == 0


async def test_an_undeclared_goal_is_an_error(cafe: App) -> None:
    # Checked before anything is written: no session or contact is needed to see it.
    ctx = FlowContext(
        session=None,  # type: ignore[arg-type]
        contact=None,  # type: ignore[arg-type]
        conversation=None,  # type: ignore[arg-type]
        app=cafe,
        now=NOW,
    )
    with pytest.raises(ValueError, match=r"goal 'booking' is not declared .*\(goals: order\)"):
        await ctx.reach_goal("booking")


async def test_rejections_keep_their_code_and_errors_are_grouped_by_it(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    chat = await nyala_chat(cafe)
    for text in ("order", "Ada Lovelace"):
        await chat.send(text)
    await chat.send(tap="Large")
    await chat.send("9")  # more than the 5 in stock
    await chat.send("12")
    assert chat.texts[0].startswith("Sorry, 12 is more than the 5 available.")
    await chat.send("2")
    cafe.state["fail"] = "sold_out"  # type: ignore[attr-defined]
    await chat.send(tap="Confirm")
    retries = [e for e in await chat.events() if e.action is StepAction.RETRY]
    assert [(e.step_name, e.error_code) for e in retries] == [
        ("ask_count", "integer.too_large"),
        ("ask_count", "integer.too_large"),
        ("confirm", "stock.sold_out"),
    ]
    rows = await get_error_analysis("order_flow", days=1, db=nyala_db)
    # Two different texts (they quote the number typed), one kind of error.
    assert [(r["step_name"], r["error_type"], r["count"]) for r in rows] == [
        ("ask_count", "integer.too_large", 2),
        ("confirm", "stock.sold_out", 1),
    ]
    assert len(rows[0]["examples"]) == 2


async def test_an_exception_is_recorded_with_its_type_as_code(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    chat = await nyala_chat(cafe)
    cafe.state["fail"] = "crash"  # type: ignore[attr-defined]
    await order(chat)
    async with nyala_db.read() as s:
        [error] = (
            await s.scalars(select(FlowStepEvent).where(FlowStepEvent.action == StepAction.ERROR))
        ).all()
    assert (error.step_name, error.error_code) == ("confirm", "RuntimeError")


async def test_reports_read_the_context_of_the_block_or_the_running_app(
    db: Database, cafe: App
) -> None:
    await load_fixed_events(db)
    assert current().db is None
    lisbon = ZoneInfo("Europe/Lisbon")

    async def in_context(tz: dt.tzinfo) -> tuple[dt.tzinfo, int]:
        with analytics.using(db, tz=tz):
            await asyncio.sleep(0)  # the other task runs here with its own context
            report = await get_flow_completion_rate(FLOW, days=7, now=NOW)
            return current().tz, report["total_sessions"]

    # Concurrent tasks each see their own context: no process-wide setting.
    harare, utc = await asyncio.gather(in_context(HARARE), in_context(dt.UTC))
    # S8 started on the 19th in Harare but on the 18th in UTC.
    assert harare == (HARARE, 8)
    assert utc == (dt.UTC, 7)
    assert current().db is None

    app = App("Lisbon café", timezone="Europe/Lisbon")
    async with Runtime.start(app, db):
        assert current() == analytics.AnalyticsContext(db=db, tz=lisbon)
        with analytics.using(tz=HARARE):  # narrows one field, keeps the database
            assert current().db is db
            assert (await get_flow_completion_rate(FLOW, days=7, now=NOW))["total_sessions"] == 8
        assert current().tz == lisbon
    assert current() == analytics.AnalyticsContext()
