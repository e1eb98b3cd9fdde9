"""Hostile text in every customer-controlled field of a receipt (both backends).

``tests/apps/safari/test_receipts.py`` proves that markup in a name prints literally and
``tests/documents/test_pdf.py`` that the renderer's resource policy fetches nothing. This
goes over every field of the safari app's receipt a customer or an operator types
(customer name and e-mail, traveller names, the payment reference) with what attacks a
Jinja → xhtml2pdf pipeline specifically: template syntax (``{{ }}``, ``{% %}``),
xhtml2pdf's own ``<pdf:…>`` tags, a closing ``</style>`` followed by CSS,
``<object>``/``<iframe>``/SVG/``data:`` references, control and bidi characters.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from sqlalchemy import select, update

from apps.safari import app as safari
from apps.safari.documents import SafariDocuments
from apps.safari.documents.receipts import generate_receipt
from apps.safari.models import PaymentMethod, PaymentStatus, Traveler
from documents import PdfRenderer
from storage import Database
from tests.apps.safari.test_receipts import seed
from tests.documents.pdf import pdf_text
from tests.documents.trap import trap_server  # noqa: F401 - the fixture `trap`
from tests.reliability.results import Row, record

# Each attack has a marker that must print literally, and what must not appear if the
# attack worked.
ATTACKS = {
    "customer name": ("{{ 7*191 }} {% if true %}SSTI{% endif %}", "{{ 7*191 }}", "1337"),
    "e-mail": ("</style><style>@page{size:1cm}</style>", "@page{size:1cm}</style>", None),
    "traveller 1": ("<pdf:nextpage/><pdf:nextpage/>Ana", "<pdf:nextpage/>", None),
    "traveller 2": (
        '<object data="file:///etc/passwd"></object>Ben',
        'data="file:///etc/passwd"',
        "root:",
    ),
    "traveller 3": ("\u202eevil\u202c <iframe src=x> \x07bell", "<iframe src=x>", None),
}


@pytest.fixture
def database_url(safari_database_url: str) -> str:
    return safari_database_url


async def test_every_text_field_prints_literally_and_runs_nothing(
    db: Database, trap: tuple[str, list[str]]
) -> None:
    url, hits = trap
    reference = f'<svg><image href="{url}/svg.png"/></svg><img src="data:image/png;base64,AA==">'
    seeded = await seed(
        db,
        customer_name=ATTACKS["customer name"][0],
        email=ATTACKS["e-mail"][0],
        payments=(("10.00", PaymentStatus.APPROVED, PaymentMethod.BANK_TRANSFER, reference),),
    )
    async with db.transaction() as session:
        travelers = (
            await session.scalars(
                select(Traveler.id)
                .where(Traveler.booking_id == seeded.booking_id)
                .order_by(Traveler.position)
            )
        ).all()
        for traveler_id, key in zip(travelers, ["traveller 1", "traveller 2", "traveller 3"],
                                    strict=True):  # fmt: skip
            await session.execute(
                update(Traveler).where(Traveler.id == traveler_id).values(
                    full_name=ATTACKS[key][0])
            )  # fmt: skip
    renderer = PdfRenderer(workers=1)
    try:
        pdf = await generate_receipt(
            db, seeded.payment_ids[0], SafariDocuments(renderer, safari.timezone)
        )
    finally:
        await asyncio.to_thread(renderer.close)
    text = pdf_text(pdf)
    info = await asyncio.to_thread(
        subprocess.run, ["pdfinfo", "-"], input=pdf, capture_output=True, check=True, timeout=60
    )
    pages = info.stdout.decode()
    page_count = int(next(line.split()[-1] for line in pages.splitlines()
                          if line.startswith("Pages:")))  # fmt: skip
    compact = text.replace(" ", "")
    for field, (_value, marker, forbidden) in ATTACKS.items():
        assert marker.replace(" ", "") in compact, (field, text)
        assert forbidden is None or forbidden not in text, (field, text)
    assert "<svg><image" in text
    assert page_count == 1  # no injected page breaks, no shrunken page
    assert hits == []
    record(
        "abuse-pdf",
        Row(
            scenario="HTML and template injection into PDF receipts",
            injected="Jinja syntax, `</style>` + CSS, xhtml2pdf `<pdf:nextpage/>`, "
            "`<object data=file:///etc/passwd>`, `<iframe>`, SVG and `data:` images, bidi and "
            "control characters in the customer name, e-mail, 3 traveller names and the "
            "payment reference",
            load="1 receipt with 6 hostile fields",
            observed=f"every attack printed literally; {page_count} page; 0 template "
            f"expressions evaluated; {len(hits)} requests to the trap server; no file read",
        ),
    )
