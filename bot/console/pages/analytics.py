"""Analytics pages: funnels (chart and state diagram), flow sessions, a session's
timeline, step events and metric snapshots. Reports come from :mod:`analytics`; lists
are bounded, indexed queries (a page of rows, never a count over all events)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import urllib.parse
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, and_, exists, func, or_, select

import analytics
from analytics.aggregates import goal_completed
from analytics.errors import AnalyticsError
from analytics.reports import ReportRows
from bot.console.charts import Series, bar_rows, line_chart
from bot.console.filters import PAGE_SIZE, Filters, day_start, page_of
from bot.console.funnel import funnel_diagram_svg
from bot.console.web import db_of, flow_app_of, id_in_path, notice, render
from flows import App
from storage import (
    Contact,
    FlowMetricSnapshot,
    FlowSession,
    FlowStepEvent,
    SessionOutcome,
    SessionStatus,
    SnapshotPeriod,
    StepAction,
)

routes = web.RouteTableDef()
PERIODS = ("1", "7", "30", "90")
TIMELINE_LIMIT = 500
CONTACT_MATCHES = 200
SORTS = {
    "started": FlowSession.started_at,
    "flow": FlowSession.flow_name,
    "status": FlowSession.status,
}


def flow_names(app: App) -> list[str]:
    """The app's flows, those of its main menu first (in menu order)."""
    menu = [item.flow for item in app.menu_items() if item.flow in app.flows]
    return list(dict.fromkeys([*(f for f in menu if f), *app.flows]))


def choose_flow(filters: Filters, app: App, *, required: bool = True) -> str | None:
    """The ``flow`` filter; by default the app's first flow."""
    names = flow_names(app)
    default = names[0] if names and required else None
    return filters.choice("flow", names, default=default)


ERROR_DAYS = 14


def error_window(days: int, start: dt.date | None, end: dt.date | None) -> dict[str, Any]:
    """The error analysis reads raw events (no snapshots), so it covers at most the last
    :data:`ERROR_DAYS` days of the period."""
    if start is None:
        return {"days": min(days, ERROR_DAYS), "limit": 15}
    last = end or dt.datetime.now(dt.UTC).date()
    return {"date_from": max(start, last - dt.timedelta(days=ERROR_DAYS - 1)), "date_to": end,
            "limit": 15}  # fmt: skip


def period(filters: Filters) -> tuple[int, dt.date | None, dt.date | None]:
    """Days (1, 7, 30, 90) or an explicit ``from``/``to`` range."""
    days = int(filters.choice("days", PERIODS, default="7") or "7")
    start = filters.date("from")
    end = filters.date("to")
    if start and end and start > end:
        notice(filters.request, "Ignored the dates: 'from' is after 'to'.")
        start = end = None
    return days, start, end


async def _contact_ids(request: web.Request, search: str) -> list[int]:
    """Contacts matching a phone number (digits, exact or prefix) or a name."""
    digits = re.sub(r"[\s+\-()]", "", search)
    if digits.isdigit():
        condition = or_(Contact.wa_id == digits, Contact.wa_id.like(f"{digits}%"))
    else:
        pattern = "%" + search.replace("%", "").replace("_", "") + "%"
        condition = Contact.profile_name.ilike(pattern)
    async with db_of(request).read() as session:
        return list(
            await session.scalars(select(Contact.id).where(condition).limit(CONTACT_MATCHES))
        )


# What "stopped here" counts (the funnel's drop-off): sessions that ended at the step.
STOPPED = (SessionStatus.ABANDONED, SessionStatus.ERROR)


def outcome_condition(outcome: SessionOutcome) -> ColumnElement[bool]:
    """Completed sessions with ``outcome``, as the reports count them."""
    if outcome is SessionOutcome.GOAL:
        return goal_completed()
    return and_(FlowSession.status == SessionStatus.COMPLETED, FlowSession.outcome == outcome)


def report_query(flow: str, days: int, start: dt.date | None, end: dt.date | None) -> str:
    """The query string of a drill-down from a report: its flow, its period and only
    the sessions reports count (no sandbox contacts)."""
    values = {"flow": flow, "live": "1"}
    if start is None:
        values["days"] = str(days)
    else:
        values["from"] = start.isoformat()
        if end is not None:
            values["to"] = end.isoformat()
    return urllib.parse.urlencode(values)


@routes.get("/funnel")
async def funnel_page(request: web.Request) -> web.StreamResponse:
    """A flow's funnel as bars and on its state diagram, with its errors."""
    app = flow_app_of(request)
    filters = Filters(request)
    flow = choose_flow(filters, app)
    days, start, end = period(filters)
    if flow is None:
        return render(request, "funnel.html", {"title": "Funnels", "flow": None, "flows": []})
    spec = app.flows[flow]
    db = db_of(request)
    shared: dict[str, Any] = {"db": db, "tz": app.timezone}
    options: dict[str, Any] = {"date_from": start, "date_to": end, **shared}
    try:
        steps, errors, completion = await asyncio.gather(
            analytics.get_step_funnel(flow, days, steps=list(spec.steps), **options),
            analytics.get_error_analysis(flow, **error_window(days, start, end), **shared),
            analytics.get_flow_completion_rate(flow, days, **options),
        )
    except AnalyticsError as exc:
        notice(request, f"No report: {exc}")
        steps, errors, completion = ReportRows(), ReportRows(), None
    for note in getattr(steps, "notes", []):
        notice(request, note)
    top = max((row["sessions"] for row in steps), default=0)
    # Every figure links to exactly the sessions it counts: same flow, same local days,
    # no sandbox contacts.
    query = report_query(flow, days, start, end)
    bars = bar_rows(
        [
            (
                row["step_name"],
                float(row["sessions"]),
                f"{row['sessions']} · {row['percentage']:.0f}%",
                "/console/sessions?"
                + urllib.parse.urlencode({"reached": row["step_name"]})
                + "&"
                + query,
            )
            for row in steps
        ],
        scale=float(top),
    )
    diagram = await funnel_diagram_svg(
        spec, {row["step_name"]: row for row in steps}, link="/console/sessions", query=query
    )
    return render(
        request,
        "funnel.html",
        {
            "title": "Funnels",
            "flow": flow,
            "flows": flow_names(app),
            "days": days,
            "start": start.isoformat() if start else "",
            "end": end.isoformat() if end else "",
            "steps": steps,
            "errors": errors,
            "errors_capped": (
                days > ERROR_DAYS
                if start is None
                else ((end or dt.datetime.now(dt.UTC).date()) - start).days >= ERROR_DAYS
            ),
            "error_days": ERROR_DAYS,
            "completion": completion,
            "report_query": query,
            "bars": bars,
            "diagram": diagram,
        },
    )


@routes.get("/sessions")
async def sessions_list(request: web.Request) -> web.StreamResponse:
    """Flow sessions: filter by status, flow, dates, step stopped at; search a contact."""
    app = flow_app_of(request)
    filters = Filters(request)
    status = filters.choice("status", [s.value for s in SessionStatus])
    outcome = filters.choice("outcome", [o.value for o in SessionOutcome])
    flow = choose_flow(filters, app, required=False)
    stopped_at = filters.text("stopped_at", max_length=100)
    reached = filters.text("reached", max_length=100)
    live = filters.choice("live", ["1"]) == "1"
    start = filters.date("from")
    end = filters.date("to")
    days = filters.choice("days", PERIODS)
    search = filters.text("q", max_length=60)
    sort = filters.choice("sort", list(SORTS), default="started") or "started"
    direction = filters.choice("dir", ["asc", "desc"], default="desc") or "desc"
    number = filters.page()
    query = select(FlowSession, Contact).join(Contact, Contact.id == FlowSession.contact_id)
    if status:
        query = query.where(FlowSession.status == SessionStatus(status))
    if flow:
        query = query.where(FlowSession.flow_name == flow)
    if outcome:
        query = query.where(outcome_condition(SessionOutcome(outcome)))
    if stopped_at:
        # The funnel's "stopped here": sessions that ended at the step.
        query = query.where(
            FlowSession.current_step == stopped_at, FlowSession.status.in_(STOPPED)
        )
    if reached:
        # The funnel's "reached": an entered or a skipped event at the step.
        query = query.where(
            exists().where(
                FlowStepEvent.session_id == FlowSession.id,
                FlowStepEvent.step_name == reached,
                FlowStepEvent.action.in_((StepAction.ENTERED, StepAction.SKIPPED)),
            )
        )
    if live:
        query = query.where(Contact.sandbox.is_(False))
    if days and not start:
        start = app.today(dt.datetime.now(dt.UTC)) - dt.timedelta(days=int(days) - 1)
    tz = app.timezone
    if start:
        query = query.where(FlowSession.started_at >= day_start(start, tz))
    if end:
        query = query.where(FlowSession.started_at < day_start(end + dt.timedelta(days=1), tz))
    if search:
        ids = await _contact_ids(request, search)
        query = query.where(FlowSession.contact_id.in_(ids or [-1]))
    column = SORTS[sort]
    ordering: list[Any] = [column.asc() if direction == "asc" else column.desc()]
    ordering.append(FlowSession.id.asc() if direction == "asc" else FlowSession.id.desc())
    query = query.order_by(*ordering).limit(PAGE_SIZE + 1).offset((number - 1) * PAGE_SIZE)
    async with db_of(request).read() as session:
        rows = list((await session.execute(query)).all())
    return render(
        request,
        "sessions.html",
        {
            "title": "Flow sessions",
            "rows": rows,
            "page": page_of(filters, rows, number),
            "filters": filters,
            "flows": flow_names(app),
            "statuses": [s.value for s in SessionStatus],
            "status": status or "",
            "outcomes": [o.value for o in SessionOutcome],
            "outcome": outcome or "",
            "flow": flow or "",
            "stopped_at": stopped_at or "",
            "reached": reached or "",
            "live": live,
            "timezone": str(tz),
            "start": start.isoformat() if start else "",
            "end": end.isoformat() if end else "",
            "q": search or "",
            "sort": sort,
            "dir": direction,
        },
    )


@routes.get("/sessions/{session_id:[0-9]{1,18}}")
async def session_timeline(request: web.Request) -> web.StreamResponse:
    """A session replayed: every step event with its time, input, output and error."""
    session_id = id_in_path(request, "session_id")
    async with db_of(request).read() as session:
        found = await session.get(FlowSession, session_id)
        if found is None:
            raise web.HTTPNotFound
        contact = await session.get(Contact, found.contact_id)
        events = list(
            await session.scalars(
                select(FlowStepEvent)
                .where(FlowStepEvent.session_id == session_id)
                .order_by(FlowStepEvent.timestamp, FlowStepEvent.id)
                .limit(TIMELINE_LIMIT + 1)
            )
        )
        others = list(
            await session.scalars(
                select(FlowSession)
                .where(FlowSession.contact_id == found.contact_id, FlowSession.id != session_id)
                .order_by(FlowSession.started_at.desc())
                .limit(10)
            )
        )
    truncated = len(events) > TIMELINE_LIMIT
    del events[TIMELINE_LIMIT:]
    spent = sum(e.time_spent or 0.0 for e in events)
    steps = {e.step_name for e in events}
    return render(
        request,
        "session.html",
        {
            "title": f"Session {session_id}",
            "s": found,
            "contact": contact,
            "events": events,
            "truncated": truncated,
            "spent": spent,
            "step_count": len(steps),
            "retries": sum(1 for e in events if e.action is StepAction.RETRY),
            "others": others,
        },
    )


@routes.get("/events")
async def events_list(request: web.Request) -> web.StreamResponse:
    """Step events, newest first: filter by step, action, flow and dates."""
    app = flow_app_of(request)
    filters = Filters(request)
    flow = choose_flow(filters, app, required=False)
    steps = sorted({s for spec in app.flows.values() for s in spec.steps})
    step = filters.text("step", max_length=100)
    if step and step not in steps:
        notice(request, f"No flow has a step {step!r}; showing nothing for it.")
    action = filters.choice("action", [a.value for a in StepAction])
    start = filters.date("from")
    end = filters.date("to")
    number = filters.page()
    query = select(FlowStepEvent, FlowSession.flow_name, FlowSession.contact_id).join(
        FlowSession, FlowSession.id == FlowStepEvent.session_id
    )
    conditions = []
    if flow:
        conditions.append(FlowSession.flow_name == flow)
    if step:
        conditions.append(FlowStepEvent.step_name == step)
    if action:
        conditions.append(FlowStepEvent.action == StepAction(action))
    if start:
        conditions.append(FlowStepEvent.timestamp >= day_start(start, app.timezone))
    if end:
        conditions.append(
            FlowStepEvent.timestamp < day_start(end + dt.timedelta(days=1), app.timezone)
        )
    if conditions:
        query = query.where(and_(*conditions))
    query = (
        query.order_by(FlowStepEvent.id.desc())
        .limit(PAGE_SIZE + 1)
        .offset((number - 1) * PAGE_SIZE)
    )
    async with db_of(request).read() as session:
        rows = list((await session.execute(query)).all())
    return render(
        request,
        "events.html",
        {
            "title": "Step events",
            "rows": rows,
            "page": page_of(filters, rows, number),
            "flows": flow_names(app),
            "steps": steps,
            "actions": [a.value for a in StepAction],
            "flow": flow or "",
            "step": step or "",
            "action": action or "",
            "start": start.isoformat() if start else "",
            "end": end.isoformat() if end else "",
        },
    )


def _label(moment: dt.datetime, kind: SnapshotPeriod, app: App) -> str:
    day = moment.astimezone(app.timezone).date()
    if kind is SnapshotPeriod.MONTHLY:
        return day.strftime("%b %Y")
    return day.strftime("%d %b")


@routes.get("/snapshots")
async def snapshots_page(request: web.Request) -> web.StreamResponse:
    """Stored metric snapshots of a flow, as trend charts and a table."""
    app = flow_app_of(request)
    filters = Filters(request)
    flow = choose_flow(filters, app)
    kind = SnapshotPeriod(
        filters.choice("period", [p.value for p in SnapshotPeriod], default="daily") or "daily"
    )
    start = filters.date("from")
    end = filters.date("to")
    rows = []
    if flow is not None:
        rows = await analytics.list_snapshots(
            flow,
            kind,
            date_from=start,
            date_to=end,
            limit=120,
            db=db_of(request),
            tz=app.timezone,
        )
    labels = [_label(r.period_start, kind, app) for r in rows]
    completion = [
        100.0 * r.completed_sessions / r.total_sessions if r.total_sessions else None for r in rows
    ]
    errors: list[float | None] = [r.error_rate for r in rows]
    return render(
        request,
        "snapshots.html",
        {
            "title": "Snapshots",
            "flow": flow,
            "flows": flow_names(app),
            "period": kind.value,
            "periods": [p.value for p in SnapshotPeriod],
            "start": start.isoformat() if start else "",
            "end": end.isoformat() if end else "",
            "rows": list(reversed(rows)),
            "rates_chart": line_chart(
                labels,
                [Series("Completion rate", completion), Series("Error rate", errors)],
                unit="%",
                target=80.0,
                title="Completion and error rate",
            ),
            "sessions_chart": line_chart(
                labels,
                [
                    Series("Sessions", [float(r.total_sessions) for r in rows]),
                    Series("Completed", [float(r.completed_sessions) for r in rows]),
                ],
                title="Sessions",
            ),
            "duration_chart": line_chart(
                labels,
                [Series("Average duration", [r.avg_duration_seconds for r in rows])],
                unit="s",
                target=300.0,
                title="Average flow duration",
            ),
        },
    )


async def snapshot_trend(request: web.Request, flow: str, days: int = 30) -> dict[str, Any]:
    """The dashboard's trend charts of ``flow`` from its daily snapshots."""
    app = flow_app_of(request)
    today = app.today(dt.datetime.now(dt.UTC))
    rows = await analytics.list_snapshots(
        flow,
        SnapshotPeriod.DAILY,
        date_from=today - dt.timedelta(days=days),
        limit=days + 1,
        db=db_of(request),
        tz=app.timezone,
    )
    labels = [_label(r.period_start, SnapshotPeriod.DAILY, app) for r in rows]
    completion = [
        100.0 * r.completed_sessions / r.total_sessions if r.total_sessions else None for r in rows
    ]
    errors: list[float | None] = [r.error_rate for r in rows]
    return {
        "count": len(rows),
        "completion": line_chart(
            labels,
            [Series("Completion rate", completion)],
            unit="%",
            target=80.0,
            title="Completion rate",
        ),
        "errors": line_chart(
            labels, [Series("Error rate", errors)], unit="%", target=10.0, title="Error rate"
        ),
        "sessions": line_chart(
            labels,
            [Series("Sessions", [float(r.total_sessions) for r in rows])],
            title="Sessions per day",
        ),
    }


async def active_flows(request: web.Request, since: dt.date) -> set[str]:
    """Flows with sessions since ``since``: those with a daily snapshot in the period,
    and those with a session today (a small, indexed range), without scanning events."""
    app = flow_app_of(request)
    today = day_start(app.today(dt.datetime.now(dt.UTC)), app.timezone)
    async with db_of(request).read() as session:
        snapshotted = await session.scalars(
            select(FlowMetricSnapshot.flow_name)
            .where(
                FlowMetricSnapshot.period == SnapshotPeriod.DAILY,
                FlowMetricSnapshot.period_start >= day_start(since, app.timezone),
                FlowMetricSnapshot.total_sessions > 0,
            )
            .distinct()
        )
        recent = await session.scalars(
            select(FlowSession.flow_name)
            .where(FlowSession.started_at >= today - dt.timedelta(days=1))
            .distinct()
        )
        return set(snapshotted) | set(recent)


async def bounded_count(request: web.Request, query: Any, cap: int = 1000) -> int:
    """``count(*)`` of at most ``cap`` rows (for badges: stops early on big tables)."""
    async with db_of(request).read() as session:
        value = await session.scalar(select(func.count()).select_from(query.limit(cap).subquery()))
    return int(value or 0)
