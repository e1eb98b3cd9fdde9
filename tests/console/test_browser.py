"""End to end in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright; no browser is ever downloaded): log in, filter sessions, open a timeline,
chat in the simulator, keep a typed reply across a lost session (the safari app's
payments: tests/apps/safari/test_console_browser.py)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.console.accounts import create_operator
from flows import ContactRef, Engine, UserMessage
from storage.operators import OperatorRole
from tests.console.conftest import PASSWORD, Console

CHROMIUM = Path(os.environ.get("NYALA_CHROMIUM", "/usr/bin/chromium"))
HAVE_CHROMIUM = CHROMIUM.exists()


@pytest_asyncio.fixture
async def chromium() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        if os.environ.get("CI") or os.environ.get("NYALA_REQUIRE_BROWSER") == "1":
            pytest.fail(
                f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
            )
        pytest.skip(f"no Chromium at {CHROMIUM}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def logged_in(console: Console, chromium: Browser, role: OperatorRole) -> Page:
    """A page logged in through the login form, submitted with Enter."""
    username = f"{role.value}-e2e"
    await create_operator(console.db, username, PASSWORD, role, actor="test")
    page = await chromium.new_page()
    page.set_default_timeout(15_000)
    await page.goto(console.base + "/console")
    await expect(page).to_have_url(re.compile(r"/console/login"))
    await page.fill("input[name=username]", username)
    await page.fill("input[type=password][name=password]", PASSWORD)
    await page.press("input[name=password]", "Enter")
    await expect(page.locator(".topbar .user")).to_contain_text(username)
    return page


async def test_log_in_filter_sessions_and_open_a_timeline(
    console: Console, chromium: Browser
) -> None:
    engine = Engine(console.db, console.app, sandbox=True)
    for n, text in enumerate(("order", "rate")):
        contact = ContactRef(wa_id=f"26377100000{n}", profile_name=f"Guest {n}")
        await engine.handle(contact, UserMessage(id=f"wamid.e2e.{n}", kind="text", text=text))
    page = await logged_in(console, chromium, OperatorRole.VIEWER)
    await page.click("nav >> text=Flow sessions")
    await page.select_option("select[name=flow]", "order_flow")
    await page.select_option("select[name=status]", "active")
    await page.click("button:has-text('Filter')")
    await expect(page).to_have_url(re.compile(r"flow=order_flow"))
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Guest 0")
    await rows.first.locator("a").first.click()
    await expect(page.locator("h1")).to_contain_text("Session")
    await expect(page.locator(".timeline")).to_contain_text("ask_name")
    await expect(page.locator(".timeline")).to_contain_text("entered")


async def test_chat_with_the_bot_in_the_simulator(console: Console, chromium: Browser) -> None:
    page = await logged_in(console, chromium, OperatorRole.AGENT)
    await page.click("nav >> text=Chat simulator")
    box = page.locator(".composer input[name=text]")
    await box.fill("hi")
    await box.press("Enter")
    menu = page.locator("details.list-menu").last
    await expect(menu).to_be_visible()
    await menu.locator("summary").click()
    await menu.locator("button:has-text('Order coffee')").click()
    await expect(page.locator(".msg.bot").last).to_contain_text("Your name?")
    # The conversation is in the analytics at once.
    await page.click("a:has-text('Flow sessions')")
    await expect(page.locator("tbody")).to_contain_text("order_flow")


async def test_an_expired_session_keeps_what_was_typed(
    console: Console, chromium: Browser
) -> None:
    from sqlalchemy import update

    from storage.operators import ConsoleSession
    from tests.console.test_operations import _handed_off_contact

    contact_id = await _handed_off_contact(console)
    page = await logged_in(console, chromium, OperatorRole.AGENT)
    await page.goto(f"{console.base}/console/conversations/{contact_id}")
    box = page.locator(".composer input[name=body]")
    await box.fill("Your guide will call you tonight.")
    async with console.db.transaction() as session:
        await session.execute(update(ConsoleSession).values(expires_at=ConsoleSession.created_at))
    await box.press("Enter")
    await expect(page).to_have_url(re.compile(r"/console/login\?next=.*expired=1"))
    await expect(page.locator(".alert-note")).to_contain_text("Your session ended")
    await page.fill("input[name=username]", "agent-e2e")
    await page.fill("input[name=password]", PASSWORD)
    await page.press("input[name=password]", "Enter")
    await expect(page).to_have_url(re.compile(rf"/console/conversations/{contact_id}$"))
    await expect(page.locator(".composer input[name=body]")).to_have_value(
        "Your guide will call you tonight."
    )
