"""Every console page renders for a viewer; junk filters are ignored with a notice; SQL
and HTML injection in filters comes back escaped, never executed."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from storage import Contact, FlowSession
from storage.operators import OperatorRole
from tests.console.conftest import GUEST, Console

PAGES = [
    "/console/",
    "/console/?flow=rating_flow&days=30",
    "/console/?from=2026-01-01&to=2026-12-31",
    "/console/funnel",
    "/console/funnel?flow=order_flow&days=90",
    "/console/sessions",
    "/console/sessions?status=active&sort=status&dir=asc",
    "/console/events",
    "/console/events?action=completed&step=ask_size",
    "/console/snapshots",
    "/console/snapshots?period=weekly",
    "/console/conversations",
    "/console/outbox",
    "/console/outbox?status=sandbox",
    "/console/simulator",
    "/console/notes",
]

JUNK = [
    ("/console/sessions", "status=weird"),
    ("/console/sessions", "from=yesterday"),
    ("/console/sessions", "page=-4"),
    ("/console/sessions", "sort=password&dir=sideways"),
    ("/console/sessions", "flow=no_such_flow"),
    ("/console/events", "action=exploded"),
    ("/console/events", "to=2026-13-45"),
    ("/console/outbox", "status=everything"),
    ("/console/funnel", "days=1000000"),
    ("/console/", "flow=%27%3B%20DROP%20TABLE%20operators%3B--"),
    ("/console/snapshots", "period=hourly"),
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
    contact = await console.guest_id()
    async with console.db.read() as session:
        flow_session = await session.scalar(select(FlowSession.id).limit(1))
    for path in (f"/console/conversations/{contact}", f"/console/sessions/{flow_session}"):
        page = await viewer.get(path)
        assert page.status == 200, (path, page.text[-400:])
        assert "Rudo" in page.text or "order_flow" in page.text


def nav_links(text: str) -> list[str]:
    """The navigation's link texts, in order."""
    nav = text.split('<nav class="sidebar"', 1)[1].split("</nav>", 1)[0]
    return re.findall(r'class="nav-link[^"]*" href="[^"]+"[^>]*>([^<]+)</a>', nav)


async def test_the_navigation_is_the_frameworks_pages_then_the_apps_by_role(
    console: Console,
) -> None:
    viewer = await console.browser(OperatorRole.VIEWER)
    framework = [
        "Dashboard", "Funnels", "Flow sessions", "Step events", "Snapshots",
        "Notes", "Conversations", "Outbox", "Media", "Chat simulator",
    ]  # fmt: skip
    assert nav_links((await viewer.get("/console/")).text) == framework
    admin = await console.browser(OperatorRole.ADMIN)
    page = await admin.get("/console/notes")
    assert nav_links(page.text) == [*framework, "Operators", "Audit log", "Café settings"]
    assert 'class="nav-link active" href="/console/notes"' in page.text
    # The app's page renders its own template inside the console's layout.
    assert "<h2>Guests' notes</h2>" in page.text and "Rudo: Oat milk, please" in page.text


async def test_an_apps_dashboard_card_and_contact_facts(console: Console) -> None:
    viewer = await console.browser(OperatorRole.VIEWER)
    dashboard = await viewer.get("/console/")
    card = dashboard.text.split('href="/console/notes"><div class="kpi-label">', 1)[1]
    assert card.startswith('Notes to read</div><div class="kpi-value">1</div>')
    assert "Customers waiting for a person" in dashboard.text
    conversation = await viewer.get(f"/console/conversations/{await console.guest_id()}")
    assert '<dt>Note</dt><dd><a href="/console/notes">Oat milk, please</a></dd>' in (
        conversation.text
    )


@pytest.mark.parametrize(
    "path",
    [
        "/console/sessions/999999",
        "/console/sessions/abc",
        "/console/conversations/999999",
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


async def test_a_contact_named_like_html_is_shown_as_text(console: Console) -> None:
    async with console.db.transaction() as session:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == GUEST))
        assert contact is not None
        contact.profile_name = "<b onmouseover=alert(1)>Evil</b>"
    viewer = await console.browser(OperatorRole.VIEWER)
    page = await viewer.get("/console/notes")
    assert "&lt;b onmouseover=alert(1)&gt;Evil&lt;/b&gt;" in page.text
    assert "<b onmouseover" not in page.text
