"""Flow analytics tables: sessions, step events and periodic metric snapshots.

Names and fields follow the original requirements (``FlowSession``, ``FlowStepEvent``,
``FlowMetricSnapshot``); ``analytics.models`` re-exports them under those names.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, UTCDateTime, utcnow
from storage.contacts import Contact
from storage.types import BigIntId, JSONDoc, str_enum

# How the engine marks a session it handed to a person (``ended_reason``); reports use it
# to correlate sessions with support.
HANDOFF_REASON_PREFIX = "handed to a person: "


class SessionStatus(enum.StrEnum):
    """Where a flow session ended up."""

    ACTIVE = "active"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    ERROR = "error"


class SessionOutcome(enum.StrEnum):
    """How a completed session ended, so that "completed" means the flow's purpose was met.

    A final step declares it in the flow file (``outcome: cancelled``); the engine records
    ``nothing_to_do`` when a step had nothing to offer (an empty list of choices).
    Sessions completed before outcomes existed have none and count as ``goal``.
    """

    GOAL = "goal"
    CANCELLED = "cancelled"
    NOTHING_TO_DO = "nothing_to_do"


class StepAction(enum.StrEnum):
    """What happened at a step."""

    ENTERED = "entered"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    ERROR = "error"
    RETRY = "retry"


class SnapshotPeriod(enum.StrEnum):
    """Length of a metric snapshot's period."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class FlowSession(Base):
    """One journey of one contact through one flow."""

    __tablename__ = "flow_sessions"
    __table_args__ = (
        # Reports find a flow's sessions of a period here; on PostgreSQL the index alone
        # answers "which sessions, of which contacts" (SQLite's rowid is the id).
        Index(None, "flow_name", "started_at", postgresql_include=["id", "contact_id"]),
        Index(None, "status", "last_activity_at"),
        Index(None, "contact_id", "started_at"),
        # "Had this contact used the flow before?": the question the trigger setting
        # ``repeat_contact`` asks at each insert on SQLite, and 0017's backfill
        # (PostgreSQL's trigger goes through (contact_id, started_at)).
        Index(None, "flow_name", "contact_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("contacts.id", ondelete="CASCADE")
    )
    flow_name: Mapped[str] = mapped_column(String(100))
    # Hash of the flow's definition, so reports stay right when a flow changes.
    flow_version: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[SessionStatus] = mapped_column(
        str_enum(SessionStatus, "flow_session_status"), default=SessionStatus.ACTIVE
    )
    context_data: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)
    # The step the contact was at last: where an abandoned session dropped off.
    current_step: Mapped[str | None] = mapped_column(String(100))
    last_activity_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_reason: Mapped[str | None] = mapped_column(Text)
    # For a completed session: goal, cancelled or nothing_to_do (``SessionOutcome``);
    # plain text, not an enum column, so that apps' flows may grow new outcomes.
    outcome: Mapped[str | None] = mapped_column(String(32))
    # Whether the contact had started a session of this flow before this one (the
    # repeat-user KPI). Kept by the database itself (a trigger of migration 0017, on both
    # databases): set when a session is inserted, and set on the contact's later
    # sessions when an earlier one is inserted after them. Reports count it instead of
    # looking for an earlier session of each (55 of a 75 ms query at 24,000 sessions).
    # A trigger sees committed sessions and its own transaction's: the engine starts a
    # contact's sessions one at a time (the contact's turns never run at once).
    repeat_contact: Mapped[bool] = mapped_column(Boolean, server_default=false())

    contact: Mapped[Contact] = relationship(lazy="raise")
    events: Mapped[list[FlowStepEvent]] = relationship(
        back_populates="session", lazy="raise", order_by="FlowStepEvent.id"
    )

    def mark_completed(
        self, at: dt.datetime | None = None, *, outcome: str = SessionOutcome.GOAL
    ) -> None:
        """Mark the session completed now (or at ``at``) with ``outcome``; the caller
        commits."""
        self.status = SessionStatus.COMPLETED
        self.outcome = str(outcome)
        self.completed_at = at or utcnow()
        self.last_activity_at = self.completed_at

    def mark_ended(
        self, status: SessionStatus, *, reason: str | None = None, at: dt.datetime | None = None
    ) -> None:
        """End the session as abandoned or error, keeping why."""
        self.status = status
        self.completed_at = at or utcnow()
        self.ended_reason = reason
        if status is SessionStatus.ERROR and reason:
            self.error_message = reason

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to end, or ``None`` while the session is still open."""
        if self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()


class FlowStepEvent(Base):
    """One interaction at one step of a session."""

    __tablename__ = "flow_step_events"
    __table_args__ = (
        Index(None, "session_id", "id"),
        Index(None, "step_name", "action"),
        Index(None, "timestamp"),
        # Reports: the events of a flow's sessions started in a period, read from the
        # index alone, in the order of their sessions (each session's events together,
        # by step), without a visit to the sessions (it covers every column the step
        # totals need, the id too: SQLite's rowid is in every index, PostgreSQL needs it
        # included).
        Index(
            "ix_flow_step_events_by_session_start",
            "flow_name",
            "session_started_at",
            "session_id",
            "step_name",
            "action",
            "timestamp",
            "time_spent",
            "flow_version",
            postgresql_include=["id"],
        ),
        # Error analysis finds the rare error/retry events by time.
        Index(None, "action", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("flow_sessions.id", ondelete="CASCADE")
    )
    step_name: Mapped[str] = mapped_column(String(100))
    action: Mapped[StepAction] = mapped_column(str_enum(StepAction, "flow_step_action"))
    timestamp: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    time_spent: Mapped[float | None] = mapped_column(Float)
    input_value: Mapped[str | None] = mapped_column(Text)
    output_value: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    # A stable name of what went wrong (``integer.too_large``, ``KeyError``): errors are
    # grouped by it, never by the text, which may quote what the customer typed.
    error_code: Mapped[str | None] = mapped_column(String(80))
    # The session's flow, version and start, copied from it (they never change): a
    # report of the sessions started in a period reads their events from one index
    # range, instead of visiting each session's events (migration 0017).
    flow_name: Mapped[str] = mapped_column(String(100))
    flow_version: Mapped[str] = mapped_column(String(64))
    session_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    session: Mapped[FlowSession] = relationship(back_populates="events", lazy="raise")


# Reports leave the sandbox contacts' sessions out (``analytics.aggregates``): this
# partial index holds only those few contacts, so finding them never reads every contact.
# Declared here, with the analytics models that need it, on the contacts table.
Index(
    "ix_contacts_sandbox",
    Contact.id,
    postgresql_where=Contact.sandbox.is_(True),
    sqlite_where=Contact.sandbox.is_(True),
)


class FlowMetricSnapshot(Base):
    """Pre-calculated metrics of one flow over one day, week or month.

    Sessions count for the period in which they *started* (in the business's timezone),
    so daily snapshots add up to any longer range. Beyond the seed's fields a snapshot
    keeps the totals the KPIs need (retries, hand-offs, conversions, returning users), and
    :class:`FlowStepMetricSnapshot` rows keep the funnel per step.
    """

    __tablename__ = "flow_metric_snapshots"
    __table_args__ = (UniqueConstraint("flow_name", "flow_version", "period", "period_start"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(100))
    # Empty string means "all versions together".
    flow_version: Mapped[str] = mapped_column(String(64), default="")
    period: Mapped[SnapshotPeriod] = mapped_column(str_enum(SnapshotPeriod, "snapshot_period"))
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    total_sessions: Mapped[int] = mapped_column(Integer, default=0)
    completed_sessions: Mapped[int] = mapped_column(Integer, default=0)
    abandoned_sessions: Mapped[int] = mapped_column(Integer, default=0)
    error_sessions: Mapped[int] = mapped_column(Integer, default=0)
    avg_duration_seconds: Mapped[float | None] = mapped_column(Float)
    total_errors: Mapped[int] = mapped_column(Integer, default=0)
    error_rate: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Sessions still open when the snapshot was taken: a day with none left is final.
    active_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retried_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Sessions that hit a retry and still completed.
    recovered_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    handed_off_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Completed sessions in which the contact reached one of the app's goals.
    converted_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Sessions started by a contact who had used the flow before.
    returning_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Completed sessions whose outcome was not the goal (``completed_sessions`` excludes
    # them): cancelled by the customer, or nothing to do.
    cancelled_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    nothing_to_do_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Completed sessions per goal reached ({"order": 12}), so that a report's conversion
    # per goal reads settled days from here; ``None`` in snapshots taken before it was kept.
    goal_sessions: Mapped[dict[str, int] | None] = mapped_column(JSONDoc)

    steps: Mapped[list[FlowStepMetricSnapshot]] = relationship(
        back_populates="snapshot",
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="FlowStepMetricSnapshot.id",
    )


class FlowStepMetricSnapshot(Base):
    """One step's funnel figures inside a :class:`FlowMetricSnapshot`."""

    __tablename__ = "flow_step_metric_snapshots"
    __table_args__ = (UniqueConstraint("snapshot_id", "step_name"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("flow_metric_snapshots.id", ondelete="CASCADE")
    )
    step_name: Mapped[str] = mapped_column(String(100))
    # Distinct sessions that entered the step.
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    time_spent_total: Mapped[float] = mapped_column(Float, default=0.0)
    time_spent_count: Mapped[int] = mapped_column(Integer, default=0)
    # Mean seconds from the session's start to entering the step: orders the funnel.
    avg_offset_seconds: Mapped[float | None] = mapped_column(Float)
    abandoned_here: Mapped[int] = mapped_column(Integer, default=0)
    errored_here: Mapped[int] = mapped_column(Integer, default=0)
    handed_off_here: Mapped[int] = mapped_column(Integer, default=0)

    snapshot: Mapped[FlowMetricSnapshot] = relationship(back_populates="steps", lazy="raise")
