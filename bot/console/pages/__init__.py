"""The framework's console pages, one module per area, registered as :class:`ConsolePage`s
like an app's: the navigation is built from the same list."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from bot.console.page import ConsolePage
from bot.console.pages import (
    admin,
    analytics,
    conversations,
    dashboard,
    media,
    outbox,
    simulator,
)
from storage.operators import OperatorRole

__all__ = ["framework_pages"]


def _under(table: Iterable[web.AbstractRouteDef], *paths: str) -> list[web.AbstractRouteDef]:
    """The routes of ``table`` at or below one of ``paths`` (one module, several pages)."""
    found: list[web.AbstractRouteDef] = []
    for route in table:
        path = route.path if isinstance(route, web.RouteDef) else ""
        if any(path == p or path.startswith(p + "/") for p in paths):
            found.append(route)
    return found


def framework_pages() -> tuple[ConsolePage, ...]:
    """The console's own pages, in navigation order."""
    viewer, admin_role = OperatorRole.VIEWER, OperatorRole.ADMIN
    return (
        ConsolePage("Dashboard", "/", dashboard.routes, section="Analytics", order=10),
        ConsolePage(
            "Funnels", "/funnel", _under(analytics.routes, "/funnel"), "Analytics", order=20
        ),
        ConsolePage(
            "Flow sessions",
            "/sessions",
            _under(analytics.routes, "/sessions"),
            "Analytics",
            order=30,
        ),
        ConsolePage(
            "Step events", "/events", _under(analytics.routes, "/events"), "Analytics", order=40
        ),
        ConsolePage(
            "Snapshots",
            "/snapshots",
            _under(analytics.routes, "/snapshots"),
            "Analytics",
            order=50,
        ),
        ConsolePage(
            "Conversations", "/conversations", conversations.routes, role=viewer, order=300
        ),
        ConsolePage("Outbox", "/outbox", outbox.routes, role=viewer, order=400),
        ConsolePage("Media", "/media", media.routes, role=viewer, order=410),
        ConsolePage(
            "Chat simulator", "/simulator", simulator.routes, section="Tools", role=viewer
        ),
        ConsolePage(
            "Operators",
            "/operators",
            _under(admin.routes, "/operators"),
            section="Admin",
            role=admin_role,
            order=10,
        ),
        ConsolePage(
            "Audit log",
            "/audit",
            _under(admin.routes, "/audit"),
            section="Admin",
            role=admin_role,
            order=20,
        ),
    )
