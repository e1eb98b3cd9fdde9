"""Automatic step tracking for flow machines, and the manual tracking API.

:class:`StepTracker` is a python-statemachine listener attached to every flow machine.
It never raises and does no I/O: it only buffers timestamped :class:`TrackedEvent`
values, which the engine writes with :func:`write_events` in the same transaction as the
state change (no event without its state change, no state change without its event).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage import Contact, FlowSession, FlowStepEvent, SessionStatus, StepAction, utcnow

log = logging.getLogger("nyala.analytics")

Clock = Callable[[], dt.datetime]
INPUT_MAX = 500


def _clip(value: str | None) -> str | None:
    if value is None:
        return None
    return value if len(value) <= INPUT_MAX else value[: INPUT_MAX - 1] + "…"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedEvent:
    """A step event waiting to be written."""

    step_name: str
    action: StepAction
    timestamp: dt.datetime
    time_spent: float | None = None
    input_value: str | None = None
    output_value: str | None = None
    error_message: str | None = None
    retry_count: int = 0
    error_code: str | None = None


class StepTracker:
    """Listener that turns a machine's callbacks into step events.

    * entering a state → ``entered``;
    * leaving it on an event → ``completed`` with ``time_spent`` since it was entered and
      the user's input and the saved output;
    * leaving it by an eventless transition (a ``skip_if``) → ``skipped``;
    * an event that matched no transition, or :meth:`retry` → ``retry``;
    * :meth:`error` → ``error``.

    Args:
        entered_at: when the current state was entered (from the stored conversation).
        retry_count: invalid answers already given at the current state.
        clock: the time source.
    """

    def __init__(
        self,
        *,
        entered_at: dt.datetime | None = None,
        retry_count: int = 0,
        clock: Clock = utcnow,
    ) -> None:
        self.events: list[TrackedEvent] = []
        self.entered_at = entered_at
        self.retry_count = retry_count
        self.clock = clock
        self.transitions = 0
        self.unmatched = False
        self.current_step: str | None = None

    # python-statemachine callbacks ---------------------------------------------------
    def on_enter_state(self, state: Any, **_: Any) -> None:
        try:
            now = self.clock()
            self.entered_at = now
            self.retry_count = 0
            self.current_step = state.id
            self.events.append(
                TrackedEvent(step_name=state.id, action=StepAction.ENTERED, timestamp=now)
            )
        except Exception:  # a tracker must never break a conversation
            log.exception("step tracker failed on enter")

    def on_exit_state(
        self,
        state: Any,
        transition: Any = None,
        input_value: str | None = None,
        output_value: str | None = None,
        **_: Any,
    ) -> None:
        try:
            now = self.clock()
            spent = (now - self.entered_at).total_seconds() if self.entered_at else None
            skipped = transition is not None and transition.is_eventless
            self.events.append(
                TrackedEvent(
                    step_name=state.id,
                    action=StepAction.SKIPPED if skipped else StepAction.COMPLETED,
                    timestamp=now,
                    time_spent=None if skipped else spent,
                    input_value=None if skipped else _clip(input_value),
                    output_value=None if skipped else _clip(output_value),
                    retry_count=self.retry_count,
                )
            )
        except Exception:
            log.exception("step tracker failed on exit")

    def after_transition(self, transition: Any = None, source: Any = None, **_: Any) -> None:
        try:
            if transition is not None and transition.target is None and not transition.internal:
                # A target-less catch-all: the answer was valid but no branch accepted it.
                self.unmatched = True
            else:
                self.transitions += 1
        except Exception:
            log.exception("step tracker failed after transition")

    # explicit events --------------------------------------------------------------
    def retry(
        self,
        step_name: str,
        *,
        input_value: str | None,
        reason: str | None,
        code: str | None = None,
    ) -> None:
        """Record a rejected answer at ``step_name`` (``code``: what was wrong)."""
        self.retry_count += 1
        self.events.append(
            TrackedEvent(
                step_name=step_name,
                action=StepAction.RETRY,
                timestamp=self.clock(),
                input_value=_clip(input_value),
                error_message=reason,
                retry_count=self.retry_count,
                error_code=code,
            )
        )

    def error(
        self,
        step_name: str,
        *,
        message: str,
        input_value: str | None = None,
        code: str | None = None,
    ) -> None:
        """Record an exception at ``step_name`` (``code``: e.g. the exception's type)."""
        self.events.append(
            TrackedEvent(
                step_name=step_name,
                action=StepAction.ERROR,
                timestamp=self.clock(),
                input_value=_clip(input_value),
                error_message=message,
                retry_count=self.retry_count,
                error_code=code,
            )
        )


def _of_session(flow_session: FlowSession) -> dict[str, Any]:
    """The columns a step event takes from its session: its id, and the flow, version and
    start that reports read with the event (they never change)."""
    return {
        "session_id": flow_session.id,
        "flow_name": flow_session.flow_name,
        "flow_version": flow_session.flow_version,
        "session_started_at": flow_session.started_at,
    }


def write_events(
    session: AsyncSession, flow_session: FlowSession, events: Iterable[TrackedEvent]
) -> list[FlowStepEvent]:
    """Add the buffered events to the caller's transaction."""
    rows = [
        FlowStepEvent(
            **_of_session(flow_session),
            step_name=e.step_name,
            action=e.action,
            timestamp=e.timestamp,
            time_spent=e.time_spent,
            input_value=e.input_value,
            output_value=e.output_value,
            error_message=e.error_message,
            retry_count=e.retry_count,
            error_code=e.error_code,
        )
        for e in events
    ]
    session.add_all(rows)
    return rows


def event_rows(flow_session: FlowSession, events: Iterable[TrackedEvent]) -> list[dict[str, Any]]:
    """The buffered events as ``flow_step_events`` rows, for :func:`insert_events`."""
    session = _of_session(flow_session)
    return [
        {
            **session,
            "step_name": e.step_name,
            "action": e.action,
            "timestamp": e.timestamp,
            "time_spent": e.time_spent,
            "input_value": e.input_value,
            "output_value": e.output_value,
            "error_message": e.error_message,
            "retry_count": e.retry_count,
            "error_code": e.error_code,
        }
        for e in events
    ]


async def insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert step-event rows in the caller's transaction: one statement, no ORM objects.

    The engine's hot path uses this instead of :func:`write_events`.
    """
    if rows:
        await session.execute(insert(cast(Table, FlowStepEvent.__table__)), rows)


# Manual tracking, for custom code outside flow machines ------------------------------


async def start_session(
    session: AsyncSession,
    contact: Contact,
    flow_name: str,
    *,
    flow_version: str = "",
    context_data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> FlowSession:
    """Open a :class:`FlowSession` for ``contact`` (the caller commits)."""
    now = at or utcnow()
    row = FlowSession(
        contact_id=contact.id,
        flow_name=flow_name,
        flow_version=flow_version,
        started_at=now,
        last_activity_at=now,
        status=SessionStatus.ACTIVE,
        context_data=context_data or {},
    )
    session.add(row)
    await session.flush()
    return row


async def track_step(
    session: AsyncSession,
    flow_session: FlowSession,
    step_name: str,
    action: StepAction | str,
    *,
    time_spent: float | None = None,
    input_value: str | None = None,
    output_value: str | None = None,
    error_message: str | None = None,
    retry_count: int = 0,
    at: dt.datetime | None = None,
    error_code: str | None = None,
) -> FlowStepEvent:
    """Record one step event by hand (the caller commits).

    An ``error`` event also puts the session in status ``error`` with the message kept.
    """
    now = at or utcnow()
    step_action = StepAction(action)
    row = FlowStepEvent(
        **_of_session(flow_session),
        step_name=step_name,
        action=step_action,
        timestamp=now,
        time_spent=time_spent,
        input_value=_clip(input_value),
        output_value=_clip(output_value),
        error_message=error_message,
        retry_count=retry_count,
        error_code=error_code,
    )
    session.add(row)
    flow_session.current_step = step_name
    flow_session.last_activity_at = now
    if step_action is StepAction.ERROR:
        flow_session.mark_ended(SessionStatus.ERROR, reason=error_message or "error", at=now)
    await session.flush()
    return row
