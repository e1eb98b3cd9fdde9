"""Every console page renders for a viewer; junk filters are ignored with a notice; SQL
and HTML injection in filters comes back escaped, never executed."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import select

from storage import Contact, FlowSession
from storage.operators import OperatorRole
from tests.console.conftest import Console

PAGES = [
    "/console/",
    "/console/?flow=support_flow&days=30",
    "/console/?from=2026-01-01&to=2026-12-31",
    "/console/funnel",
    "/console/funnel?flow=booking_flow&days=90",
    "/console/sessions",
    "/console/sessions?status=active&sort=status&dir=asc",
    "/console/events",
    "/console/events?action=completed&step=choose_tour",
    "/console/snapshots",
    "/console/snapshots?period=weekly",
    "/console/bookings",
    "/console/bookings?status=confirmed&from=2026-01-01",
    "/console/payments",
    "/console/payments?status=all",
    "/console/conversations",
    "/console/outbox",
    "/console/outbox?status=sandbox",
    "/console/summaries",
    "/console/summaries?days=3",
    "/console/summaries?kind=reminder&hours=72",
    "/console/simulator",
]

JUNK = [
    ("/console/sessions", "status=weird"),
    ("/console/sessions", "from=yesterday"),
    ("/console/sessions", "page=-4"),
    ("/console/sessions", "sort=password&dir=sideways"),
    ("/console/sessions", "flow=no_such_flow"),
    ("/console/events", "action=exploded"),
    ("/console/events", "to=2026-13-45"),
    ("/console/bookings", "status=%00%01"),
    ("/console/payments", "status=lost&page=abc"),
    ("/console/outbox", "status=everything"),
    ("/console/funnel", "days=1000000"),
    ("/console/", "flow=%27%3B%20DROP%20TABLE%20operators%3B--"),
    ("/console/snapshots", "period=hourly"),
    ("/console/summaries", "days=9999"),
    ("/console/simulator", "phone=not-a-phone"),
]

INJECTIONS = [
    "<script>alert('x')</script>",
    "' OR '1'='1' --",
    '"><img src=x onerror=alert(1)>',
    "1; DROP TABLE flow_sessions;",
    "%' UNION SELECT password_hash FROM operators --",
]
SEARCHABLE = [
    "/console/sessions?q=",
    "/console/sessions?stopped_at=",
    "/console/bookings?q=",
    "/console/payments?q=",
    "/console/audit?actor=",
    "/console/events?step=",
]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_renders_for_a_viewer(console: Console, path: str) -> None:
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get(path)
    assert page.status == 200, page.text[-500:]
    assert "Something went wrong" not in page.text
    assert "<nav" in page.text and "viewer1" in page.text


async def test_detail_pages_render(console: Console) -> None:
    viewer = await console.browser(OperatorRole.VIEWER)
    booking = console.demo.bookings[0]
    payment = booking.payment_ids[0]
    async with console.db.read() as session:
        contact = await session.scalar(select(Contact.id).where(Contact.wa_id == booking.whatsapp))
    for path in (
        f"/console/bookings/{booking.reference}",
        f"/console/payments/{payment}",
        f"/console/conversations/{contact}",
        f"/console/summaries/{booking.reference}?days=7",
        f"/console/summaries/{booking.reference}?kind=reminder",
    ):
        page = await viewer.get(path)
        assert page.status == 200, (path, page.text[-400:])
        assert booking.reference in page.text or "conversations" in path


@pytest.mark.parametrize(
    "path",
    [
        "/console/sessions/999999",
        "/console/sessions/abc",
        "/console/bookings/SAF-ZZZZZZ",
        "/console/bookings/<script>",
        "/console/payments/999999",
        "/console/payments/12abc",
        "/console/payments/999999/receipt.pdf",
        "/console/payments/999999/proof",
        "/console/conversations/999999",
        "/console/summaries/SAF-ZZZZZZ",
        "/console/no-such-page",
    ],
)
async def test_unknown_things_are_404_pages(console: Console, path: str) -> None:
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get(path)
    assert page.status == 404
    assert "Not found" in page.text
    assert "<script>" not in page.text


@pytest.mark.parametrize(("path", "query"), JUNK)
async def test_junk_filters_are_ignored_with_a_notice(
    console: Console, path: str, query: str
) -> None:
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get(f"{path}?{query}")
    assert page.status == 200, page.text[-500:]
    assert "Ignored" in page.text


@pytest.mark.parametrize("prefix", SEARCHABLE)
@pytest.mark.parametrize("attack", INJECTIONS)
async def test_injection_in_filters_is_escaped(console: Console, prefix: str, attack: str) -> None:
    admin = await console.browser(OperatorRole.ADMIN)
    from urllib.parse import quote

    page = await admin.get(prefix + quote(attack))
    assert page.status == 200, page.text[-500:]
    assert attack not in page.text or html.escape(attack) == attack
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    # Nothing was executed: the tables are all still there.
    async with console.db.read() as session:
        await session.scalar(select(FlowSession.id).limit(1))
        assert await session.scalar(select(Contact.id).limit(1)) is not None


async def test_a_customer_named_like_html_is_shown_as_text(console: Console) -> None:
    from storage import Customer

    async with console.db.transaction() as session:
        customer = await session.scalar(select(Customer).limit(1))
        assert customer is not None
        customer.name = "<b onmouseover=alert(1)>Evil</b>"
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get("/console/bookings")
    assert "&lt;b onmouseover=alert(1)&gt;Evil&lt;/b&gt;" in page.text
    assert "<b onmouseover" not in page.text
