"""A small fixed set of flow sessions whose report figures are worked out by hand.

The business is in Africa/Harare (UTC+2) and "now" is 2026-11-25 12:00 there, so
``days=7`` covers the local days 2026-11-19 … 2026-11-25. Each session's story is in
:data:`STORIES`; the expected figures are derived from them in the tests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from analytics import start_session, track_step
from storage import (
    Contact,
    Database,
    FlowSession,
    GoalEvent,
    SessionStatus,
    StepAction,
    get_or_create_contact,
)
from storage.flow_sessions import HANDOFF_REASON_PREFIX

HARARE = ZoneInfo("Africa/Harare")
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
FLOW = "booking_flow"
STEPS = ["choose_tour", "traveler_count", "lead_traveler_name", "review_booking", "done"]
RETRY_REASON = "Please send a number from 1 to 8."
GOAL = "order"

E, C, S, R, X = (
    StepAction.ENTERED,
    StepAction.COMPLETED,
    StepAction.SKIPPED,
    StepAction.RETRY,
    StepAction.ERROR,
)


def utc(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A time on 2026-11-``day`` in UTC."""
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Story:
    """One session: who, when, which version, its steps and how it ended.

    ``steps`` are ``(step, action, seconds spent)``; events are one second apart except
    that a ``completed`` event comes ``seconds spent`` after its ``entered``.
    """

    name: str
    contact: str
    started: dt.datetime
    version: str
    steps: tuple[tuple[str, StepAction, float | None], ...]
    status: SessionStatus
    duration: float | None = None
    reason: str | None = None
    # Seconds after the start at which the session reached :data:`GOAL`.
    goal_after: float | None = None


_full = (
    ("choose_tour", E, None),
    ("choose_tour", C, 10.0),
    ("traveler_count", E, None),
    ("traveler_count", C, 20.0),
    ("lead_traveler_name", E, None),
    ("lead_traveler_name", S, None),
    ("review_booking", E, None),
    ("review_booking", C, 30.0),
    ("done", E, None),
)

STORIES = (
    # Completed, reaching the goal during the session.
    Story("S1", "A", utc(24, 8), "v1", _full, SessionStatus.COMPLETED, 60, None, 50),
    # A rejected answer, then timed out at traveler_count; it reached the goal before
    # (not a conversion: only completed sessions convert).
    Story(
        "S2",
        "B",
        utc(23, 9),
        "v1",
        (
            ("choose_tour", E, None),
            ("choose_tour", C, 15.0),
            ("traveler_count", E, None),
            ("traveler_count", R, None),
        ),
        SessionStatus.ABANDONED,
        reason="timed out after 30 min without a reply",
        goal_after=20,
    ),
    # A rejected answer, then completed (recovered).
    Story(
        "S3",
        "C",
        utc(22, 10),
        "v2",
        (
            ("choose_tour", E, None),
            ("choose_tour", C, 5.0),
            ("traveler_count", E, None),
            ("traveler_count", R, None),
            ("traveler_count", C, 40.0),
            ("lead_traveler_name", E, None),
            ("lead_traveler_name", C, 25.0),
            ("review_booking", E, None),
            ("review_booking", C, 10.0),
            ("done", E, None),
        ),
        SessionStatus.COMPLETED,
        120,
    ),
    # An exception at review_booking.
    Story(
        "S4",
        "D",
        utc(21, 7),
        "v2",
        (
            ("choose_tour", E, None),
            ("choose_tour", C, 8.0),
            ("traveler_count", E, None),
            ("traveler_count", C, 12.0),
            ("lead_traveler_name", E, None),
            ("lead_traveler_name", S, None),
            ("review_booking", E, None),
            ("review_booking", X, None),
        ),
        SessionStatus.ERROR,
    ),
    # Contact A again (a repeat user), across local midnight: 23:50 → 00:10 Harare.
    Story(
        "S5",
        "A",
        utc(24, 21, 50),
        "v1",
        (
            ("choose_tour", E, None),
            ("choose_tour", C, 600.0),
            ("traveler_count", E, None),
            ("traveler_count", C, 300.0),
            ("lead_traveler_name", E, None),
            ("lead_traveler_name", S, None),
            ("review_booking", E, None),
            ("review_booking", C, 300.0),
            ("done", E, None),
        ),
        SessionStatus.COMPLETED,
        1200,
    ),
    # Handed to a person at the first step.
    Story(
        "S6",
        "E",
        utc(21, 12),
        "v1",
        (("choose_tour", E, None),),
        SessionStatus.ABANDONED,
        reason=HANDOFF_REASON_PREFIX + "the user asked for a person",
    ),
    # Still going today.
    Story(
        "S7",
        "F",
        utc(25, 9),
        "v1",
        (("choose_tour", E, None), ("choose_tour", C, 10.0), ("traveler_count", E, None)),
        SessionStatus.ACTIVE,
    ),
    # 22:30 UTC on the 18th is 00:30 on the 19th in Harare: inside the 7 days.
    Story(
        "S8",
        "G",
        utc(18, 22, 30),
        "v1",
        (
            ("choose_tour", E, None),
            ("choose_tour", C, 10.0),
            ("traveler_count", E, None),
            ("traveler_count", C, 10.0),
            ("lead_traveler_name", E, None),
            ("lead_traveler_name", S, None),
            ("review_booking", E, None),
            ("review_booking", C, 10.0),
            ("done", E, None),
        ),
        SessionStatus.COMPLETED,
        40,
    ),
    # 21:30 UTC on the 18th is 23:30 on the 18th in Harare: outside the 7 days.
    Story(
        "S9",
        "H",
        utc(18, 21, 30),
        "v1",
        (("choose_tour", E, None),),
        SessionStatus.ABANDONED,
        reason="cancelled by the user",
    ),
)


async def _contact(session: AsyncSession, contacts: dict[str, Contact], name: str) -> Contact:
    if name not in contacts:
        contacts[name] = await get_or_create_contact(
            session, wa_id=f"26377000{ord(name):04d}", profile_name=name
        )
    return contacts[name]


async def _story(session: AsyncSession, contacts: dict[str, Contact], story: Story) -> FlowSession:
    contact = await _contact(session, contacts, story.contact)
    row = await start_session(session, contact, FLOW, flow_version=story.version, at=story.started)
    at = story.started
    for step, action, spent in story.steps:
        at += dt.timedelta(seconds=spent if spent is not None else 1)
        await track_step(
            session,
            row,
            step,
            action,
            time_spent=spent,
            input_value="lots" if action is R else None,
            error_message=(
                RETRY_REASON if action is R else "KeyError: 'tour_id'" if action is X else None
            ),
            retry_count=1 if action is R else 0,
            at=at,
        )
    if story.status is SessionStatus.COMPLETED:
        assert story.duration is not None
        row.mark_completed(story.started + dt.timedelta(seconds=story.duration))
    elif story.status is SessionStatus.ABANDONED:
        row.mark_ended(SessionStatus.ABANDONED, reason=story.reason, at=at)
    if story.goal_after is not None:
        at = story.started + dt.timedelta(seconds=story.goal_after)
        session.add(GoalEvent(goal=GOAL, contact_id=contact.id, session_id=row.id, at=at))
    return row


async def load_fixed_events(db: Database) -> None:
    """Write :data:`STORIES`, plus a session of another flow, and a goal reached outside
    any session."""
    async with db.transaction() as session:
        contacts: dict[str, Contact] = {}
        for story in STORIES:
            await _story(session, contacts, story)
        support = await start_session(
            session, await _contact(session, contacts, "B"), "support_flow", at=utc(24, 10)
        )
        await track_step(session, support, "support_topic", E, at=utc(24, 10))
        support.mark_completed(utc(24, 10, 2))
        support.ended_reason = HANDOFF_REASON_PREFIX + "support topic chosen"
        session.add(GoalEvent(goal=GOAL, contact_id=support.contact_id, at=utc(24, 10, 1)))
