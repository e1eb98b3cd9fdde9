"""The safari app's console pages: bookings, payments and tour summaries (Bookings and
Payments before the framework's Conversations and Outbox, Tour summaries after them)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from apps.safari.console import bookings, payments, summaries
from bot.console.page import ConsolePage

__all__ = ["PAGES", "bookings_page", "payments_page", "summaries_page"]

TEMPLATES: Final = Path(__file__).parent / "templates"

bookings_page = ConsolePage(
    "Bookings",
    "/bookings",
    bookings.routes,
    templates=TEMPLATES,
    order=100,
    contact_facts=bookings.customer_facts,
)
payments_page = ConsolePage(
    "Payments",
    "/payments",
    payments.routes,
    templates=TEMPLATES,
    order=200,
    attention=payments.awaiting_approval,
)
summaries_page = ConsolePage(
    "Tour summaries", "/summaries", summaries.routes, templates=TEMPLATES, order=500
)
PAGES: Final = (bookings_page, payments_page, summaries_page)
