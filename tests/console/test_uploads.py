"""Console uploads (the chat simulator's attachments): the promised 10 MB is the real
limit, answered with a page (not a bare 413) above it, and a file is checked like
WhatsApp media (real type, image bombs) and not stored when refused. Real HTTP against
the running console, both backends."""

from __future__ import annotations

import io
import os
import urllib.parse

from aiohttp import FormData
from PIL import Image
from sqlalchemy import func, select

from storage import StoredFile
from storage.operators import OperatorRole
from tests.bot.test_media_download import bomb_png
from tests.console.conftest import Browser, Console, Page

MB = 1024 * 1024


def big_png(size: int) -> bytes:
    """A PNG of about ``size`` bytes (noise does not compress)."""
    side = int((size / 3) ** 0.5) + 1
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


async def upload(browser: Browser, content: bytes, filename: str, mime: str) -> Page:
    if not browser.csrf:
        await browser.get("/console/simulator")
    form = FormData()
    form.add_field("csrf_token", browser.csrf)
    form.add_field("file", io.BytesIO(content), filename=filename, content_type=mime)
    async with browser.http.post(
        browser.base + "/console/simulator/send", data=form, allow_redirects=False
    ) as response:
        return await browser._page(response)


def flashed(page: Page) -> str:
    cookie = page.headers.get("Set-Cookie", "")
    return urllib.parse.unquote(cookie)


async def stored_files(console: Console) -> int:
    async with console.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(StoredFile)) or 0)


async def test_a_6_mb_photo_is_accepted(console: Console) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    content = big_png(6 * MB)
    assert 6 * MB <= len(content) < 7 * MB
    page = await upload(agent, content, "photo.png", "image/png")
    assert page.status == 303, page.text[:300]
    assert "error:" not in flashed(page)
    async with console.db.read() as session:
        [row] = list(await session.scalars(select(StoredFile)))
    assert row.mime_type == "image/png" and row.data == content


async def test_an_11_mb_file_gets_a_page_saying_the_limit(console: Console) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    page = await upload(agent, os.urandom(11 * MB), "scan.pdf", "application/pdf")
    assert page.status == 413
    assert "File too large" in page.text and "Files up to 10 MB" in page.text
    assert "<html" in page.text.lower()  # the console's page, not a bare 413
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert await stored_files(console) == 0


async def test_html_sent_as_an_image_is_refused_and_not_stored(console: Console) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    page = await upload(agent, b"<html><script>alert(1)</script></html>", "x.png", "image/png")
    assert page.status == 303
    assert "File not sent: it contains a web page or a program" in flashed(page)
    shown = await agent.get(page.headers["Location"])
    assert "File not sent" in shown.text
    assert await stored_files(console) == 0


async def test_a_pdf_claimed_as_a_png_is_refused(console: Console) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    page = await upload(agent, b"%PDF-1.7\n1 0 obj\n", "x.png", "image/png")
    assert "its content is not a real image/png file" in flashed(page)
    assert await stored_files(console) == 0


async def test_a_decompression_bomb_is_refused(console: Console) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    page = await upload(agent, bomb_png(), "huge.png", "image/png")
    assert "far too many pixels" in flashed(page)
    assert await stored_files(console) == 0


async def test_the_type_comes_from_the_bytes(console: Console) -> None:
    agent = await console.browser(OperatorRole.AGENT)
    content = big_png(1000)
    page = await upload(agent, content, "no-extension", "application/octet-stream")
    assert page.status == 303 and "error:" not in flashed(page)
    async with console.db.read() as session:
        [row] = list(await session.scalars(select(StoredFile)))
    assert row.mime_type == "image/png"
