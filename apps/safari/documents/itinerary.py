"""The PDF itinerary attached to a tour summary: the same data, printed on one or two pages.

:class:`documents.summaries.SummaryData` → ``itinerary.html`` (Jinja2, autoescape on) →
PDF by xhtml2pdf under the same locked-down resource policy as receipts
(:func:`documents.receipts.html_to_pdf`), rendered in the render worker processes. The
PDF is stored as a :class:`storage.StoredFile` so the outbox can upload it as a WhatsApp
document and an operator can download it again.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from documents.receipts import (
    Branding,
    html_to_pdf,
    load_branding,
    render_in_pool,
    template_environment,
)
from documents.summaries import SummaryData, format_duration, quick_actions
from storage import StoredFile

__all__ = [
    "PDF_MIME",
    "itinerary_filename",
    "render_itinerary_html",
    "render_itinerary_pdf",
    "store_itinerary",
]

PDF_MIME: Final = "application/pdf"


def itinerary_filename(data: SummaryData) -> str:
    """``Itinerary_SAF-7K3QX2.pdf``."""
    return f"Itinerary_{data.reference}.pdf"


def render_itinerary_html(
    data: SummaryData, branding: Branding, *, generated_at: dt.datetime
) -> str:
    """The itinerary as HTML (the template with autoescape on: every value is text)."""
    template = template_environment(branding.templates_dir).get_template("itinerary.html")
    return template.render(
        s=data,
        b=branding,
        actions=quick_actions(data, 7),
        duration=format_duration(data.duration_minutes),
        generated_at=generated_at,
    )


def render_itinerary_pdf(
    data: SummaryData, branding: Branding, generated_at: dt.datetime
) -> bytes:
    """Render the itinerary to PDF bytes (top-level, so a worker process can run it)."""
    return html_to_pdf(render_itinerary_html(data, branding, generated_at=generated_at))


async def store_itinerary(
    session: AsyncSession,
    data: SummaryData,
    *,
    now: dt.datetime,
    branding: Branding | None = None,
) -> StoredFile:
    """Render the booking's itinerary (in a worker process) and store it in the caller's
    transaction.

    Raises:
        ReceiptRenderError: the PDF could not be rendered (nothing is stored).
    """
    brand = branding or load_branding()
    local = now.astimezone(data.starts_at.tzinfo)
    pdf = await render_in_pool(render_itinerary_pdf, data, brand, local)
    file = StoredFile.from_bytes(itinerary_filename(data), PDF_MIME, pdf)
    session.add(file)
    await session.flush()
    return file
