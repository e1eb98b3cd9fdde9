"""Approving a payment says so once: the notice is not shown again on the next page."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from storage.operators import OperatorRole
from tests.apps.safari.test_console_operations import PNG, SafariConsole, console
from tests.console.test_browser import chromium, logged_in

__all__ = ["chromium", "console"]  # the fixtures, imported to be used here


async def test_the_approval_notice_shows_once(console: SafariConsole, chromium: Browser) -> None:
    payment_id = await console.pending_payment(proof=PNG)
    page = await logged_in(console, chromium, OperatorRole.ADMIN)
    await page.goto(f"{console.base}/console/payments/{payment_id}")
    await page.click("button:has-text('Approve payment')")
    await expect(page.locator(".alert-ok")).to_contain_text(f"Payment {payment_id} approved")
    for path in ("/console/payments", f"/console/payments/{payment_id}", "/console/"):
        await page.goto(console.base + path)
        await expect(page.locator("h1")).to_be_visible()
        assert await page.locator(".alert-ok").count() == 0, path
