"""A console page a test app registers, as an app would (docs/apps.md): a list of the
contacts' notes with its own template, a dashboard card, a fact beside a conversation,
and an admin-only page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console import Attention, ConsolePage, ContactFact
from bot.console.web import db_of, render, requires
from flows import App
from storage import Contact
from storage.operators import OperatorRole

HERE = Path(__file__).parent
routes = web.RouteTableDef()
admin_routes = web.RouteTableDef()


async def _noted(session: AsyncSession) -> list[Contact]:
    contacts = await session.scalars(select(Contact).order_by(Contact.id))
    return [c for c in contacts if c.attributes.get("note")]


@routes.get("/notes")
@requires(OperatorRole.VIEWER)
async def notes(request: web.Request) -> web.StreamResponse:
    async with db_of(request).read() as session:
        rows = await _noted(session)
    return render(request, "notes.html", {"title": "Notes", "rows": rows})


@admin_routes.get("/cafe-settings")
@requires(OperatorRole.ADMIN)
async def cafe_settings(request: web.Request) -> web.StreamResponse:
    return render(request, "notes.html", {"title": "Café settings", "rows": []})


async def notes_waiting(request: web.Request) -> Attention:
    async with db_of(request).read() as session:
        count = len(await _noted(session))
    return Attention("Notes to read", count, "read the guests' notes", "/console/notes")


async def note_fact(session: AsyncSession, contact_id: int) -> Sequence[ContactFact]:
    contact = await session.get(Contact, contact_id)
    note = contact.attributes.get("note") if contact else None
    return [ContactFact("Note", str(note), "/console/notes")] if note else []


def add_pages(app: App) -> None:
    """Register the test pages on ``app``."""
    app.add_console_page(
        ConsolePage(
            "Notes",
            "/notes",
            routes,
            templates=HERE / "templates",
            order=50,
            attention=notes_waiting,
            contact_facts=note_fact,
        )
    )
    app.add_console_page(
        ConsolePage(
            "Café settings", "/cafe-settings", admin_routes, section="Admin",
            role=OperatorRole.ADMIN, order=90,
        )
    )  # fmt: skip
