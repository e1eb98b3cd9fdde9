"""A flash message (``Created …``) shows on the page after the action, and never again:
not on the next page, not when a browser sends the same cookie a second time."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

from playwright.async_api import Browser, expect
from yarl import URL

from storage.operators import OperatorRole
from tests.console.conftest import Console
from tests.console.test_browser import chromium, logged_in

__all__ = ["chromium"]

CREATE = "form[action='/console/operators'][method=post]"


async def test_a_flash_shows_once_in_chromium(console: Console, chromium: Browser) -> None:
    page = await logged_in(console, chromium, OperatorRole.ADMIN)
    await page.goto(console.base + "/console/operators")
    await page.fill(f"{CREATE} input[name=username]", "newbie")
    await page.fill(f"{CREATE} input[name=password]", "a long enough password")
    await page.select_option(f"{CREATE} select[name=role]", "viewer")
    await page.click(f"{CREATE} button[type=submit]")
    await expect(page.locator(".alert-ok")).to_contain_text("Created newbie")
    for path in ("/console/outbox", "/console/operators"):
        await page.goto(console.base + path)
        await expect(page.locator("h1")).to_be_visible()
        assert await page.locator(".alert-ok").count() == 0, path


async def test_a_replayed_flash_cookie_is_not_shown_again(console: Console) -> None:
    browser = await console.browser(OperatorRole.ADMIN)
    answer = await browser.post(
        "/console/operators",
        {"username": "second", "password": "a long enough password", "role": "viewer"},
    )
    assert answer.status == 303
    cookie = SimpleCookie(answer.headers["Set-Cookie"])
    flash = cookie["nyala_flash"].value
    shown = await browser.get("/console/operators")
    assert "Created second" in shown.text
    # The page deleted the cookie; a client that sends it once more sees nothing.
    browser.http.cookie_jar.update_cookies({"nyala_flash": flash}, URL(console.base + "/console/"))
    again = await browser.get("/console/outbox")
    assert again.status == 200
    assert "Created second" not in again.text
    # A forged or malformed flash cookie is ignored, never shown as a message.
    browser.http.cookie_jar.update_cookies({"nyala_flash": "junk"}, URL(console.base + "/"))
    junk = await browser.get("/console/outbox")
    assert junk.status == 200 and "alert-ok" not in junk.text


async def test_back_and_reload_do_not_bring_a_flash_back(
    console: Console, chromium: Browser
) -> None:
    """The original report: the notice came back on the next page. Here the operator acts,
    clicks to another page, goes Back and reloads; the notice shows only the first time
    (pages are ``Cache-Control: no-store``, so Back asks the server again, and the
    server has cleared the flash)."""
    page = await logged_in(console, chromium, OperatorRole.ADMIN)
    await page.goto(console.base + "/console/operators")
    await page.fill(f"{CREATE} input[name=username]", "backer")
    await page.fill(f"{CREATE} input[name=password]", "a long enough password")
    await page.select_option(f"{CREATE} select[name=role]", "viewer")
    await page.click(f"{CREATE} button[type=submit]")
    notice = page.locator(".alert-ok")
    await expect(notice).to_contain_text("Created backer")
    await page.click("nav.sidebar a.nav-link[href='/console/outbox']")
    await expect(page).to_have_url(re.compile(r"/console/outbox$"))
    assert await notice.count() == 0
    back = await page.go_back()
    assert back is not None
    await expect(page).to_have_url(re.compile(r"/console/operators$"))
    await expect(page.locator("h1")).to_be_visible()
    assert "no-store" in (await back.all_headers()).get("cache-control", "")
    assert await notice.count() == 0
    await page.reload()
    await expect(page.locator("h1")).to_be_visible()
    assert await notice.count() == 0
    await page.go_forward()
    await expect(page).to_have_url(re.compile(r"/console/outbox$"))
    assert await notice.count() == 0
    # The operator was created once, whatever the browser replayed.
    rows = page.locator("table tbody tr", has_text="backer")
    await page.goto(console.base + "/console/operators")
    await expect(rows).to_have_count(1)
