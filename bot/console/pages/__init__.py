"""The console's pages, one module per area; each exposes a ``routes`` table."""

from __future__ import annotations

from aiohttp import web

from bot.console.pages import (
    admin,
    analytics,
    bookings,
    conversations,
    dashboard,
    outbox,
    payments,
    simulator,
    summaries,
)

MODULES = (
    dashboard,
    analytics,
    bookings,
    payments,
    conversations,
    outbox,
    summaries,
    simulator,
    admin,
)


def add_routes(app: web.Application) -> None:
    """Add every page's routes to the console application."""
    for module in MODULES:
        app.add_routes(module.routes)
