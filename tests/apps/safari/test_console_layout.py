"""The console's pages in a real Chromium at a laptop's 1280 px and a phone's 390 px: no
page is wider than the screen, the sidebar runs the page's whole height (a bar of links
on a phone), references never wrap ("SAF-/QJTC4G"), and WhatsApp's *bold* shows bold.
The analytics pages (dashboard, funnel, sessions) are checked in tests/console."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page
from sqlalchemy import select, update

from apps.safari.models import Payment
from flows import ContactRef, Engine, UserMessage
from storage import Contact
from storage.operators import OperatorRole
from tests.apps.safari.test_console_operations import PNG, SafariConsole, console
from tests.console.test_browser import chromium, logged_in

__all__ = ["chromium", "console"]  # the fixtures, imported to be used here

WIDTHS = (1280, 390)

# Everything that lies outside the viewport and is not inside something that scrolls.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    let up = el.parentElement, clipped = false;
    while (up && up !== document.body) {
      if (getComputedStyle(up).overflowX !== "visible") { clipped = true; break; }
      up = up.parentElement;
    }
    if (!clipped) out.push(el.tagName + "." + el.className);
  }
  return {scroll: document.documentElement.scrollWidth, width: width, out: out.slice(0, 5)};
}"""

# Every booking reference shown, and how many lines each takes.
REFERENCES = """() => [...document.querySelectorAll("a, h1, span, td, dd")]
  .filter(el => el.children.length === 0 && /^SAF-[A-Z0-9]{6}$/.test(el.textContent.trim()))
  .map(el => [el.textContent.trim(), el.getClientRects().length,
              Math.round(el.getBoundingClientRect().height)])"""


async def _customer_wrote(console: SafariConsole) -> int:
    """A customer who asked for a person, typing WhatsApp formatting and HTML."""
    engine = Engine(console.db, console.app, sandbox=True)
    who = ContactRef(wa_id="263770000077", profile_name="Tari")
    for n, text in enumerate(["support", "see *this* and <b>that</b> ~not~ _now_"]):
        await engine.handle(who, UserMessage(id=f"wamid.layout.{n}", kind="text", text=text))
    async with console.db.read() as session:
        found = await session.scalar(select(Contact.id).where(Contact.wa_id == who.wa_id))
    assert found is not None
    return found


async def _check(page: Page, width: int, path: str) -> None:
    layout = await page.evaluate(OVERFLOW)
    assert layout["scroll"] <= width and layout["out"] == [], (width, path, layout)
    sidebar = page.locator("nav.sidebar")
    box = await sidebar.bounding_box()
    assert box is not None
    height = await page.evaluate("document.documentElement.scrollHeight")
    if width >= 1000:  # beside the page, all the way down
        assert box["height"] >= height - 1, (path, box, height)
    else:  # a bar across the top whose links still work
        assert box["width"] >= width - 1 and box["height"] < 120, (path, box)
    await page.locator("nav.sidebar a.nav-link").first.wait_for(state="visible")
    for text, lines, tall in await page.evaluate(REFERENCES):
        assert lines == 1 and tall < 40, (width, path, text, lines, tall)


@pytest.mark.parametrize("width", WIDTHS)
async def test_pages_fit_the_screen_and_references_stay_whole(
    console: SafariConsole, chromium: Browser, width: int
) -> None:
    payment_id = await console.pending_payment(proof=PNG)
    async with console.db.transaction() as session:
        # The longest bank reference a customer may type (35 characters, no space).
        await session.execute(
            update(Payment)
            .where(Payment.id == payment_id)
            .values(customer_reference="FBCMWQ/2026/12/06-000123456MWQABC1")
        )
    contact_id = await _customer_wrote(console)
    reference = console.demo.bookings[0].reference
    page = await logged_in(console, chromium, OperatorRole.ADMIN)
    await page.set_viewport_size({"width": width, "height": 900})
    paths = [
        "/console/bookings",
        f"/console/bookings/{reference}",
        "/console/payments",
        f"/console/payments/{payment_id}",
        "/console/conversations",
        f"/console/conversations/{contact_id}",
        "/console/outbox",
        "/console/simulator",
        "/console/summaries",
        "/console/audit",
        "/console/operators",
    ]
    seen_reference = False
    for path in paths:
        await page.goto(console.base + path)
        await page.locator("h1").first.wait_for()
        await _check(page, width, path)
        seen_reference = seen_reference or bool(await page.evaluate(REFERENCES))
    assert seen_reference


async def test_whatsapp_formatting_is_shown_not_typed(
    console: SafariConsole, chromium: Browser
) -> None:
    contact_id = await _customer_wrote(console)
    page = await logged_in(console, chromium, OperatorRole.AGENT)
    await page.goto(f"{console.base}/console/conversations/{contact_id}")
    bodies = page.locator(".msg .body")
    # The bot's question: "…Type a few words, or tap *Skip*."
    skip = bodies.filter(has_text="or tap Skip")
    assert await skip.locator("strong").all_inner_texts() == ["Skip"]
    typed = bodies.filter(has_text="see this and")
    assert await typed.locator("strong").all_inner_texts() == ["this"]
    assert await typed.locator("s").all_inner_texts() == ["not"]
    assert await typed.locator("em").all_inner_texts() == ["now"]
    assert await typed.locator("b").count() == 0  # the customer's HTML is text
    assert "<b>that</b>" in await typed.inner_text()
    assert "*Skip*" not in await skip.inner_text()
