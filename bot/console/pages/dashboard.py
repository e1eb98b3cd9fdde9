"""The dashboard: KPIs against their targets, trends, and what needs attention today."""

from __future__ import annotations

from aiohttp import web

from bot.console.web import render

routes = web.RouteTableDef()


@routes.get("/")
async def dashboard(request: web.Request) -> web.StreamResponse:
    """The console's home page."""
    return render(request, "dashboard.html", {"title": "Dashboard"})
