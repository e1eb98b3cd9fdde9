"""The dashboard: KPIs against their targets, trends, and what needs attention now."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from aiohttp import web
from sqlalchemy import select

import analytics
from analytics.errors import AnalyticsError
from bot.console.filters import Filters
from bot.console.page import Attention
from bot.console.pages.analytics import (
    active_flows,
    bounded_count,
    choose_flow,
    flow_names,
    period,
    report_query,
    snapshot_trend,
)
from bot.console.web import PREFIX, db_of, flow_app_of, notice, pages_of, render
from documents.formatting import format_duration
from storage import Conversation, OutboundMessage, OutboundStatus, utcnow

routes = web.RouteTableDef()


def kpi_text(kpi: dict[str, Any]) -> str:
    """A KPI's value as the card shows it."""
    value = kpi["value"]
    if value is None:
        return "—"
    if kpi["name"] == "top_abandonment_points":
        return ", ".join(f"{row['step_name']} ({row['sessions']})" for row in value) or "none"
    if kpi["unit"] == "%":
        return f"{value:.1f} %"
    if kpi["unit"] == "s":
        return format_duration(float(value))
    return str(value)


@routes.get("/")
async def dashboard(request: web.Request) -> web.StreamResponse:
    """KPIs of a flow over a period, trend charts from snapshots, and today's queue."""
    app = flow_app_of(request)
    filters = Filters(request)
    flow = choose_flow(filters, app)
    days, start, end = period(filters)
    db = db_of(request)
    report = None
    overview: list[dict[str, Any]] = []
    quiet: list[str] = []
    trend: dict[str, Any] = {}
    # The queue's counts, the trend charts and the reports are independent: each runs on
    # its own connection, so PostgreSQL works on them in parallel.
    app_cards = asyncio.gather(
        *(page.attention(request) for page in pages_of(request) if page.attention is not None)
    )
    counts = asyncio.gather(
        bounded_count(
            request,
            select(Conversation.contact_id).where(Conversation.handed_off_at.is_not(None)),
        ),
        bounded_count(
            request,
            select(OutboundMessage.id).where(OutboundMessage.status == OutboundStatus.FAILED),
        ),
    )
    if flow is not None:
        options: dict[str, Any] = {
            "date_from": start,
            "date_to": end,
            "db": db,
            "tz": app.timezone,
        }
        active = await active_flows(
            request, start or app.today(utcnow()) - dt.timedelta(days=days)
        )
        shown = [name for name in flow_names(app) if name in active or name == flow]
        quiet = [name for name in flow_names(app) if name not in shown]
        reports = asyncio.gather(
            analytics.get_kpis(flow, days, goals=app.goals.values(), **options),
            *(analytics.get_flow_completion_rate(name, days, **options) for name in shown),
        )
        trend_task = snapshot_trend(request, flow)
        try:
            (report, *rows), trend = await asyncio.gather(reports, trend_task)
            overview = [
                {**row, "query": report_query(row["flow"], days, start, end)} for row in rows
            ]
        except AnalyticsError as exc:
            notice(request, f"No report: {exc}")
    conversations, failed = await counts
    attention = [
        *(card for card in await app_cards if card is not None),
        Attention(
            "Customers waiting for a person",
            conversations,
            "reply or give back to the bot",
            PREFIX + "/conversations",
        ),
        Attention(
            "Messages WhatsApp refused", failed, "see Meta's errors and retry", PREFIX + "/outbox"
        ),
    ]
    kpis = [{**kpi, "text": kpi_text(dict(kpi))} for kpi in report["kpis"]] if report else []
    return render(
        request,
        "dashboard.html",
        {
            "title": "Dashboard",
            "flow": flow,
            "flows": flow_names(app),
            "days": days,
            "start": start.isoformat() if start else "",
            "end": end.isoformat() if end else "",
            "report": report,
            "kpis": kpis,
            "overview": overview,
            "quiet": quiet,
            "trend": trend,
            "attention": attention,
        },
    )
