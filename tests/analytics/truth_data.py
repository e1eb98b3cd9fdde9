"""Sessions of the café's ``order_flow`` around one business day, 2026-11-20 in
Africa/Harare (UTC+2, no daylight saving), written straight into the tables.

They cross midnight in the business's zone (a session at 00:30 local is 22:30 UTC the
day before; one at 00:30 local the next day is 22:30 UTC on the 20th), include a step
only skipped, a cancellation at the review, a session with nothing to do, repeated bad
inputs with one error code, an error, an active session and a sandbox contact's
session. The tests compare every report figure with :data:`LOCAL_DAY_SQL` queries that
know nothing of the project's code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from storage import (
    Contact,
    Database,
    FlowSession,
    FlowStepEvent,
    SessionOutcome,
    SessionStatus,
    StepAction,
)

HARARE = ZoneInfo("Africa/Harare")
DAY = dt.date(2026, 11, 20)
FLOW = "order_flow"
STEPS = ("ask_name", "ask_size", "ask_count", "confirm", "done", "cancelled")
CODE = "person_name.too_short"
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
    """One session: when it started, its events ``(step, action, input)`` and its end."""

    contact: str
    started: dt.datetime
    events: tuple[tuple[str, StepAction, str | None], ...]
    status: SessionStatus
    current_step: str
    outcome: SessionOutcome | None = None
    sandbox: bool = False
    codes: tuple[str | None, ...] = field(default=())


_to_confirm: tuple[tuple[str, StepAction, str | None], ...] = (
    ("ask_name", E, None),
    ("ask_name", C, "Rudo"),
    ("ask_size", E, None),
    ("ask_size", C, "small"),
    ("ask_count", E, None),
    ("ask_count", C, "2"),
    ("confirm", E, None),
)

STORIES: dict[str, Story] = {
    # 00:30 local on the 20th = 22:30 UTC on the 19th: in the day.
    "after_midnight": Story(
        "263770000001",
        utc(19, 22, 30),
        (("ask_name", E, None), ("ask_name", C, "Ana"), ("ask_size", E, None)),
        SessionStatus.ABANDONED,
        "ask_size",
    ),
    # 23:00 local on the 19th: not in the day.
    "day_before": Story(
        "263770000002",
        utc(19, 21),
        (("ask_name", E, None), ("ask_name", C, "Ben"), ("ask_size", E, None)),
        SessionStatus.ABANDONED,
        "ask_size",
    ),
    # The name was known: ask_name has only a skipped event, and still counts as reached.
    "skipped_name": Story(
        "263770000003",
        utc(20, 7),
        (("ask_name", S, None), ("ask_size", E, None), ("ask_size", C, "large")),
        SessionStatus.ABANDONED,
        "ask_count",
    ),
    "ordered": Story(
        "263770000004",
        utc(20, 8),
        (*_to_confirm, ("confirm", C, "yes"), ("done", E, None)),
        SessionStatus.COMPLETED,
        "done",
        SessionOutcome.GOAL,
    ),
    # Cancel at the review: completed, but not a completed order.
    "cancelled": Story(
        "263770000005",
        utc(20, 9),
        (*_to_confirm, ("confirm", C, "no"), ("cancelled", E, None)),
        SessionStatus.COMPLETED,
        "cancelled",
        SessionOutcome.CANCELLED,
    ),
    # Three bad names, one error code; then an exception.
    "bad_names": Story(
        "263770000006",
        utc(20, 10),
        (
            ("ask_name", E, None),
            ("ask_name", R, "a"),
            ("ask_name", R, "b" * 300),
            ("ask_name", R, "x"),
            ("ask_name", X, "Rudo"),
        ),
        SessionStatus.ERROR,
        "ask_name",
        codes=(None, CODE, CODE, CODE, "RuntimeError"),
    ),
    "nothing_to_do": Story(
        "263770000007",
        utc(20, 11),
        (("ask_name", S, None),),
        SessionStatus.COMPLETED,
        "ask_name",
        SessionOutcome.NOTHING_TO_DO,
    ),
    "still_here": Story(
        "263770000008",
        utc(20, 12),
        (("ask_name", E, None), ("ask_name", C, "Tino"), ("ask_size", E, None)),
        SessionStatus.ACTIVE,
        "ask_size",
    ),
    # The chat simulator's contact: never in a report.
    "sandbox": Story(
        "0001",
        utc(20, 13),
        (*_to_confirm, ("confirm", C, "yes"), ("done", E, None)),
        SessionStatus.COMPLETED,
        "done",
        SessionOutcome.GOAL,
        sandbox=True,
    ),
    # 23:30 local on the 20th: in the day.
    "late_evening": Story(
        "263770000009",
        utc(20, 21, 30),
        (*_to_confirm, ("confirm", C, "yes"), ("done", E, None)),
        SessionStatus.COMPLETED,
        "done",
        SessionOutcome.GOAL,
    ),
    # 00:30 local on the 21st = 22:30 UTC on the 20th: not in the day.
    "next_day": Story(
        "263770000010",
        utc(20, 22, 30),
        (("ask_name", E, None), ("ask_name", C, "Zoe"), ("ask_size", E, None)),
        SessionStatus.ABANDONED,
        "ask_size",
    ),
}


def _message(action: StepAction, value: str | None) -> str | None:
    """What the customer was told (a retry quotes the answer, as real reasons may)."""
    if action is R:
        return f"{value!r} is not a name"
    return "boom" if action is X else None


async def write_stories(db: Database) -> dict[str, int]:
    """Write :data:`STORIES`; returns each story's session id."""
    ids: dict[str, int] = {}
    async with db.transaction() as session:
        for name, story in STORIES.items():
            contact = Contact(wa_id=story.contact, profile_name=name, sandbox=story.sandbox)
            session.add(contact)
            await session.flush()
            ended = story.started + dt.timedelta(minutes=5)
            row = FlowSession(
                contact_id=contact.id,
                flow_name=FLOW,
                flow_version="v1",
                started_at=story.started,
                status=story.status,
                outcome=None if story.outcome is None else story.outcome.value,
                current_step=story.current_step,
                last_activity_at=ended,
                completed_at=None if story.status is SessionStatus.ACTIVE else ended,
            )
            session.add(row)
            await session.flush()
            ids[name] = row.id
            for n, (step, action, value) in enumerate(story.events):
                code = story.codes[n] if story.codes else None
                session.add(
                    FlowStepEvent(
                        session_id=row.id,
                        flow_name=row.flow_name,
                        flow_version=row.flow_version,
                        session_started_at=row.started_at,
                        step_name=step,
                        action=action,
                        timestamp=story.started + dt.timedelta(seconds=n + 1),
                        input_value=value,
                        error_code=code,
                        error_message=_message(action, value),
                        retry_count=0,
                    )
                )
    return ids
