"""Issue 16, point 1: every console figure that links to a list of sessions lists exactly
the sessions it counts, on data crossing midnight in the business's time zone, and the
console shows times in that zone."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from sqlalchemy import text

from analytics import get_step_funnel
from storage import Database
from storage.operators import OperatorRole
from tests.analytics.truth_data import DAY, FLOW, HARARE, STEPS, write_stories
from tests.cafe import build_app
from tests.console.conftest import Browser, Console, serving

LINK = re.compile(r'<a (?![^>]*xlink)[^>]*href="(/console/sessions\?[^"]+)"[^>]*>(.*?)</a>', re.S)
ROW = re.compile(r'<a href="/console/sessions/(\d+)">')
PERIOD = f"from={DAY.isoformat()}&to={DAY.isoformat()}"


@pytest_asyncio.fixture
async def harare(database_url: str, db: Database, tmp_path: Path) -> AsyncIterator[Console]:
    """The café's console, the business in Africa/Harare, with the stories written."""
    app = build_app(tmp_path / "flows")
    app.timezone = HARARE
    await write_stories(db)
    async with serving(database_url, db, app) as running:
        yield running


def figure(label: str) -> int:
    """The number a link shows (its first integer, markup removed)."""
    plain = re.sub(r"<[^>]+>", " ", label)
    found = re.search(r"\d+", plain)
    assert found is not None, label
    return int(found.group())


async def listed(browser: Browser, href: str) -> set[int]:
    page = await browser.get(html.unescape(href))
    assert page.status == 200, href
    return {int(i) for i in ROW.findall(page.text)}


async def check_links(browser: Browser, path: str) -> int:
    """Follow every sessions link of ``path``; each lists as many sessions as it says."""
    page = await browser.get(path)
    assert page.status == 200
    links = LINK.findall(page.text)
    for href, label in links:
        assert len(await listed(browser, href)) == figure(label), (path, href, label)
    return len(links)


async def test_every_figure_lists_exactly_its_sessions(harare: Console) -> None:
    browser = await harare.browser(OperatorRole.ADMIN)
    funnel_links = await check_links(browser, f"/console/funnel?flow={FLOW}&{PERIOD}")
    # Sessions, completed, cancelled, nothing to do, abandoned, errors, active, every
    # reached step and every step with sessions that stopped there.
    assert funnel_links >= 12
    dashboard_links = await check_links(browser, f"/console/?flow={FLOW}&{PERIOD}")
    assert dashboard_links >= 6


async def test_stopped_here_includes_the_session_after_local_midnight(
    harare: Console,
) -> None:
    browser = await harare.browser(OperatorRole.ADMIN)
    async with harare.db.read() as session:
        ids = {
            int(i)
            for (i,) in await session.execute(
                text(
                    "SELECT s.id FROM flow_sessions s JOIN contacts c ON c.id = s.contact_id "
                    "WHERE s.current_step = 'ask_size' AND s.status IN ('abandoned', 'error') "
                    "AND NOT c.sandbox"
                )
            )
        }
    # Three stopped at ask_size: 23:00 local the day before, 00:30 local on the day
    # (22:30 UTC the day before) and 00:30 local the day after. Only the middle one counts.
    assert len(ids) == 3
    day = await listed(
        browser, f"/console/sessions?stopped_at=ask_size&flow={FLOW}&{PERIOD}&live=1"
    )
    funnel = await get_step_funnel(
        FLOW, steps=STEPS, date_from=DAY, date_to=DAY, db=harare.db, tz=HARARE
    )
    assert len(day) == next(r["drop_off"] for r in funnel if r["step_name"] == "ask_size") == 1
    page = await browser.get(f"/console/sessions?stopped_at=ask_size&flow={FLOW}&{PERIOD}&live=1")
    # Shown in the business's time: 00:30 on the 20th, not 22:30 on the 19th.
    assert "2026-11-20 00:30" in page.text
    assert "2026-11-19 22:30" not in page.text
    assert "Africa/Harare" in page.text


async def test_the_diagram_links_carry_the_period(harare: Console) -> None:
    browser = await harare.browser(OperatorRole.ADMIN)
    page = await browser.get(f"/console/funnel?flow={FLOW}&{PERIOD}")
    hrefs = re.findall(r'xlink:href="(/console/sessions\?stopped_at=[^"]+)"', page.text)
    if not hrefs:  # Graphviz missing: the page says so instead of drawing
        assert "Graphviz is not installed" in page.text
        return
    assert all("from=2026-11-20" in html.unescape(h) for h in hrefs)
    ask_size = next(h for h in hrefs if "stopped_at=ask_size" in h)
    assert len(await listed(browser, ask_size)) == 1
    # Every step of the flow is drawn with its figures.
    for step in ("Ask name", "Ask size", "Ask count", "Confirm", "Done", "Cancelled"):
        assert step in page.text
    # Drawn at its natural width, shrunk to fit a phone by the stylesheet (no fixed
    # height); tests/console/test_analytics_layout.py checks it in Chromium.
    svg = re.search(r"<svg[^>]*>", page.text[page.text.index('class="diagram"') :])
    assert svg is not None and " height=" not in svg.group(0) and "viewBox" in svg.group(0)
