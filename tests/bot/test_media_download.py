"""Inbound media really arrives: ``nyala serve`` over real HTTP downloads what a customer
sends from the fake Graph API, checks it and hands the flow the stored file; both
backends."""

from __future__ import annotations

import datetime as dt
import io
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import ClientSession, CookieJar, web
from aiohttp.test_utils import TestServer
from PIL import Image
from sqlalchemy import select, update

from bot.console.accounts import create_operator
from bot.console.pages.media import MediaPreview, previews
from bot.server import MEDIA, create_app
from flows import App, FlowContext
from storage import (
    Contact,
    Database,
    FlowStepEvent,
    InboundMessage,
    MediaDownload,
    MediaDownloadStatus,
    StepAction,
    StoredFile,
    utcnow,
)
from storage.operators import OperatorRole
from testing.fake_graph import FakeGraph, FaultKind, StoredMedia
from tests.bot import test_server
from tests.bot.test_server import Running, eventually, settings_for
from tests.bot.webhooks import messages_payload
from tests.console.conftest import PASSWORD, Browser

fake = test_server.fake  # the fake Graph API of the server tests

CUSTOMER = "263771110077"
PHOTO_FLOW = """
flow: photo_flow
description: Send the photo of a receipt
timeout: 30m
triggers: [photo]
steps:
  ask_photo:
    ask: Please send a photo of your receipt.
    expect: {media: {max_mb: 10}}
    save: photo
    do: keep_photo
  done:
    final: true
    say: Got your photo.
"""


def photo_app(folder: Path) -> App:
    """A one-step app that keeps the uploaded file's id on the contact."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "photo_flow.yaml").write_text(PHOTO_FLOW)
    app = App("Photo shop", flows_dir=folder, max_retries=3)

    @app.action()
    def keep_photo(ctx: FlowContext) -> None:
        ctx.contact.attributes = {**ctx.contact.attributes, "photo": ctx.data["photo"]["id"]}

    return app


@dataclass
class Live:
    """The running server, its application and the fake Graph API."""

    running: Running
    app: web.Application

    @property
    def fake(self) -> FakeGraph:
        return self.running.fake

    @property
    def db(self) -> Database:
        return self.running.db

    def texts(self) -> list[str]:
        found = []
        for sent in self.fake.sent:
            if sent.body["type"] == "text":
                found.append(str(sent.body["text"]["body"]))
        return found

    async def send_media(self, media: StoredMedia, *, sha256: str | None = None) -> int:
        body = {
            "from": CUSTOMER,
            "id": f"wamid.MEDIA{time.monotonic_ns()}",
            "timestamp": str(int(time.time())),
            "type": "image",
            "image": {
                "id": media.media_id,
                "mime_type": media.mime_type,
                "sha256": sha256 if sha256 is not None else media.sha256_base64,
            },
        }
        return await self.running.post(messages_payload(body))

    async def say(self, text: str) -> int:
        body = {
            "from": CUSTOMER,
            "id": f"wamid.TEXT{time.monotonic_ns()}",
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": text},
        }
        return await self.running.post(messages_payload(body))

    async def downloads(self) -> list[MediaDownload]:
        async with self.db.read() as session:
            return list(await session.scalars(select(MediaDownload).order_by(MediaDownload.id)))

    async def photo_attribute(self) -> Any:
        async with self.db.read() as session:
            contact = await session.scalar(select(Contact).where(Contact.wa_id == CUSTOMER))
        return None if contact is None else contact.attributes.get("photo")


@pytest_asyncio.fixture
async def live(
    database_url: str, tmp_path: Path, fake: FakeGraph, db: Database
) -> AsyncIterator[Live]:
    app = create_app(settings_for(database_url, fake.base_url), photo_app(tmp_path / "flows"))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as http:
            url = str(server.make_url("")).rstrip("/")
            yield Live(Running(url, http, fake, db), app)
    finally:
        await server.close()


def png(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


def bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG whose header claims billions of pixels (a decompression bomb)."""
    data = bytearray(png(8, 8))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    crc = zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    return bytes(data)


async def _start_photo_step(live: Live) -> None:
    assert await live.say("photo") == 200
    await eventually(lambda: "Please send a photo of your receipt." in live.texts())


async def test_a_photo_is_downloaded_stored_and_given_to_the_flow(live: Live) -> None:
    await _start_photo_step(live)
    content = png()
    media = live.fake.add_inbound_media(content, "image/png")
    assert await live.send_media(media) == 200
    await eventually(lambda: "Got your photo." in live.texts())
    [download] = await live.downloads()
    assert download.status is MediaDownloadStatus.STORED and download.attempts == 1
    photo = await live.photo_attribute()
    assert photo == f"stored:{download.stored_file_id}"
    async with live.db.read() as session:
        stored = await session.get(StoredFile, download.stored_file_id)
        inbound = await session.get(InboundMessage, download.inbound_message_id)
    assert stored is not None and stored.data == content and stored.mime_type == "image/png"
    assert inbound is not None and not inbound.held
    assert inbound.payload["media"]["id"] == photo
    # The URL was asked of Graph, then fetched with the token (the fake checks it).
    paths = [r.path for r in live.fake.requests if r.media_id == media.media_id]
    assert paths == [f"/v23.0/{media.media_id}", f"/media-download/{media.media_id}"]


async def test_a_hex_checksum_is_accepted_too(live: Live) -> None:
    await _start_photo_step(live)
    media = live.fake.add_inbound_media(png(), "image/png")
    assert await live.send_media(media, sha256=media.sha256) == 200
    await eventually(lambda: "Got your photo." in live.texts())


async def _refused_and_asked_again(live: Live, reason: str) -> MediaDownload:
    await eventually(lambda: any(reason in text for text in live.texts()))
    [download] = await live.downloads()
    assert download.status is MediaDownloadStatus.REFUSED
    assert download.stored_file_id is None
    assert await live.running.count(StoredFile) == 0  # nothing of it kept
    async with live.db.read() as session:
        retries = list(
            await session.scalars(
                select(FlowStepEvent).where(FlowStepEvent.action == StepAction.RETRY)
            )
        )
    assert [(r.step_name, r.retry_count) for r in retries] == [("ask_photo", 1)]
    [told] = [text for text in live.texts() if reason in text]
    assert told.startswith("I couldn't accept that file:")
    assert "Please send it again" in told
    assert "Got your photo." not in live.texts()
    return download


async def test_a_checksum_mismatch_is_refused(live: Live) -> None:
    await _start_photo_step(live)
    media = live.fake.add_inbound_media(png(), "image/png")
    wrong = "A" * 43 + "="
    assert await live.send_media(media, sha256=wrong) == 200
    download = await _refused_and_asked_again(live, "did not arrive intact")
    assert download.last_error is not None and download.last_error.startswith("checksum")


async def test_html_sent_as_a_png_is_refused_and_the_customer_asked_again(live: Live) -> None:
    await _start_photo_step(live)
    page = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>"
    media = live.fake.add_inbound_media(page, "image/png")
    assert await live.send_media(media) == 200
    await _refused_and_asked_again(live, "a web page or a program")
    # A real photo afterwards goes through: the step is still waiting for it.
    media = live.fake.add_inbound_media(png(), "image/png")
    assert await live.send_media(media) == 200
    await eventually(lambda: "Got your photo." in live.texts())


async def test_a_decompression_bomb_is_refused_before_decoding(live: Live) -> None:
    await _start_photo_step(live)
    media = live.fake.add_inbound_media(bomb_png(), "image/png")
    assert await live.send_media(media) == 200
    await _refused_and_asked_again(live, "far too many pixels")


async def test_an_expired_url_is_fetched_fresh(live: Live) -> None:
    await _start_photo_step(live)
    live.fake.fail_next(1, FaultKind.URL_EXPIRED, route="download")
    media = live.fake.add_inbound_media(png(), "image/png")
    assert await live.send_media(media) == 200
    await eventually(lambda: "Got your photo." in live.texts())
    [download] = await live.downloads()
    assert download.attempts == 1  # within the same attempt
    calls = [(r.path, r.status) for r in live.fake.requests if r.media_id == media.media_id]
    assert calls == [
        (f"/v23.0/{media.media_id}", 200),
        (f"/media-download/{media.media_id}", 404),
        (f"/v23.0/{media.media_id}", 200),
        (f"/media-download/{media.media_id}", 200),
    ]


async def test_server_errors_are_retried_with_backoff_then_stored(live: Live) -> None:
    await _start_photo_step(live)
    live.fake.fail_next(2, FaultKind.SERVER_ERROR, route="download")
    media = live.fake.add_inbound_media(png(), "image/png")
    assert await live.send_media(media) == 200
    for attempt in (1, 2):
        # The failure is kept, visible, with the next attempt pushed into the future.
        async def failed_once(attempt: int = attempt) -> bool:
            [row] = await live.downloads()
            return row.attempts == attempt and row.last_error is not None

        await eventually(failed_once)
        [row] = await live.downloads()
        assert row.status is MediaDownloadStatus.PENDING
        assert row.next_attempt_at is not None and row.next_attempt_at > utcnow()
        assert "131000" in (row.last_error or "")
        # The message waits, held, while the download is pending: nothing overtook it.
        assert "Got your photo." not in live.texts()
        # Skip the wait (backoff is seconds) instead of sleeping through it.
        async with live.db.transaction() as session:
            await session.execute(
                update(MediaDownload).values(next_attempt_at=utcnow() - dt.timedelta(seconds=1))
            )
        live.app[MEDIA].wake()
    await eventually(lambda: "Got your photo." in live.texts())
    [row] = await live.downloads()
    assert row.status is MediaDownloadStatus.STORED and row.attempts == 3


async def test_the_webhook_ack_never_waits_for_a_download(live: Live) -> None:
    await _start_photo_step(live)
    live.fake.fail_next(1, FaultKind.TIMEOUT_BEFORE, route="download")  # Graph hangs 2 s
    media = live.fake.add_inbound_media(png(), "image/png")
    assert await live.send_media(media) == 200
    await eventually(lambda: any(r.fault is FaultKind.TIMEOUT_BEFORE for r in live.fake.requests))
    # While the download hangs, the next message is acknowledged at once...
    started = time.monotonic()
    assert await live.say("thanks") == 200
    assert time.monotonic() - started < live.fake.hang

    # ...and waits, in order, behind the held photo; the timeout is retried.
    async def retried() -> bool:
        [row] = await live.downloads()
        return row.attempts == 1 and row.last_error is not None

    await eventually(retried)
    assert "Got your photo." not in live.texts()
    async with live.db.transaction() as session:
        await session.execute(update(MediaDownload).values(next_attempt_at=utcnow()))
    live.app[MEDIA].wake()
    await eventually(lambda: "Got your photo." in live.texts())

    async def both_done() -> bool:
        async with live.db.read() as session:
            rows = list(await session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        return all(row.processed_at is not None for row in rows)

    await eventually(both_done)
    async with live.db.read() as session:
        rows = list(await session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
    photo, thanks = rows[-2:]
    assert photo.kind == "image" and thanks.kind == "text"
    assert photo.processed_at is not None and thanks.processed_at is not None
    assert photo.processed_at <= thanks.processed_at


async def test_a_missing_media_id_fails_and_the_customer_is_told(live: Live) -> None:
    await _start_photo_step(live)
    ghost = StoredMedia(
        media_id="999999", content=b"", mime_type="image/png", filename="", sha256="0" * 64
    )
    assert await live.send_media(ghost) == 200
    await eventually(lambda: any("could not fetch it" in text for text in live.texts()))
    [download] = await live.downloads()
    assert download.status is MediaDownloadStatus.FAILED
    live.fake.requests.clear()  # the 400 for the unknown id was expected


async def test_the_console_lists_downloads_and_serves_the_file(live: Live) -> None:
    await _start_photo_step(live)
    live.fake.fail_next(5, FaultKind.SERVER_ERROR, route="download")  # pending meanwhile
    content = png()
    media = live.fake.add_inbound_media(content, "image/png")
    assert await live.send_media(media) == 200

    async def failed_once() -> bool:
        [row] = await live.downloads()
        return row.last_error is not None

    await eventually(failed_once)
    await create_operator(live.db, "viewer1", PASSWORD, OperatorRole.VIEWER, actor="test")
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        browser = Browser(live.running.url, http)
        assert (await browser.login("viewer1")).status == 303
        page = await browser.get("/console/media?status=pending")
        assert page.status == 200 and "131000" in page.text  # the retry is visible
        live.fake.clear_faults()
        async with live.db.transaction() as session:
            await session.execute(update(MediaDownload).values(next_attempt_at=utcnow()))
        live.app[MEDIA].wake()
        await eventually(lambda: "Got your photo." in live.texts())
        [row] = await live.downloads()
        async with live.db.read() as session:
            shown = await previews(session, [row.inbound_message_id])
        assert shown == {
            f"in-{row.inbound_message_id}": MediaPreview(
                f"/console/media/{row.id}/file", "image/png", f"image-{row.id}.png", len(content)
            )
        }
        served = await browser.get(f"/console/media/{row.id}/file")
        assert served.body == content
        assert served.headers["Content-Type"] == "image/png"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        listed = await browser.get("/console/media")
        assert f"/console/media/{row.id}/file" in listed.text
        # The operator sees the photo in the customer's conversation, in its bubble.
        async with live.db.read() as session:
            contact_id = await session.scalar(
                select(InboundMessage.contact_id).where(
                    InboundMessage.id == row.inbound_message_id
                )
            )
        conversation = await browser.get(f"/console/conversations/{contact_id}")
        assert conversation.status == 200
        bubble = conversation.text.split(f'id="in-{row.inbound_message_id}"', 1)[1]
        bubble = bubble.split("</div>", 1)[0]
        assert f'<img class="proof" src="/console/media/{row.id}/file"' in bubble
