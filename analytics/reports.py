"""Flow reports: completion rate, step funnel and error analysis (the seed's names).

Every report is a few SQL aggregations (SQLAlchemy Core, the same on SQLite and
PostgreSQL) over the sessions of one flow that *started* in the period, whole calendar
days in the business's timezone. Long ranges read settled daily snapshots
(:mod:`analytics.snapshots`) and aggregate only the days they do not cover.

Usage, as in the original requirements::

    metrics = await get_flow_completion_rate("order_flow", days=7)
    print(f"Completion rate: {metrics['completion_rate']}%")
    for step in await get_step_funnel("order_flow", days=7):
        print(f"{step['step_name']}: {step['percentage']}%")
    for error in await get_error_analysis("order_flow", days=7):
        print(f"{error['step_name']}: {error['count']} errors")

Filters, on every report: ``date_from``/``date_to`` instead of ``days``; ``step`` and
``action`` (completion and funnel: only sessions with such an event; error analysis:
only such rows); ``by_version`` reports each flow version separately.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Generic, NotRequired, TypedDict, TypeVar

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from analytics import config
from analytics.aggregates import (
    Collected,
    Detail,
    FlowTotals,
    Scope,
    collect,
    flow_known,
    grouping,
    known_flows,
    session_conditions,
    version_column,
)
from analytics.errors import AnalyticsError
from analytics.expressions import error_kind
from analytics.periods import Period, resolve_period
from analytics.snapshots import (
    generate_daily_snapshot,
    generate_monthly_snapshot,
    generate_weekly_snapshot,
)
from storage import Database, FlowSession, FlowStepEvent, StepAction

T = TypeVar("T")


class ReportRows(list[T], Generic[T]):
    """A report's rows, plus notes for the reader (e.g. "unknown flow")."""

    def __init__(self, rows: Sequence[T] = (), notes: Sequence[str] = ()) -> None:
        super().__init__(rows)
        self.notes: list[str] = list(notes)


class PeriodInfo(TypedDict):
    """The local days a report covers."""

    date_from: str
    date_to: str
    days: int
    timezone: str


class Source(TypedDict):
    """How many days came from snapshots and how many from the events."""

    snapshot_days: int
    event_days: int


class StatusCounts(TypedDict):
    """Sessions per status, completed ones per outcome."""

    active: int
    completed: int
    cancelled: int
    nothing_to_do: int
    abandoned: int
    error: int


class CompletionReport(TypedDict):
    """The result of :func:`get_flow_completion_rate`."""

    flow: str
    flow_version: NotRequired[str]
    period: PeriodInfo
    total_sessions: int
    completed_sessions: int
    cancelled_sessions: int
    nothing_to_do_sessions: int
    abandoned_sessions: int
    error_sessions: int
    active_sessions: int
    statuses: StatusCounts
    completion_rate: float
    cancellation_rate: float
    abandonment_rate: float
    error_rate: float
    avg_duration_seconds: float | None
    source: Source
    notes: list[str]
    versions: NotRequired[list[CompletionReport]]


class FunnelStep(TypedDict):
    """One row of :func:`get_step_funnel`."""

    step_name: str
    flow_version: NotRequired[str]
    sessions: int
    percentage: float
    drop_off: int
    drop_off_rate: float
    completed: int
    skipped: int
    retries: int
    errors: int
    avg_time_spent: float | None
    abandoned_here: int


class ErrorRow(TypedDict):
    """One row of :func:`get_error_analysis`: one kind of error at one step."""

    step_name: str
    flow_version: NotRequired[str]
    action: str
    error_type: str
    count: int
    sessions: int
    examples: list[str]
    example_input: str | None
    inputs: list[str]
    last_seen: str | None


def percent(part: float, whole: float) -> float:
    """``part`` as a percentage of ``whole``, two decimals; 0 when ``whole`` is 0."""
    return round(100.0 * part / whole, 2) if whole else 0.0


def rounded(value: float | None, digits: int = 2) -> float | None:
    """``value`` rounded, keeping ``None``."""
    return None if value is None else round(value, digits)


def period_info(period: Period) -> PeriodInfo:
    """The period as plain values."""
    return {
        "date_from": period.first_day.isoformat(),
        "date_to": period.last_day.isoformat(),
        "days": period.days,
        "timezone": str(period.tz),
    }


def parse_action(action: StepAction | str | None) -> StepAction | None:
    """``action`` as a :class:`StepAction`.

    Raises:
        AnalyticsError: not one of the step actions.
    """
    if action is None:
        return None
    try:
        return StepAction(action)
    except ValueError:
        choices = ", ".join(a.value for a in StepAction)
        raise AnalyticsError(f"unknown action {action!r}: use one of {choices}") from None


async def empty_notes(session: AsyncSession, flow: str, period: Period, total: int) -> list[str]:
    """Notes for a report with no sessions: an unknown flow, or a quiet period."""
    if total:
        return []
    if not await flow_known(session, flow):
        flows = await known_flows(session)
        known = f"; flows with sessions: {', '.join(flows)}" if flows else ""
        return [f"no sessions of flow {flow!r} have ever been recorded{known}"]
    return [f"no sessions of {flow!r} started in {period.describe()}"]


def _completion(
    flow: str, period: Period, totals: FlowTotals, source: Source, notes: list[str]
) -> CompletionReport:
    started = totals.total
    return {
        "flow": flow,
        "period": period_info(period),
        "total_sessions": totals.total,
        "completed_sessions": totals.completed,
        "cancelled_sessions": totals.cancelled,
        "nothing_to_do_sessions": totals.nothing_to_do,
        "abandoned_sessions": totals.abandoned,
        "error_sessions": totals.error,
        "active_sessions": totals.active,
        "statuses": {
            "active": totals.active,
            "completed": totals.completed,
            "cancelled": totals.cancelled,
            "nothing_to_do": totals.nothing_to_do,
            "abandoned": totals.abandoned,
            "error": totals.error,
        },
        "completion_rate": percent(totals.completed, started),
        "cancellation_rate": percent(totals.cancelled, started),
        "abandonment_rate": percent(totals.abandoned, started),
        "error_rate": percent(totals.error, started),
        "avg_duration_seconds": rounded(totals.avg_duration),
        "source": source,
        "notes": notes,
    }


def versions_in_order(collected: Collected) -> list[tuple[str, FlowTotals]]:
    """Versions in the order they first appeared."""
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(collected.totals.items(), key=lambda item: item[1].first_started or far)


async def get_flow_completion_rate(
    flow: str,
    days: int = 7,
    *,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    step: str | None = None,
    action: StepAction | str | None = None,
    by_version: bool = False,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
    now: dt.datetime | None = None,
    use_snapshots: bool = True,
    include_sandbox: bool = False,
) -> CompletionReport:
    """How many of a flow's sessions completed, and how the others ended.

    Args:
        flow: the flow's name, e.g. ``"order_flow"``.
        days: the last ``days`` calendar days, today included (ignored with
            ``date_from``).
        date_from: first day (inclusive) in the business's timezone.
        date_to: last day (inclusive); default today.
        step: only sessions with an event at this step.
        action: only sessions with an event of this action (at ``step`` if given).
        by_version: add ``versions``, the same figures per flow version.
        db: the database (default: :func:`analytics.using`'s or ``DATABASE_URL``).
        tz: the business's timezone (default: :func:`analytics.using`'s, else UTC).
        now: the current time (for tests).
        use_snapshots: read settled daily snapshots where they exist.
        include_sandbox: count sandbox contacts' sessions too (the console's chat
            simulator; left out by default). Snapshots never hold them, so this reads
            the events.

    Returns:
        ``completion_rate`` in % (completed / sessions started), counts per status
        (also in ``statuses``), ``avg_duration_seconds`` of completed sessions,
        ``error_rate`` (sessions ended in error, %), the ``period`` and ``notes``.

    Raises:
        PeriodError: a reversed, empty or absurdly long range.
        AnalyticsError: an unknown action.
    """
    period = resolve_period(
        days=days, date_from=date_from, date_to=date_to, tz=config.timezone(tz), now=now
    )
    scope = Scope(
        flow=flow, step=step, action=parse_action(action), include_sandbox=include_sandbox
    )
    async with config.database(db) as database, config.reading(database) as session:
        collected = await collect(
            session,
            scope,
            period,
            by_version=by_version,
            detail=Detail.SESSIONS,
            use_snapshots=use_snapshots,
            db=database,
        )
        overall = collected.overall
        notes = await empty_notes(session, flow, period, overall.total)
    source: Source = {
        "snapshot_days": collected.snapshot_days,
        "event_days": collected.event_days,
    }
    report = _completion(flow, period, overall, source, notes)
    if by_version:
        versions: list[CompletionReport] = []
        for version, totals in versions_in_order(collected):
            part = _completion(flow, period, totals, source, [])
            part["flow_version"] = version
            versions.append(part)
        report["versions"] = versions
    return report


def step_order(totals: FlowTotals, steps: Sequence[str] | None) -> list[str]:
    """The funnel's steps: ``steps`` (the flow's order) first, then any other step a
    session reached, in the order they were first seen (snapshots, which do not keep
    that, by the mean time from the session's start)."""
    order = list(dict.fromkeys(steps or ()))
    seen = set(order)
    extra = [s for s in totals.steps.values() if s.step_name not in seen and s.sessions > 0]
    far = float("inf")
    extra.sort(
        key=lambda s: (
            s.first_seen if s.first_seen is not None else far,
            s.avg_offset if s.avg_offset is not None else far,
            s.step_name,
        )
    )
    return order + [s.step_name for s in extra]


def funnel_rows(totals: FlowTotals, steps: Sequence[str] | None) -> list[FunnelStep]:
    """The funnel of ``totals`` in flow order (see :func:`step_order`).

    ``percentage`` is of the sessions started in the period, so it never exceeds 100
    whatever the order or branches; ``drop_off`` counts the sessions that ended at the
    step (abandoned or in error), so it is never negative and is exactly the list the
    console links to ("2 stopped here").
    """
    rows: list[FunnelStep] = []
    for name in step_order(totals, steps):
        step = totals.steps.get(name)
        sessions = step.sessions if step else 0
        stopped = (step.abandoned_here + step.errored_here) if step else 0
        rows.append(
            {
                "step_name": name,
                "sessions": sessions,
                "percentage": percent(sessions, max(totals.total, sessions)),
                "drop_off": stopped,
                "drop_off_rate": percent(stopped, max(sessions, stopped)),
                "completed": step.completed if step else 0,
                "skipped": step.skipped if step else 0,
                "retries": step.retries if step else 0,
                "errors": step.errors if step else 0,
                "avg_time_spent": rounded(step.avg_time_spent) if step else None,
                "abandoned_here": step.abandoned_here if step else 0,
            }
        )
    return rows


async def get_step_funnel(
    flow: str,
    days: int = 7,
    *,
    steps: Sequence[str] | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    step: str | None = None,
    action: StepAction | str | None = None,
    by_version: bool = False,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
    now: dt.datetime | None = None,
    use_snapshots: bool = True,
    include_sandbox: bool = False,
) -> ReportRows[FunnelStep]:
    """How many sessions reached each step, in flow order, and where they dropped off.

    Args:
        steps: the flow's steps in order; default: the order the context declares
            (:func:`analytics.using`'s ``flow_steps``: a running app's flow files), else
            the order steps were first seen.
        The other arguments are those of :func:`get_flow_completion_rate`.

    Returns:
        One row per step: ``step_name``, ``sessions`` (distinct sessions that reached it:
        entered it, or skipped it), ``percentage`` of the sessions started in the period
        (at most 100), ``drop_off`` (sessions that ended there, abandoned or in error;
        never negative) and its rate, the step's completions, skips, retries, errors,
        mean time and abandonments. With
        ``by_version`` each version's rows follow each other, with ``flow_version``.
        ``rows.notes`` explains an empty result.
    """
    period = resolve_period(
        days=days, date_from=date_from, date_to=date_to, tz=config.timezone(tz), now=now
    )
    scope = Scope(
        flow=flow, step=step, action=parse_action(action), include_sandbox=include_sandbox
    )
    async with config.database(db) as database, config.reading(database) as session:
        collected = await collect(
            session,
            scope,
            period,
            by_version=by_version,
            detail=Detail.STEPS,
            use_snapshots=use_snapshots,
            db=database,
        )
        overall = collected.overall
        notes = await empty_notes(session, flow, period, overall.total)
    if not overall.total:
        return ReportRows([], notes)
    if steps is None:
        steps = config.current().flow_steps.get(flow)
    if not by_version:
        return ReportRows(funnel_rows(overall, steps), notes)
    rows: list[FunnelStep] = []
    for version, totals in versions_in_order(collected):
        for row in funnel_rows(totals, steps):
            row["flow_version"] = version
            rows.append(row)
    return ReportRows(rows, notes)


ERROR_ACTIONS = (StepAction.ERROR, StepAction.RETRY)
# Error analysis shows a few of the answers that were rejected, each cut short: enough to
# see what customers typed, never a whole pasted paragraph.
INPUT_EXAMPLES = 3
EXAMPLE_CHARS = 40


def shortened(text: str | None, limit: int = EXAMPLE_CHARS) -> str | None:
    """``text`` on one line and at most ``limit`` characters (an ellipsis marks a cut)."""
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


async def get_error_analysis(
    flow: str,
    days: int = 7,
    *,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    step: str | None = None,
    action: StepAction | str | None = None,
    by_version: bool = False,
    limit: int = 100,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
    now: dt.datetime | None = None,
    include_sandbox: bool = False,
) -> ReportRows[ErrorRow]:
    """What went wrong where: errors and rejected answers per step and type.

    Events are grouped by their ``error_code`` (a rejection's copy key such as
    ``integer.too_large``, an exception's type); events without one by the exception's
    type (the message up to its first ``:``) for ``error`` events and by the reason the
    user was given for ``retry`` events.

    Args:
        step: only this step's rows.
        action: only ``error`` or only ``retry`` rows.
        limit: at most this many rows, the most frequent first.
        The other arguments are those of :func:`get_flow_completion_rate`.

    Returns:
        Rows of ``step_name``, ``action``, ``error_type``, ``count`` (events),
        ``sessions`` (distinct sessions), up to two ``examples`` of the message, an
        ``example_input``, ``inputs`` (up to three of the latest distinct answers given,
        each shortened to 40 characters) and ``last_seen`` (ISO time), most frequent
        first.

    Raises:
        AnalyticsError: ``action`` is not ``error`` or ``retry``.
    """
    period = resolve_period(
        days=days, date_from=date_from, date_to=date_to, tz=config.timezone(tz), now=now
    )
    wanted = parse_action(action)
    if wanted is not None and wanted not in ERROR_ACTIONS:
        raise AnalyticsError(f"error analysis covers error and retry events, not {wanted}")
    actions = (wanted,) if wanted else ERROR_ACTIONS
    event = FlowStepEvent
    # An error's type is its exception; a retry's is the reason the user was given.
    exception: ColumnElement[str] = func.coalesce(
        func.nullif(error_kind(event.error_message), ""), literal("unknown")
    )
    reason: ColumnElement[str] = func.coalesce(
        func.nullif(event.error_message, ""), literal("invalid answer")
    )
    # Grouped by the stable code when the event has one (the copy key of a rejection, the
    # exception's type): the text may quote what the customer typed.
    grouped_type = func.coalesce(
        func.nullif(event.error_code, ""),
        case((event.action == StepAction.ERROR, exception), else_=reason),
    )
    # The window's sessions as an IN list: both planners then start from the few
    # error/retry events (the (action, timestamp) index) instead of probing them once per
    # session (SQLite's choice for a plain join).
    window = select(FlowSession.id).where(
        *session_conditions(
            Scope(flow=flow, include_sandbox=include_sandbox), period.start, period.end
        )
    )
    query = select(
        version_column(by_version).label("version"),
        event.step_name,
        event.action,
        grouped_type.label("error_type"),
        func.count().label("count"),
        func.count(func.distinct(event.session_id)).label("sessions"),
        func.min(event.error_message).label("first_example"),
        func.max(event.error_message).label("last_example"),
        func.max(event.input_value).label("example_input"),
        func.max(event.timestamp).label("last_seen"),
    ).select_from(event)
    if by_version:
        query = query.join(FlowSession, FlowSession.id == event.session_id)
    query = (
        query.where(
            event.session_id.in_(window),
            event.action.in_(actions),
            # Events follow their session's start: lets the (action, timestamp) index
            # find the rare error rows without visiting the rest.
            event.timestamp >= period.start,
        )
        .group_by(*grouping(by_version), event.step_name, event.action, grouped_type)
        .order_by(func.count().desc(), event.step_name, grouped_type)
        .limit(limit)
    )
    if step is not None:
        query = query.where(event.step_name == step)
    # The latest distinct inputs of each group, a few per group (a window function: the
    # same on SQLite and PostgreSQL).
    keys = [*grouping(by_version), event.step_name, event.action, grouped_type]
    per_input = (
        select(
            version_column(by_version).label("version"),
            event.step_name.label("step_name"),
            event.action.label("action"),
            grouped_type.label("error_type"),
            event.input_value.label("input_value"),
            func.max(event.timestamp).label("latest"),
        )
        .select_from(event)
        .where(
            event.session_id.in_(window),
            event.action.in_(actions),
            event.timestamp >= period.start,
            event.input_value.is_not(None),
            event.input_value != "",
        )
        .group_by(*keys, event.input_value)
    )
    if by_version:
        per_input = per_input.join(FlowSession, FlowSession.id == event.session_id)
    if step is not None:
        per_input = per_input.where(event.step_name == step)
    inner = per_input.subquery()
    ranked = select(
        inner,
        func.row_number()
        .over(
            partition_by=[inner.c.version, inner.c.step_name, inner.c.action, inner.c.error_type],
            order_by=[inner.c.latest.desc(), inner.c.input_value],
        )
        .label("rank"),
    ).subquery()
    inputs_query = select(ranked).where(ranked.c.rank <= INPUT_EXAMPLES).order_by(ranked.c.rank)
    async with config.database(db) as database, config.reading(database) as session:
        result = (await session.execute(query)).mappings().all()
        inputs: dict[tuple[str, str, str, str], list[str]] = {}
        if result:
            for r in (await session.execute(inputs_query)).mappings():
                key = (r["version"], r["step_name"], str(StepAction(r["action"])), r["error_type"])
                inputs.setdefault(key, []).append(shortened(r["input_value"]) or "")
        notes: list[str] = []
        if not result:
            if not await flow_known(session, flow):
                notes = await empty_notes(session, flow, period, 0)
            else:
                notes = [f"no errors or retries in {flow!r} in {period.describe()}"]
    rows: list[ErrorRow] = []
    for r in result:
        examples = [
            shortened(e, 120) or ""
            for e in dict.fromkeys((r["first_example"], r["last_example"]))
            if e
        ]
        action_name = str(StepAction(r["action"]))
        last_seen: dt.datetime | None = r["last_seen"]
        if last_seen is not None and last_seen.tzinfo is None:
            last_seen = last_seen.replace(tzinfo=dt.UTC)
        row: ErrorRow = {
            "step_name": r["step_name"],
            "action": action_name,
            "error_type": r["error_type"],
            "count": int(r["count"]),
            "sessions": int(r["sessions"]),
            "examples": examples,
            "example_input": shortened(r["example_input"]),
            "inputs": inputs.get((r["version"], r["step_name"], action_name, r["error_type"]), []),
            "last_seen": last_seen.astimezone(period.tz).isoformat() if last_seen else None,
        }
        if by_version:
            row["flow_version"] = r["version"]
        rows.append(row)
    return ReportRows(rows, notes)


__all__ = [
    "CompletionReport",
    "ErrorRow",
    "FunnelStep",
    "ReportRows",
    "generate_daily_snapshot",
    "generate_monthly_snapshot",
    "generate_weekly_snapshot",
    "get_error_analysis",
    "get_flow_completion_rate",
    "get_step_funnel",
]
