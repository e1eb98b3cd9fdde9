"""``nyala serve`` over real HTTP on loopback, against the fake Graph API, both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientError, ClientSession, web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.keys import ENGINE, RUNTIME
from bot.server import GUARD, ConnectionGuard, GuardedRunner, create_app, startup_warnings
from bot.settings import Settings
from bot.web import Route, runtime_of
from flows import App
from flows.messages import Document, Template, Text, reply_to_payload
from flows.runtime import Runtime
from storage import (
    Database,
    IgnoredUpdate,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
    StoredFile,
    get_or_create_contact,
)
from testing.fake_graph import FakeGraph, FaultKind, StoredMedia
from testing.meta_spec import MetaSpec
from tests.bot.webhooks import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    message,
    messages_payload,
    signed,
    status_payload,
)

CUSTOMER = "263771110001"


@dataclass
class Running:
    """A server, the fake Graph API it talks to and a client."""

    url: str
    http: ClientSession
    fake: FakeGraph
    db: Database

    async def post(self, document: Any, *, headers: dict[str, str] | None = None) -> int:
        raw, signed_headers = signed(document)
        async with self.http.post(
            f"{self.url}/webhook", data=raw, headers=headers or signed_headers
        ) as response:
            return response.status

    async def count(self, model: Any) -> int:
        async with self.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def eventually(check: Callable[[], Any], within: float = 15.0) -> None:
    """Wait until ``check()`` is truthy (awaiting it if needed)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def settings_for(database_url: str, api_base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "whatsapp_app_secret": APP_SECRET,
        "whatsapp_verify_token": VERIFY_TOKEN,
        "whatsapp_access_token": ACCESS_TOKEN,
        "whatsapp_phone_number_id": PHONE_NUMBER_ID,
        "whatsapp_api_base": api_base,
        "send_rate": 500.0,
        "graph_timeout": 1.0,
        "max_body_bytes": 64 * 1024,
    }
    values.update(overrides)
    return Settings(**values)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    graph = FakeGraph(token=ACCESS_TOKEN, phone_number_id=PHONE_NUMBER_ID, hang=2.0)
    await graph.start()
    try:
        yield graph
    finally:
        await graph.stop()
    # Every request Nyala made validated against Meta's spec (only injected faults failed).
    refused = [r for r in graph.requests if r.status not in (200, None) and r.fault is None]
    assert refused == [], refused


@pytest_asyncio.fixture
async def server(
    database_url: str, cafe: App, fake: FakeGraph, db: Database
) -> AsyncIterator[Running]:
    app = create_app(settings_for(database_url, fake.base_url), cafe)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        async with ClientSession() as http:
            yield Running(str(test_server.make_url("")).rstrip("/"), http, fake, db)
    finally:
        await test_server.close()


async def test_the_verification_handshake(server: Running) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": VERIFY_TOKEN,
    }
    async with server.http.get(f"{server.url}/webhook", params=query) as response:
        assert response.status == 200
        assert await response.text() == "1158201444"
    query["hub.verify_token"] = "wrong"
    async with server.http.get(f"{server.url}/webhook", params=query) as response:
        assert response.status == 403


async def test_a_whole_conversation_by_webhook(server: Running) -> None:
    assert await server.post(messages_payload(message(CUSTOMER, text="order"))) == 200
    await eventually(lambda: "Your name?" in _texts(server))
    await server.post(messages_payload(message(CUSTOMER, text="Ada Lovelace")))
    await eventually(lambda: "Which size, Ada Lovelace?" in _texts(server))
    await server.post(messages_payload(message(CUSTOMER, reply=("large", "Large"))))
    await eventually(lambda: "How many?" in _texts(server))
    await server.post(messages_payload(message(CUSTOMER, text="2")))
    await eventually(lambda: "2 large for Ada Lovelace. Confirm?" in _texts(server))
    await server.post(messages_payload(message(CUSTOMER, reply=("yes", "Confirm"))))
    await eventually(lambda: "Order placed, Ada Lovelace!" in _texts(server))
    spec = MetaSpec.load()
    for sent in server.fake.sent:
        assert spec.validate_message(sent.body) == []
        assert sent.body["to"] == f"+{CUSTOMER}"
    # Each inbound message was marked as read, before its replies.
    await eventually(lambda: len(server.fake.marked_read) == 5)


async def settled(server: Running) -> bool:
    """Every stored message processed and every reply handed to the Graph API."""
    async with server.db.read() as session:
        waiting = await session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.status == InboundStatus.PENDING)
        )
        unsent = await session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.status == OutboundStatus.QUEUED)
        )
    return waiting == 0 and unsent == 0


def _texts(server: Running) -> list[str]:
    texts = []
    for sent in server.fake.sent:
        body = sent.body
        if body["type"] == "text":
            texts.append(body["text"]["body"])
        elif body["type"] == "interactive":
            texts.append(body["interactive"]["body"]["text"])
    return texts


async def test_redeliveries_are_processed_once(server: Running) -> None:
    payload = messages_payload(message(CUSTOMER, text="order", wamid="wamid.DUP1"))
    assert [await server.post(payload) for _ in range(3)] == [200, 200, 200]
    await eventually(lambda: "Your name?" in _texts(server))
    await eventually(lambda: settled(server))  # nothing left that could send it again
    assert _texts(server).count("Your name?") == 1
    assert await server.count(InboundMessage) == 1


async def test_bad_requests_are_refused_and_store_nothing(server: Running) -> None:
    raw, headers = signed(messages_payload(message(CUSTOMER, text="hi")))
    url = f"{server.url}/webhook"
    async with server.http.post(url, data=raw, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 401
    wrong = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    async with server.http.post(url, data=raw, headers=wrong) as r:
        assert r.status == 403
    bad_raw, bad_headers = signed(b'{"object": "whatsapp_business_account", "entry": [')
    async with server.http.post(url, data=bad_raw, headers=bad_headers) as r:
        assert r.status == 400
    not_utf8, not_utf8_headers = signed(b"\xff\xfe{}")
    async with server.http.post(url, data=not_utf8, headers=not_utf8_headers) as r:
        assert r.status == 400
    huge = messages_payload(message(CUSTOMER, text="x" * 100_000))
    huge_raw, huge_headers = signed(huge)
    async with server.http.post(url, data=huge_raw, headers=huge_headers) as r:
        assert r.status == 413
    assert await server.count(InboundMessage) == 0


async def test_well_formed_but_unknown_updates_get_200(server: Running) -> None:
    assert await server.post({"object": "page", "entry": []}) == 200
    assert await server.post({"something": "else"}) == 200
    assert await server.post([1, 2, 3]) == 200
    unknown_field = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {}}]}],
    }
    assert await server.post(unknown_field) == 200
    assert await server.count(InboundMessage) == 0


@pytest.mark.parametrize("index", range(16))
async def test_every_webhook_example_of_the_spec_is_accepted(server: Running, index: int) -> None:
    name, example = MetaSpec.load().webhook_examples()[index]
    # Live mode downloads inbound media: the fake knows the example's media ids (the
    # bytes do not match the example's checksum, so the file is refused, not stored).
    for entry in example.get("entry", []):
        for change in entry.get("changes", []):
            for sent in change.get("value", {}).get("messages", []):
                media = sent.get(sent.get("type"))
                if isinstance(media, dict) and "id" in media and "mime_type" in media:
                    server.fake.media[str(media["id"])] = StoredMedia(
                        media_id=str(media["id"]),
                        content=b"example",
                        mime_type=str(media["mime_type"]),
                        filename="",
                        sha256=hashlib.sha256(b"example").hexdigest(),
                    )
    assert await server.post(example) == 200, name

    async def handled() -> bool:
        async with server.db.read() as session:
            inbound = (await session.scalars(select(InboundMessage))).all()
            ignored = await session.scalar(select(func.count()).select_from(IgnoredUpdate))
        # A message is processed (answered); anything else is recorded as ignored.
        return bool(inbound and all(m.status.value == "done" for m in inbound)) or bool(ignored)

    await eventually(handled)
    if name == "Text Message":
        await eventually(lambda: len(_texts(server)) == 1)  # routed to the flows: answered


async def test_statuses_move_forward_only(server: Running) -> None:
    await server.post(messages_payload(message(CUSTOMER, text="order")))
    await eventually(lambda: "Your name?" in _texts(server))
    wamid = next(s.wamid for s in server.fake.sent if s.body["type"] == "text")
    for status in ("delivered", "read", "delivered", "sent"):
        assert await server.post(status_payload(wamid, status, CUSTOMER)) == 200
    async with server.db.read() as session:
        row = await session.scalar(
            select(OutboundMessage).where(OutboundMessage.wa_message_id == wamid)
        )
    assert row is not None and row.status is OutboundStatus.READ


async def test_a_failed_status_is_recorded_with_its_code(server: Running) -> None:
    await server.post(messages_payload(message(CUSTOMER, text="order")))
    await eventually(lambda: "Your name?" in _texts(server))
    wamid = next(s.wamid for s in server.fake.sent if s.body["type"] == "text")

    async def recorded() -> bool:  # Meta answered before the sender wrote the id down
        async with server.db.read() as session:
            found = select(OutboundMessage.id).where(OutboundMessage.wa_message_id == wamid)
            return await session.scalar(found) is not None

    await eventually(recorded)
    error = {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "error_data": {"details": "Message failed to send because more than 24 hours have passed"},
    }
    await server.post(status_payload(wamid, "failed", CUSTOMER, errors=[error]))
    async with server.db.read() as session:
        row = await session.scalar(
            select(OutboundMessage).where(OutboundMessage.wa_message_id == wamid)
        )
    assert row is not None
    assert (row.status, row.error_code) == (OutboundStatus.FAILED, 131047)
    assert row.last_error is not None and "24 hours" in row.last_error


async def test_transient_graph_errors_are_retried(server: Running) -> None:
    server.fake.fail_next(2, "server_error")
    await server.post(messages_payload(message(CUSTOMER, text="order")))
    await eventually(lambda: "Your name?" in _texts(server), within=20)
    assert server.fake.injected[FaultKind.SERVER_ERROR] == 2
    assert _texts(server).count("Your name?") == 1


async def test_a_timeout_after_acceptance_is_an_ambiguous_resend(server: Running) -> None:
    server.fake.fail_next(1, "timeout_after")
    await server.post(messages_payload(message(CUSTOMER, text="order")))
    await eventually(lambda: _texts(server).count("Your name?") == 2, within=30)

    async def reply_recorded() -> OutboundMessage | None:
        # The sender records the send after Meta's answer: wait for that too.
        async with server.db.read() as session:
            reply = await session.scalar(
                select(OutboundMessage).where(OutboundMessage.kind == "text")
            )
        return reply if reply is not None and reply.status is OutboundStatus.SENT else None

    await eventually(reply_recorded, within=30)
    reply = await reply_recorded()
    async with server.db.read() as session:
        row = await session.scalar(
            select(OutboundMessage).where(OutboundMessage.kind == "buttons")
        )
    assert reply is not None
    assert (reply.status, reply.ambiguous_resends) == (OutboundStatus.SENT, 1)
    async with server.http.get(f"{server.url}/metrics") as response:
        text = await response.text()
    assert "nyala_outbound_ambiguous_resends_total 1.0" in text
    assert row is None


async def test_permanent_errors_are_marked_failed(server: Running) -> None:
    server.fake.fail_next(1, "undeliverable")
    await server.post(messages_payload(message(CUSTOMER, text="order")))

    async def failed() -> bool:
        async with server.db.read() as session:
            row = await session.scalar(
                select(OutboundMessage).where(OutboundMessage.kind == "text")
            )
        return row is not None and row.status is OutboundStatus.FAILED

    await eventually(failed)
    async with server.db.read() as session:
        row = await session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "text"))
    assert row is not None and row.error_code == 131026


async def test_health_and_metrics(server: Running) -> None:
    async with server.http.get(f"{server.url}/healthz") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ok"
    await server.post(messages_payload(message(CUSTOMER, text="hi")))
    async with server.http.get(f"{server.url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    assert 'nyala_webhook_requests_total{status="200"} 1.0' in text
    assert "nyala_inbound_stored_total 1.0" in text


async def test_without_an_app_secret_posts_are_refused(
    database_url: str, cafe: App, fake: FakeGraph
) -> None:
    app = create_app(settings_for(database_url, fake.base_url, whatsapp_app_secret=None), cafe)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        raw, headers = signed(messages_payload(message(CUSTOMER, text="hi")))
        async with (
            ClientSession() as http,
            http.post(test_server.make_url("/webhook"), data=raw, headers=headers) as response,
        ):
            assert response.status == 503
            assert "WHATSAPP_APP_SECRET" in await response.text()
    finally:
        await test_server.close()


async def test_sandbox_mode_stores_replies_and_sends_nothing(
    database_url: str, cafe: App, fake: FakeGraph, db: Database
) -> None:
    settings = settings_for(database_url, fake.base_url, whatsapp_access_token=None)
    test_server = TestServer(create_app(settings, cafe), host="127.0.0.1")
    await test_server.start_server()
    try:
        raw, headers = signed(messages_payload(message(CUSTOMER, text="order")))
        async with (
            ClientSession() as http,
            http.post(test_server.make_url("/webhook"), data=raw, headers=headers) as response,
        ):
            assert response.status == 200

        async def stored() -> bool:
            async with db.read() as session:
                rows = (await session.scalars(select(OutboundMessage))).all()
            return [r.status for r in rows] == [OutboundStatus.SANDBOX]

        await eventually(stored)
        assert fake.requests == []
    finally:
        await test_server.close()


TEMPLATE = Template("tour_reminder", "en_US", ("Ada",), "Your tour is in 7 days")


async def queue_direct(
    db: Database, *, last_inbound_hours_ago: float, fallback: Template | None
) -> int:
    """Queue a business-initiated text for a contact last heard from a while ago."""
    now = dt.datetime.now(dt.UTC)
    async with db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id=CUSTOMER)
        contact.last_inbound_at = now - dt.timedelta(hours=last_inbound_hours_ago)
        row = OutboundMessage(
            contact_id=contact.id,
            kind="text",
            payload=reply_to_payload(Text("Your tour is in 7 days, Ada!")),
            status=OutboundStatus.QUEUED,
            next_attempt_at=now,
            fallback=reply_to_payload(fallback) if fallback else None,
        )
        session.add(row)
        await session.flush()
        return row.id


async def outbound(db: Database, row_id: int) -> OutboundMessage:
    async with db.read() as session:
        row = await session.get(OutboundMessage, row_id)
    assert row is not None
    return row


async def test_outside_the_window_without_a_template_nothing_is_sent(server: Running) -> None:
    row_id = await queue_direct(server.db, last_inbound_hours_ago=30, fallback=None)
    await eventually(lambda: _status_is(server.db, row_id, OutboundStatus.FAILED))
    row = await outbound(server.db, row_id)
    assert row.error_code == 131047
    assert server.fake.sent == []


async def test_outside_the_window_the_template_is_sent(server: Running) -> None:
    row_id = await queue_direct(server.db, last_inbound_hours_ago=30, fallback=TEMPLATE)
    await eventually(lambda: _status_is(server.db, row_id, OutboundStatus.SENT))
    [sent] = server.fake.sent
    assert sent.body["type"] == "template"
    assert sent.body["template"]["name"] == "tour_reminder"


async def test_a_synchronous_131047_falls_back_to_the_template(server: Running) -> None:
    server.fake.fail_next(1, "outside_window")
    row_id = await queue_direct(server.db, last_inbound_hours_ago=1, fallback=TEMPLATE)
    await eventually(lambda: _status_is(server.db, row_id, OutboundStatus.SENT))
    assert [s.body["type"] for s in server.fake.sent] == ["template"]


async def test_a_131047_status_resends_as_the_template(server: Running) -> None:
    row_id = await queue_direct(server.db, last_inbound_hours_ago=1, fallback=TEMPLATE)
    await eventually(lambda: _status_is(server.db, row_id, OutboundStatus.SENT))
    wamid = server.fake.sent[0].wamid
    error = {"code": 131047, "title": "Re-engagement message"}
    assert await server.post(status_payload(wamid, "failed", CUSTOMER, errors=[error])) == 200
    await eventually(lambda: len(server.fake.sent) == 2)
    assert [s.body["type"] for s in server.fake.sent] == ["text", "template"]
    await eventually(lambda: _status_is(server.db, row_id, OutboundStatus.SENT))


async def _status_is(db: Database, row_id: int, status: OutboundStatus) -> bool:
    return (await outbound(db, row_id)).status is status


async def test_emoji_rtl_and_long_texts_are_handled(server: Running) -> None:
    text = "مرحبا 👋🏽 שלום " * 400  # with JSON's \\u escapes about 45 kB, under the limit
    assert await server.post(messages_payload(message(CUSTOMER, text=text))) == 200
    await eventually(lambda: len(_texts(server)) == 1)
    async with server.db.read() as session:
        row = await session.scalar(select(InboundMessage))
    assert row is not None and row.payload["text"] == text


async def test_documents_are_uploaded_then_sent_by_media_id(server: Running) -> None:
    pdf = b"%PDF-1.4\n% a receipt\n"
    now = dt.datetime.now(dt.UTC)
    async with server.db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id=CUSTOMER)
        contact.last_inbound_at = now
        stored = StoredFile.from_bytes("Receipt_RCT-2026-000001.pdf", "application/pdf", pdf)
        session.add(stored)
        await session.flush()
        document = Document(stored.id, "Receipt_RCT-2026-000001.pdf", "Your receipt")
        session.add(
            OutboundMessage(
                contact_id=contact.id, kind="document", payload=reply_to_payload(document),
                status=OutboundStatus.QUEUED, next_attempt_at=now,
            )
        )  # fmt: skip
    await eventually(lambda: len(server.fake.sent) == 1)
    [sent] = server.fake.sent
    media_id = sent.body["document"]["id"]
    assert sent.body["document"]["filename"] == "Receipt_RCT-2026-000001.pdf"
    assert sent.body["document"]["caption"] == "Your receipt"
    assert server.fake.media[media_id].content == pdf
    assert server.fake.media[media_id].mime_type == "application/pdf"


class Greeter:
    """A service an app's lifespan provides."""


async def test_an_apps_routes_and_lifespans_run_with_the_server(
    database_url: str, cafe: App, fake: FakeGraph
) -> None:
    events: list[str] = []
    greeter = Greeter()

    @cafe.lifespan
    async def greeting(runtime: Runtime) -> AsyncIterator[None]:
        events.append(f"start sandbox={runtime.sandbox}")
        runtime.services.provide(Greeter, greeter)
        yield
        events.append("stop")

    async def hello(request: web.Request) -> web.StreamResponse:
        runtime = runtime_of(request)
        found = runtime.services.get(Greeter) is greeter
        return web.json_response({"app": runtime.app.name, "greeter": found})

    cafe.add_route(Route("GET", "/hello/{name}", hello))
    test_server = TestServer(
        create_app(settings_for(database_url, fake.base_url), cafe), host="127.0.0.1"
    )
    await test_server.start_server()
    try:
        assert events == ["start sandbox=False"]
        async with ClientSession() as http, http.get(test_server.make_url("/hello/ada")) as r:
            assert r.status == 200
            assert await r.json() == {"app": "Test Café", "greeter": True}
        # The engine answering WhatsApp sees the same services as the routes.
        assert test_server.app[ENGINE].services is test_server.app[RUNTIME].services
    finally:
        await test_server.close()
    assert events == ["start sandbox=False", "stop"]


def test_an_app_cannot_take_the_frameworks_paths() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response()

    for path in ("/webhook", "/healthz", "/metrics", "/console", "/console/bookings"):
        with pytest.raises(ValueError, match="is the framework's own"):
            Route("GET", path, handler)


def test_startup_warnings_are_the_frameworks_own(database_url: str) -> None:
    notes = startup_warnings(Settings(database_url=database_url))
    assert any(n.startswith("WHATSAPP_APP_SECRET is not set") for n in notes)
    assert any(n.startswith("WHATSAPP_ACCESS_TOKEN is not set: sandbox mode") for n in notes)
    assert all("OMARI" not in n and "Omari" not in n for n in notes)


SECURITY_HEADERS = ("X-Content-Type-Options", "Content-Security-Policy", "Referrer-Policy")


async def test_every_response_carries_the_security_headers(server: Running) -> None:
    raw, headers = signed(messages_payload(message(CUSTOMER, text="hi")))
    requests = [
        ("GET", "/healthz", {}, None),
        ("GET", "/metrics", {}, None),
        ("GET", "/no-such-page", {}, None),
        ("GET", "/webhook", {}, None),  # a failed handshake
        ("POST", "/webhook", headers, raw),
        ("POST", "/webhook", {"X-Hub-Signature-256": "sha256=00"}, raw),
        ("POST", "/healthz", {}, None),  # 405
        ("POST", "/webhook", headers, b"x" * (128 * 1024)),  # 413
    ]
    seen: set[int] = set()
    for method, path, extra, body in requests:
        async with server.http.request(
            method, server.url + path, headers=extra, data=body
        ) as response:
            seen.add(response.status)
            for name in SECURITY_HEADERS:
                assert name in response.headers, (method, path, response.status, name)
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["Server"] == "nyala"
    assert seen == {200, 403, 404, 405, 413}, seen


async def test_healthz_tells_nothing_private(server: Running) -> None:
    async with server.http.get(f"{server.url}/healthz") as response:
        assert await response.json() == {"status": "ok"}


async def test_metrics_need_the_token_when_one_is_set(
    database_url: str, cafe: App, fake: FakeGraph, db: Database
) -> None:
    settings = settings_for(database_url, fake.base_url, metrics_token="s3cret-metrics")
    test_server = TestServer(create_app(settings, cafe), host="127.0.0.1")
    await test_server.start_server()
    url = str(test_server.make_url("/metrics"))
    try:
        async with ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            for wrong in ("Bearer nope", "Basic s3cret-metrics", "Bearer "):
                async with http.get(url, headers={"Authorization": wrong}) as response:
                    assert response.status == 401
            auth = {"Authorization": "Bearer s3cret-metrics"}
            async with http.get(url, headers=auth) as response:
                assert response.status == 200
                assert "nyala_" in await response.text()
    finally:
        await test_server.close()


async def test_without_a_token_metrics_are_for_loopback_only(server: Running) -> None:
    async with server.http.get(
        f"{server.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}
    ) as response:
        assert response.status == 404  # proxied from outside: not served
    async with server.http.get(f"{server.url}/metrics") as response:
        assert response.status == 200


@dataclass
class Guarded:
    """``nyala serve``'s runner (with its connection guard) on a free loopback port."""

    host: str
    port: int
    guard: ConnectionGuard

    async def raw(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    async def healthz(self) -> int:
        async with (
            ClientSession() as http,
            http.get(f"http://{self.host}:{self.port}/healthz") as response,
        ):
            return response.status


@pytest_asyncio.fixture
async def guarded(database_url: str, cafe: App, db: Database) -> AsyncIterator[Guarded]:
    settings = Settings(
        database_url=database_url, request_timeout=1.0, max_connections_per_address=8
    )
    app = create_app(settings, cafe)
    runner = GuardedRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Guarded("127.0.0.1", site.port, app[GUARD])
    finally:
        await runner.cleanup()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """How long until the server closes the connection (reading whatever it sends)."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while await reader.read(1024):
            pass
    return time.monotonic() - started


async def _trickle(writer: asyncio.StreamWriter, data: bytes, every: float = 0.2) -> None:
    """Send ``data`` a byte at a time (a slowloris), until the server hangs up."""
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)
    except (ConnectionError, OSError):
        return


async def test_a_request_trickling_its_headers_is_cut_off(guarded: Guarded) -> None:
    reader, writer = await guarded.raw()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    sender = asyncio.create_task(_trickle(writer, head))
    waited = await _closed_within(reader, 5)
    sender.cancel()
    writer.close()
    assert 0.8 <= waited <= 3, waited
    assert await guarded.healthz() == 200  # the server still answers others


async def test_a_request_trickling_its_body_is_cut_off(guarded: Guarded) -> None:
    reader, writer = await guarded.raw()
    writer.write(
        b"POST /console/login HTTP/1.1\r\nHost: x\r\nContent-Type: "
        b"application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
    )
    await writer.drain()
    sender = asyncio.create_task(_trickle(writer, b"username=" + b"a" * 900))
    waited = await _closed_within(reader, 5)
    sender.cancel()
    writer.close()
    assert waited <= 3, waited


async def test_a_silent_connection_is_cut_off(guarded: Guarded) -> None:
    reader, writer = await guarded.raw()
    waited = await _closed_within(reader, 5)
    writer.close()
    assert waited <= 3, waited


async def test_a_slow_but_whole_request_and_keep_alive_still_work(guarded: Guarded) -> None:
    reader, writer = await guarded.raw()
    for _ in range(3):  # three requests on one connection, each sent whole in time
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        await asyncio.sleep(0.6)  # idle between requests is not a slow request
    writer.close()


async def test_connections_per_address_are_capped_and_logged_once(
    guarded: Guarded, caplog: pytest.LogCaptureFixture
) -> None:
    guarded.guard.log_interval = 60.0
    caplog.set_level(logging.WARNING, logger="nyala.bot")
    held = [await guarded.raw() for _ in range(8)]
    refused = 0
    for _ in range(20):
        reader, writer = await guarded.raw()
        try:
            refused += await asyncio.wait_for(reader.read(1), 2) == b""
        except (ConnectionError, OSError):
            refused += 1
        writer.close()
    assert refused == 20
    floods = [r for r in caplog.records if "flooding" in r.getMessage()]
    assert len(floods) == 1, [r.getMessage() for r in floods]
    for _, writer in held:
        writer.close()

    async def answers() -> bool:  # once the server has seen the closes, a slot is free
        try:
            return await guarded.healthz() == 200
        except (ClientError, OSError):
            return False

    await eventually(answers)
