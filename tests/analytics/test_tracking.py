"""Manual tracking API and the idle-session sweeper, on both backends."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from analytics import abandon_idle_sessions, start_session, track_step
from analytics.models import FlowSession, FlowStepEvent, SessionStatus, StepAction
from flows import App
from flows.testing import ChatFactory, Clock
from storage import Database, get_or_create_contact


async def test_manual_tracking_like_the_seed(db: Database) -> None:
    t0 = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
    async with db.transaction() as s:
        contact = await get_or_create_contact(s, wa_id="263770000001")
        session = await start_session(s, contact, "booking_flow", at=t0)
        await track_step(s, session, "traveler_count", "entered", at=t0)
        await track_step(
            s,
            session,
            "traveler_count",
            StepAction.COMPLETED,
            time_spent=15.5,
            input_value="4",
            at=t0 + dt.timedelta(seconds=15.5),
        )
        session.mark_completed(t0 + dt.timedelta(seconds=20))
    async with db.read() as s:
        loaded = await s.scalar(select(FlowSession))
        events = (await s.scalars(select(FlowStepEvent).order_by(FlowStepEvent.id))).all()
    assert loaded is not None
    assert loaded.status is SessionStatus.COMPLETED
    assert loaded.duration_seconds == 20.0
    assert [(e.step_name, e.action, e.time_spent, e.input_value) for e in events] == [
        ("traveler_count", StepAction.ENTERED, None, None),
        ("traveler_count", StepAction.COMPLETED, 15.5, "4"),
    ]


async def test_an_error_event_puts_the_session_in_error(db: Database) -> None:
    async with db.transaction() as s:
        contact = await get_or_create_contact(s, wa_id="263770000002")
        session = await start_session(s, contact, "custom")
        await track_step(s, session, "charge_card", "error", error_message="card declined")
    async with db.read() as s:
        loaded = await s.scalar(select(FlowSession))
    assert loaded is not None and loaded.status is SessionStatus.ERROR
    assert loaded.error_message == "card declined"
    assert loaded.current_step == "charge_card"


async def test_the_sweeper_abandons_idle_sessions_and_keeps_the_drop_off_step(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    clock = Clock()
    chat = await nyala_chat(cafe, clock=clock)
    await chat.send("order")
    await chat.send("Ada")
    other = await nyala_chat(cafe, phone="263770000002", clock=clock)
    await other.send("rate")
    timeouts = {name: spec.timeout for name, spec in cafe.flows.items()}
    assert await abandon_idle_sessions(nyala_db, timeouts, now=clock.now) == 0
    clock.advance(minutes=31)
    assert await abandon_idle_sessions(nyala_db, timeouts, now=clock.now) == 2
    assert await abandon_idle_sessions(nyala_db, timeouts, now=clock.now) == 0
    [session] = await chat.sessions()
    assert session.status is SessionStatus.ABANDONED
    assert session.current_step == "ask_size"
    assert session.ended_reason == "timed out after 30 min without a reply"
    assert (await chat.conversation()).flow_name is None
    await chat.send("hi")  # the user comes back to a fresh start, not a dead flow
    assert chat.options == ["Order coffee"]
