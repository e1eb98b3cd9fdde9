"""The PDF itinerary attached to a tour summary: the same data, printed on one or two pages.

:class:`~apps.safari.documents.summaries.SummaryData` → ``itinerary.html`` (Jinja2,
autoescape on) → PDF by the runtime's :class:`documents.PdfRenderer` (the same
locked-down policy as receipts). The PDF is stored as a :class:`storage.StoredFile` so
the outbox can upload it as a WhatsApp document and an operator can download it again.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari.documents.service import TEMPLATES_DIR, SafariDocuments
from apps.safari.documents.summaries import SummaryData, quick_actions
from documents import Branding, format_duration, store_document, template_environment
from storage import StoredFile

__all__ = ["itinerary_filename", "render_itinerary_html", "store_itinerary"]


def itinerary_filename(data: SummaryData) -> str:
    """``Itinerary_SAF-7K3QX2.pdf``."""
    return f"Itinerary_{data.reference}.pdf"


def render_itinerary_html(
    data: SummaryData, branding: Branding, *, generated_at: dt.datetime
) -> str:
    """The itinerary as HTML (the template with autoescape on: every value is text)."""
    env = template_environment(TEMPLATES_DIR, branding.templates_dir)
    return env.get_template("itinerary.html").render(
        s=data,
        b=branding,
        actions=quick_actions(data, 7),
        duration=format_duration(data.duration_minutes * 60),
        generated_at=generated_at,
    )


async def store_itinerary(
    session: AsyncSession, data: SummaryData, documents: SafariDocuments, *, now: dt.datetime
) -> StoredFile:
    """Render the booking's itinerary (in a worker process) and store it in the caller's
    transaction.

    Raises:
        RenderError: the PDF could not be rendered, e.g. a character none of the
            embedded fonts has (:class:`documents.MissingGlyphError`); nothing is stored.
    """
    local = now.astimezone(data.starts_at.tzinfo)
    html = render_itinerary_html(data, documents.branding(), generated_at=local)
    pdf = await documents.renderer.render(html)
    return await store_document(session, itinerary_filename(data), pdf)
