"""Additive totals of a flow's sessions over a period, from events or from snapshots.

Everything a report shows is derived from :class:`FlowTotals`. Sessions count for the
period in which they started, so totals of consecutive periods add up: a long range is
the sum of its settled daily snapshots plus SQL aggregations over the days no snapshot
covers. Nothing loads events into Python; each query returns a handful of rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import functools
import itertools
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    distinct,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from analytics import config
from analytics.expressions import Column, seconds_between
from analytics.periods import Period, local_midnight
from storage import (
    Contact,
    Database,
    FlowMetricSnapshot,
    FlowSession,
    FlowStepEvent,
    GoalEvent,
    SessionOutcome,
    SessionStatus,
    SnapshotPeriod,
    StepAction,
)
from storage.flow_sessions import HANDOFF_REASON_PREFIX, FlowStepMetricSnapshot

ALL_VERSIONS = ""


class Detail(enum.IntEnum):
    """How much a report needs: each level adds queries."""

    SESSIONS = 0  # counts per status, durations, hand-offs
    STEPS = 1  # + per-step figures and where sessions ended
    ALL = 2  # + retried, converted and returning sessions (the KPIs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Which sessions a report looks at.

    Attributes:
        flow: the flow's name.
        version: only sessions of this flow version (``None``: every version).
        step: only sessions with an event at this step.
        action: only sessions with an event of this action (at ``step`` if given).
        include_sandbox: count sandbox contacts' sessions too (the console's chat
            simulator); left out by default, as no customer had them.
    """

    flow: str
    version: str | None = None
    step: str | None = None
    action: StepAction | None = None
    include_sandbox: bool = False

    @property
    def filtered(self) -> bool:
        """Whether the sessions differ from a snapshot's (which never hold sandbox
        contacts' sessions): snapshots cannot answer then."""
        return (
            self.version is not None
            or self.step is not None
            or self.action is not None
            or self.include_sandbox
        )


@dataclass(slots=True, kw_only=True)
class StepTotals:
    """What happened at one step."""

    step_name: str
    sessions: int = 0
    completed: int = 0
    skipped: int = 0
    retries: int = 0
    errors: int = 0
    time_spent_total: float = 0.0
    time_spent_count: int = 0
    offset_total: float = 0.0
    offset_count: int = 0
    abandoned_here: int = 0
    errored_here: int = 0
    handed_off_here: int = 0
    # The id of the first event that reached the step (``None`` from snapshots): the
    # first-seen order of a flow whose steps nobody declared.
    first_seen: int | None = None

    def add(self, other: StepTotals) -> None:
        """Add ``other``'s figures to these."""
        if other.first_seen is not None and (
            self.first_seen is None or other.first_seen < self.first_seen
        ):
            self.first_seen = other.first_seen
        self.sessions += other.sessions
        self.completed += other.completed
        self.skipped += other.skipped
        self.retries += other.retries
        self.errors += other.errors
        self.time_spent_total += other.time_spent_total
        self.time_spent_count += other.time_spent_count
        self.offset_total += other.offset_total
        self.offset_count += other.offset_count
        self.abandoned_here += other.abandoned_here
        self.errored_here += other.errored_here
        self.handed_off_here += other.handed_off_here

    @property
    def avg_time_spent(self) -> float | None:
        """Mean seconds at the step, over the times it was completed."""
        return self.time_spent_total / self.time_spent_count if self.time_spent_count else None

    @property
    def avg_offset(self) -> float | None:
        """Mean seconds from the session's start to entering the step."""
        return self.offset_total / self.offset_count if self.offset_count else None


@dataclass(slots=True, kw_only=True)
class FlowTotals:
    """Additive totals of the sessions that started in a period."""

    total: int = 0
    # Completed with the goal met; ``cancelled`` and ``nothing_to_do`` are the other
    # completed sessions (the customer said no, or there was nothing to do).
    completed: int = 0
    cancelled: int = 0
    nothing_to_do: int = 0
    abandoned: int = 0
    error: int = 0
    active: int = 0
    duration_total: float = 0.0
    duration_count: int = 0
    errors: int = 0
    retries: int = 0
    retried_sessions: int = 0
    recovered_sessions: int = 0
    handed_off: int = 0
    # Completed sessions in which any goal was reached, and per goal (only the goals a
    # report asked for: snapshots keep the first, never the second).
    converted: int = 0
    goals: dict[str, int] = field(default_factory=dict)
    returning: int = 0
    first_started: dt.datetime | None = None
    steps: dict[str, StepTotals] = field(default_factory=dict)

    def step(self, name: str) -> StepTotals:
        """The totals of step ``name`` (created empty on first use)."""
        found = self.steps.get(name)
        if found is None:
            found = self.steps[name] = StepTotals(step_name=name)
        return found

    def add(self, other: FlowTotals) -> None:
        """Add ``other``'s figures to these."""
        self.total += other.total
        self.completed += other.completed
        self.cancelled += other.cancelled
        self.nothing_to_do += other.nothing_to_do
        self.abandoned += other.abandoned
        self.error += other.error
        self.active += other.active
        self.duration_total += other.duration_total
        self.duration_count += other.duration_count
        self.errors += other.errors
        self.retries += other.retries
        self.retried_sessions += other.retried_sessions
        self.recovered_sessions += other.recovered_sessions
        self.handed_off += other.handed_off
        self.converted += other.converted
        for goal, count in other.goals.items():
            self.goals[goal] = self.goals.get(goal, 0) + count
        self.returning += other.returning
        if other.first_started is not None and (
            self.first_started is None or other.first_started < self.first_started
        ):
            self.first_started = other.first_started
        for name, step in other.steps.items():
            self.step(name).add(step)

    @property
    def avg_duration(self) -> float | None:
        """Mean seconds from start to completion, over completed sessions."""
        return self.duration_total / self.duration_count if self.duration_count else None


@dataclass(slots=True, kw_only=True)
class Collected:
    """Totals per flow version (``""``: all versions) and where they came from."""

    totals: dict[str, FlowTotals]
    snapshot_days: int = 0
    event_days: int = 0

    @property
    def overall(self) -> FlowTotals:
        """The totals over every version."""
        result = FlowTotals()
        for totals in self.totals.values():
            result.add(totals)
        return result


# SQL over the events --------------------------------------------------------------------


def _sandboxed() -> Select[Any]:
    """The sandbox contacts (a partial index holds only those few)."""
    return select(Contact.id).where(Contact.sandbox.is_(True))


def _window(
    event: type[FlowStepEvent], scope: Scope, start: dt.datetime, end: dt.datetime
) -> list[ColumnElement[bool]]:
    """The events (of ``event``, the table or an alias of it) of ``scope``'s flow whose
    sessions started in ``[start, end)``: one range of the (flow, session start) index."""
    return [
        event.flow_name == scope.flow,
        event.session_started_at >= start,
        event.session_started_at < end,
        # Events never precede their session's start: on PostgreSQL the months before
        # the period's are not read at all (partition pruning).
        event.timestamp >= start,
    ]


def _marked(scope: Scope, start: dt.datetime, end: dt.datetime) -> Select[Any] | None:
    """The sessions of ``scope``'s flow started in ``[start, end)`` with an event at
    ``scope.step``/of ``scope.action`` (``None`` if the scope asks for neither)."""
    if scope.step is None and scope.action is None:
        return None
    marker = aliased(FlowStepEvent)
    wanted = _window(marker, scope, start, end)
    if scope.step is not None:
        wanted.append(marker.step_name == scope.step)
    if scope.action is not None:
        wanted.append(marker.action == scope.action)
    return select(marker.session_id).where(*wanted)


def session_conditions(
    scope: Scope, start: dt.datetime, end: dt.datetime
) -> list[ColumnElement[bool]]:
    """WHERE conditions on :class:`FlowSession` for ``scope``'s sessions started in
    ``[start, end)``."""
    conditions: list[ColumnElement[bool]] = [
        FlowSession.flow_name == scope.flow,
        FlowSession.started_at >= start,
        FlowSession.started_at < end,
    ]
    if scope.version is not None:
        conditions.append(FlowSession.flow_version == scope.version)
    if not scope.include_sandbox:
        # NOT IN over the few sandbox contacts, not a join: the planners keep starting
        # from the (flow_name, started_at) index.
        conditions.append(FlowSession.contact_id.not_in(_sandboxed()))
    marked = _marked(scope, start, end)
    if marked is not None:
        conditions.append(FlowSession.id.in_(marked))
    return conditions


def event_conditions(
    scope: Scope, start: dt.datetime, end: dt.datetime
) -> list[ColumnElement[bool]]:
    """WHERE conditions on :class:`FlowStepEvent` for the events of ``scope``'s sessions
    started in ``[start, end)``, from the session's columns each event carries (one range
    of the events' (flow, session start) index, no visit to the sessions)."""
    event = FlowStepEvent
    conditions = _window(event, scope, start, end)
    if scope.version is not None:
        conditions.append(event.flow_version == scope.version)
    if not scope.include_sandbox:
        # The sandbox contacts' few sessions, found by the (contact_id, started_at) index.
        sandbox_sessions = select(FlowSession.id).where(FlowSession.contact_id.in_(_sandboxed()))
        conditions.append(event.session_id.not_in(sandbox_sessions))
    marked = _marked(scope, start, end)
    if marked is not None:
        conditions.append(event.session_id.in_(marked))
    return conditions


def version_column(by_version: bool) -> Column:
    """The flow version, or ``""`` for every version together."""
    return FlowSession.flow_version if by_version else literal(ALL_VERSIONS)


def grouping(by_version: bool) -> list[Column]:
    """GROUP BY columns for the version split (none for all versions together)."""
    # A constant in GROUP BY is an error on PostgreSQL: group by real columns only.
    return [FlowSession.flow_version] if by_version else []


OTHER_OUTCOMES = (SessionOutcome.CANCELLED.value, SessionOutcome.NOTHING_TO_DO.value)


def goal_completed() -> ColumnElement[bool]:
    """Completed with the goal met (sessions from before outcomes have none: the goal)."""
    return and_(
        FlowSession.status == SessionStatus.COMPLETED,
        or_(FlowSession.outcome.is_(None), FlowSession.outcome.not_in(OTHER_OUTCOMES)),
    )


def _handed_off() -> ColumnElement[bool]:
    return FlowSession.ended_reason.like(HANDOFF_REASON_PREFIX + "%")


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """The rows for which ``condition`` holds (``count(*) FILTER (WHERE …)``: no CASE
    and no sum per row)."""
    return func.count().filter(condition)


async def _session_totals(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    by_version: bool,
    detail: Detail,
    goals: Sequence[str] = (),
) -> dict[str, FlowTotals]:
    """Per version: the sessions by status and outcome, durations, hand-offs; with
    :attr:`Detail.STEPS` where the badly ended ones stopped; with :attr:`Detail.ALL` the
    converted, returning and retried sessions, and per goal in ``goals`` the completed
    sessions that reached it, each an IN over a few hashed ids in the same pass over the
    sessions (no statement of their own)."""
    version = version_column(by_version)
    # Whether a session completed with its goal met is a matter of its status and
    # outcome, which the rows are grouped by: the counts below are of every session of a
    # group, and only the goal-completed groups' are added where only those count.
    columns: list[Column] = [
        version.label("version"),
        FlowSession.status,
        FlowSession.outcome,
        func.count().label("n"),
        func.min(FlowSession.started_at).label("first_started"),
        func.sum(seconds_between(FlowSession.started_at, FlowSession.completed_at)).label(
            "duration_total"
        ),
        func.count(FlowSession.completed_at).label("duration_count"),
        _count_if(_handed_off()).label("handed_off"),
    ]
    if detail is Detail.ALL:
        # A goal reached in the session: the framework's own table, never the app's. As
        # an IN over the goals reached since the start (never before the session's), not
        # a correlated EXISTS, which PostgreSQL answered by hashing every goal event ever
        # reached (the (at) index finds the period's few).
        converted = FlowSession.id.in_(
            select(GoalEvent.session_id).where(
                GoalEvent.at >= start, GoalEvent.session_id.is_not(None)
            )
        )
        # Sessions told to try again: the period's few retry events, by their (action,
        # timestamp) index (events never precede their session's start).
        retried = FlowSession.id.in_(
            select(FlowStepEvent.session_id).where(
                FlowStepEvent.action == StepAction.RETRY, FlowStepEvent.timestamp >= start
            )
        )
        columns += [
            _count_if(converted).label("converted"),
            _count_if(FlowSession.repeat_contact.is_(True)).label("repeat"),
            _count_if(retried).label("retried"),
        ]
        columns += [
            _count_if(
                FlowSession.id.in_(
                    select(GoalEvent.session_id).where(
                        GoalEvent.goal == goal, GoalEvent.at >= start
                    )
                )
            ).label(f"goal_{n}")
            for n, goal in enumerate(goals)
        ]
    keys: list[Column] = [FlowSession.status, FlowSession.outcome]
    if detail >= Detail.STEPS:
        # Where sessions ended badly (abandoned, in error, handed to a person): the step
        # they were at, in the same pass over the sessions.
        ended_step = case(
            (
                or_(
                    FlowSession.status.in_((SessionStatus.ABANDONED, SessionStatus.ERROR)),
                    _handed_off(),
                ),
                func.coalesce(func.nullif(FlowSession.current_step, ""), literal("?")),
            ),
            else_=None,
        )
        label = ended_step.label("ended_step")
        columns.append(label)
        # Grouped by the output column's name: the expression's parameters would be
        # bound twice, and PostgreSQL could not tell that they are the same expression.
        keys.append(label)
    query = (
        select(*columns)
        .where(*session_conditions(scope, start, end))
        .group_by(*grouping(by_version), *keys)
    )
    result: dict[str, FlowTotals] = {}
    for row in (await session.execute(query)).mappings():
        totals = result.setdefault(row["version"], FlowTotals())
        n = int(row["n"])
        status = SessionStatus(row["status"])
        if detail >= Detail.STEPS and row["ended_step"] is not None:
            step = totals.step(row["ended_step"])
            step.abandoned_here += n if status is SessionStatus.ABANDONED else 0
            step.errored_here += n if status is SessionStatus.ERROR else 0
            step.handed_off_here += int(row["handed_off"])
        totals.total += n
        goal_met = False
        if status is SessionStatus.COMPLETED:
            if row["outcome"] == SessionOutcome.CANCELLED:
                totals.cancelled += n
            elif row["outcome"] == SessionOutcome.NOTHING_TO_DO:
                totals.nothing_to_do += n
            else:
                totals.completed += n
                goal_met = True  # goal_completed(), for this group's status and outcome
        elif status is SessionStatus.ABANDONED:
            totals.abandoned += n
        elif status is SessionStatus.ERROR:
            totals.error += n
        else:
            totals.active += n
        if goal_met:
            totals.duration_total += float(row["duration_total"] or 0.0)
            totals.duration_count += int(row["duration_count"] or 0)
        totals.handed_off += int(row["handed_off"])
        if detail is Detail.ALL:
            totals.returning += int(row["repeat"])
            totals.retried_sessions += int(row["retried"])
            if goal_met:
                totals.converted += int(row["converted"])
                totals.recovered_sessions += int(row["retried"])
            for n, goal in enumerate(goals):
                reached_goal = int(row[f"goal_{n}"]) if goal_met else 0
                totals.goals[goal] = totals.goals.get(goal, 0) + reached_goal
        first: dt.datetime | None = row["first_started"]
        if first is not None:
            first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
            if totals.first_started is None or first < totals.first_started:
                totals.first_started = first
    return result


async def _step_totals(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    by_version: bool,
    offsets: bool = True,
) -> dict[str, FlowTotals]:
    """Per step: events of each action, time spent, the offset from the session's start
    (unless ``offsets`` is false), and the first event that reached it (the sessions that
    did: :func:`_step_sessions`).

    Grouped by step and action, with plain aggregates (no CASE per row), over one range
    of the (flow, session start) index.
    """
    event = FlowStepEvent
    version = event.flow_version if by_version else literal(ALL_VERSIONS)
    columns: list[Any] = [
        version.label("version"),
        event.step_name,
        event.action,
        func.count().label("n"),
        func.min(event.id).label("first_id"),
        func.sum(event.time_spent).label("time_total"),
        func.count(event.time_spent).label("time_count"),
    ]
    if offsets:
        # Only the entered events' offsets are used: the others' are not computed.
        columns.append(
            func.sum(seconds_between(event.session_started_at, event.timestamp))
            .filter(event.action == StepAction.ENTERED)
            .label("offset_total")
        )
    query = (
        select(*columns)
        .where(*event_conditions(scope, start, end))
        .group_by(*([event.flow_version] if by_version else []), event.step_name, event.action)
    )
    reached = (StepAction.ENTERED, StepAction.SKIPPED)
    result: dict[str, FlowTotals] = {}
    for row in (await session.execute(query)).mappings():
        totals = result.setdefault(row["version"], FlowTotals())
        step = totals.step(row["step_name"])
        action = StepAction(row["action"])
        n = int(row["n"])
        if action in reached and (step.first_seen is None or row["first_id"] < step.first_seen):
            step.first_seen = int(row["first_id"])
        if action is StepAction.COMPLETED:
            step.completed += n
            step.time_spent_total += float(row["time_total"] or 0.0)
            step.time_spent_count += int(row["time_count"])
        elif action is StepAction.ENTERED and offsets:
            step.offset_total += float(row["offset_total"] or 0.0)
            step.offset_count += n
        elif action is StepAction.SKIPPED:
            step.skipped += n
        elif action is StepAction.RETRY:
            step.retries += n
            totals.retries += n
        elif action is StepAction.ERROR:
            step.errors += n
            totals.errors += n
    return result


async def _step_sessions(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    by_version: bool,
) -> dict[str, FlowTotals]:
    """Per step, the sessions that reached it (entered or skipped it, once or more).

    Each session's events of a step are next to each other in the (flow, session start,
    session, step) index, so the distinct (session, step) pairs come from it in order,
    with neither a sort nor a hash of every event.
    """
    event = FlowStepEvent
    keys = [event.session_started_at, event.session_id, event.step_name]
    columns: list[Any] = [*keys]
    if by_version:
        # The same for every event of a session: one value per group.
        columns.append(func.min(event.flow_version).label("flow_version"))
    pairs = (
        select(*columns)
        .where(
            *event_conditions(scope, start, end),
            event.action.in_((StepAction.ENTERED, StepAction.SKIPPED)),
        )
        .group_by(*keys)
        .subquery()
    )
    version = pairs.c.flow_version if by_version else literal(ALL_VERSIONS)
    query = select(
        version.label("version"), pairs.c.step_name, func.count().label("sessions")
    ).group_by(*([pairs.c.flow_version] if by_version else []), pairs.c.step_name)
    result: dict[str, FlowTotals] = {}
    for row in (await session.execute(query)).mappings():
        totals = result.setdefault(row["version"], FlowTotals())
        totals.step(row["step_name"]).sessions += int(row["sessions"])
    return result


async def goal_totals(
    session: AsyncSession,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    goals: Sequence[str] | None,
    by_version: bool,
) -> dict[str, FlowTotals]:
    """Per goal, the completed sessions started in ``[start, end)`` that reached it.

    Args:
        goals: these goals (each counted, zero if never reached); ``None``: every goal
            reached (what a snapshot keeps).
    """
    result: dict[str, FlowTotals] = {}
    if goals is not None and not goals:
        return result
    wanted = [GoalEvent.goal.in_(list(goals))] if goals is not None else []
    query = (
        select(
            version_column(by_version).label("version"),
            GoalEvent.goal,
            func.count(distinct(GoalEvent.session_id)).label("sessions"),
        )
        .select_from(GoalEvent)
        .join(FlowSession, FlowSession.id == GoalEvent.session_id)
        .where(
            # Starting from the few goal rows (the (goal, at) index; goals are never
            # reached before their session started), each joined to its session once.
            *wanted,
            GoalEvent.at >= start,
            *session_conditions(scope, start, end),
            goal_completed(),
        )
        .group_by(*grouping(by_version), GoalEvent.goal)
    )
    for row in (await session.execute(query)).mappings():
        totals = result.setdefault(row["version"], FlowTotals())
        for goal in goals or ():
            totals.goals.setdefault(goal, 0)
        totals.goals[row["goal"]] = totals.goals.get(row["goal"], 0) + int(row["sessions"])
    return result


Job = Callable[[AsyncSession], Coroutine[Any, Any, dict[str, FlowTotals]]]

PARALLEL_QUERIES = 4
"""The most statements of one report that run at once on PostgreSQL (its own
transaction's and three more): two cores gain nothing from more, and the pool is shared."""

STEP_SLICES = 2
"""Into how many stretches of time the steps' query over a run of days is cut when the
statements run at once (its sorts and aggregation then use both cores; the sessions of
each stretch are the ones that started in it, so the totals add up exactly)."""


async def run_jobs(
    session: AsyncSession, jobs: Sequence[Job], *, db: Database | None = None
) -> dict[str, FlowTotals]:
    """Run ``jobs`` (queries giving totals) and add up what they give.

    On ``session`` one after another; given a PostgreSQL ``db``, at once, each but the
    first on a read transaction of its own: the statements of a report are independent,
    each already sees its own snapshot of the data (READ COMMITTED), and PostgreSQL runs
    them on every core instead of one. At most :data:`PARALLEL_QUERIES` run at once.
    """
    if db is None or not db.is_postgresql or len(jobs) < 2:
        parts = [await job(session) for job in jobs]
    else:
        more = asyncio.Semaphore(PARALLEL_QUERIES - 1)

        async def alone(job: Job) -> dict[str, FlowTotals]:
            async with more, config.reading(db) as own:
                return await job(own)

        first, *rest = jobs
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(first(session))]
            tasks += [group.create_task(alone(job)) for job in rest]
        parts = [task.result() for task in tasks]
    result: dict[str, FlowTotals] = {}
    for part in parts:
        for version, totals in part.items():
            result.setdefault(version, FlowTotals()).add(totals)
    return result


def event_jobs(
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    *,
    by_version: bool = False,
    detail: Detail = Detail.ALL,
    step_slices: int = 1,
    goals: Sequence[str] = (),
    reached: bool = True,
) -> list[Job]:
    """The queries giving the totals of the sessions started in ``[start, end)``.

    Args:
        step_slices: cut the steps' query into this many stretches of equal length.
        goals: with :attr:`Detail.ALL`, also count the completed sessions that reached
            each of these goals.
        reached: with :attr:`Detail.STEPS` or more, also count the sessions that reached
            each step and how long after their start (the funnel's figures: a second
            pass over the step events, :func:`_step_sessions`, and the offsets' sums).
            Without them each step's :attr:`StepTotals.sessions` and offsets stay 0.
    """
    jobs: list[Job] = [
        functools.partial(
            _session_totals, scope=scope, start=start, end=end, by_version=by_version,
            detail=detail, goals=goals if detail is Detail.ALL else (),
        )
    ]  # fmt: skip
    if detail >= Detail.STEPS:
        cuts = [start + (end - start) * k / step_slices for k in range(step_slices)] + [end]
        for low, high in itertools.pairwise(cuts):
            jobs.append(
                functools.partial(
                    _step_totals, scope=scope, start=low, end=high, by_version=by_version,
                    offsets=reached,
                )
            )  # fmt: skip
            if reached:
                jobs.append(
                    functools.partial(
                        _step_sessions, scope=scope, start=low, end=high, by_version=by_version
                    )
                )
    return jobs


# Snapshots ------------------------------------------------------------------------------


def snapshot_totals(
    snapshot: FlowMetricSnapshot | Row[Any],
    steps: Sequence[FlowStepMetricSnapshot | Row[Any]] = (),
) -> FlowTotals:
    """The totals a snapshot (and its step rows) stored, as objects or plain rows."""
    totals = FlowTotals(
        total=snapshot.total_sessions,
        completed=snapshot.completed_sessions,
        cancelled=snapshot.cancelled_sessions,
        nothing_to_do=snapshot.nothing_to_do_sessions,
        abandoned=snapshot.abandoned_sessions,
        error=snapshot.error_sessions,
        active=snapshot.active_sessions,
        duration_total=(snapshot.avg_duration_seconds or 0.0) * snapshot.completed_sessions,
        duration_count=snapshot.completed_sessions if snapshot.avg_duration_seconds else 0,
        errors=snapshot.total_errors,
        retries=snapshot.total_retries,
        retried_sessions=snapshot.retried_sessions,
        recovered_sessions=snapshot.recovered_sessions,
        handed_off=snapshot.handed_off_sessions,
        converted=snapshot.converted_sessions,
        returning=snapshot.returning_sessions,
    )
    for row in steps:
        totals.step(row.step_name).add(
            StepTotals(
                step_name=row.step_name,
                sessions=row.sessions,
                completed=row.completed,
                skipped=row.skipped,
                retries=row.retries,
                errors=row.errors,
                time_spent_total=row.time_spent_total,
                time_spent_count=row.time_spent_count,
                offset_total=(row.avg_offset_seconds or 0.0) * row.sessions,
                offset_count=row.sessions if row.avg_offset_seconds is not None else 0,
                abandoned_here=row.abandoned_here,
                errored_here=row.errored_here,
                handed_off_here=row.handed_off_here,
            )
        )
    return totals


@dataclass(slots=True, kw_only=True)
class Settled:
    """A settled daily snapshot's totals, and its sessions per goal (``None``: taken
    before snapshots kept them)."""

    totals: FlowTotals
    goals: dict[str, int] | None


async def _settled_daily_snapshots(
    session: AsyncSession, flow: str, period: Period, *, steps: bool
) -> dict[dt.date, Settled]:
    """The period's daily snapshots that are final: taken after the day ended, with no
    session of that day still open."""
    starts = {local_midnight(day, period.tz): day for day in period.each_day()}
    # Plain rows, not ORM objects: a 90-day range reads some 500 of them.
    snapshot = FlowMetricSnapshot.__table__.c
    rows = (
        await session.execute(
            select(*snapshot).where(
                snapshot.flow_name == flow,
                snapshot.flow_version == ALL_VERSIONS,
                snapshot.period == SnapshotPeriod.DAILY,
                snapshot.period_start >= period.start,
                snapshot.period_start < period.end,
                snapshot.active_sessions == 0,
                snapshot.created_at >= snapshot.period_end,
            )
        )
    ).all()
    found = {starts[row.period_start]: row for row in rows if row.period_start in starts}
    step_rows: dict[int, list[Row[Any]]] = {}
    if steps and found:
        step = FlowStepMetricSnapshot.__table__.c
        ids = [row.id for row in found.values()]
        for step_row in await session.execute(select(*step).where(step.snapshot_id.in_(ids))):
            step_rows.setdefault(step_row.snapshot_id, []).append(step_row)
    return {
        day: Settled(
            totals=snapshot_totals(row, step_rows.get(row.id, ())),
            goals=None if row.goal_sessions is None else dict(row.goal_sessions),
        )
        for day, row in found.items()
    }


def _runs(period: Period, covered: set[dt.date]) -> list[Period]:
    """The stretches of consecutive days of ``period`` not in ``covered``."""
    runs: list[Period] = []
    first: dt.date | None = None
    previous: dt.date | None = None
    for day in period.each_day():
        if day in covered:
            if first is not None and previous is not None:
                runs.append(Period(first_day=first, last_day=previous, tz=period.tz))
            first = None
        elif first is None:
            first = day
        previous = day
    if first is not None and previous is not None:
        runs.append(Period(first_day=first, last_day=previous, tz=period.tz))
    return runs


async def collect(
    session: AsyncSession,
    scope: Scope,
    period: Period,
    *,
    by_version: bool = False,
    detail: Detail = Detail.ALL,
    use_snapshots: bool = True,
    goals: Sequence[str] = (),
    db: Database | None = None,
    reached: bool = True,
) -> Collected:
    """The period's totals: settled daily snapshots where they exist, SQL elsewhere.

    Snapshots hold all versions together and no step/action filter, so a filtered or
    per-version report always reads the events.

    Args:
        goals: count the completed sessions that reached each of these goals (from the
            goal events over the whole period: snapshots keep only "any goal").
        db: the database ``session`` reads: on PostgreSQL the queries over the events
            then run at once (:func:`run_jobs`).
        reached: count the sessions that reached each step and how long after their
            start (:func:`event_jobs`); a report that reads neither (the KPIs) saves a
            pass over the step events. (Settled days' snapshots hold them anyway.)
    """
    covered: dict[dt.date, Settled] = {}
    if use_snapshots and not by_version and not scope.filtered:
        covered = await _settled_daily_snapshots(
            session, scope.flow, period, steps=detail >= Detail.STEPS
        )
    totals: dict[str, FlowTotals] = {}
    if covered:
        overall = totals.setdefault(ALL_VERSIONS, FlowTotals())
        for day in covered.values():
            overall.add(day.totals)
    runs = _runs(period, set(covered))
    # Settled days' goals from their snapshots, the other days' from the events; if a
    # settled day kept no goal counts (a snapshot from before they were kept), the whole
    # period's from the events.
    snapshot_goals = bool(goals and covered) and all(
        day.goals is not None for day in covered.values()
    )
    if snapshot_goals:
        overall = totals[ALL_VERSIONS]
        for day in covered.values():
            for goal in goals:
                overall.goals[goal] = overall.goals.get(goal, 0) + (day.goals or {}).get(goal, 0)
    # The sessions' statement counts the goals of the days it reads (no statement of
    # their own) when those are the days whose goals are wanted.
    in_events = detail is Detail.ALL and (snapshot_goals or not covered)
    slices = STEP_SLICES if db is not None and db.is_postgresql else 1
    jobs: list[Job] = []
    for run in runs:
        jobs += event_jobs(
            scope, run.start, run.end, by_version=by_version, detail=detail,
            step_slices=slices, goals=goals if in_events else (), reached=reached,
        )  # fmt: skip
    if goals and not in_events:
        windows = (
            [(run.start, run.end) for run in runs]
            if snapshot_goals
            else [(period.start, period.end)]
        )
        jobs += [
            functools.partial(
                goal_totals, scope=scope, start=start, end=end, goals=goals,
                by_version=by_version and not snapshot_goals,
            )
            for start, end in windows
        ]  # fmt: skip
    for version, version_totals in (await run_jobs(session, jobs, db=db)).items():
        totals.setdefault(version, FlowTotals()).add(version_totals)
    for version_totals in totals.values():
        for goal in goals:
            version_totals.goals.setdefault(goal, 0)
    return Collected(
        totals=totals, snapshot_days=len(covered), event_days=period.days - len(covered)
    )


async def flow_known(session: AsyncSession, flow: str) -> bool:
    """Whether any session of ``flow`` was ever recorded."""
    found = await session.scalar(
        select(FlowSession.id).where(FlowSession.flow_name == flow).limit(1)
    )
    return found is not None


async def known_flows(session: AsyncSession) -> list[str]:
    """The names of every flow with recorded sessions."""
    return list(
        await session.scalars(
            select(FlowSession.flow_name).distinct().order_by(FlowSession.flow_name)
        )
    )
