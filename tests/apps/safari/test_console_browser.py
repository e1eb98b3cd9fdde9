"""The safari app's payments in a real headless Chromium (see tests/console/test_browser.py):
approve a payment and download its receipt."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from storage.operators import OperatorRole
from tests.apps.safari.test_console_operations import PNG, SafariConsole, console
from tests.console.test_browser import chromium, logged_in

__all__ = ["chromium", "console"]  # the fixtures, imported to be used here


async def test_approve_a_payment_and_see_the_receipt(
    console: SafariConsole, chromium: Browser
) -> None:
    payment_id = await console.pending_payment(proof=PNG)
    page = await logged_in(console, chromium, OperatorRole.ADMIN)
    await page.click("nav >> text=Payments")
    await expect(page.locator("h2")).to_contain_text("Awaiting approval")
    await page.click(f"a[href='/console/payments/{payment_id}'] >> text=Review")
    await expect(page.locator("img.proof")).to_be_visible()
    await page.click("button:has-text('Approve payment')")
    await expect(page.locator(".alert-ok")).to_contain_text("approved")
    await expect(page.locator(".alert-ok")).to_contain_text("RCT-")
    link = page.locator("a:has-text('Download PDF')")
    await expect(link).to_be_visible()
    async with page.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    assert download.suggested_filename.startswith("Receipt_RCT-")
