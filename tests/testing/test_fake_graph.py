"""The fake Graph API over real HTTP on loopback: validation, auth, media, faults."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from testing.fake_graph import FAULTS, FakeGraph, FaultKind, run_fake_graph

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE_ID = "106540352242922"
TO = "+263 77 123 4567"
TEXT = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": TO,
    "type": "text",
    "text": {"body": "Your safari is booked"},
}
READ = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.HBgLMjYz"}
PDF = b"%PDF-1.4\n% a tour summary\n"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    graph = FakeGraph(token=TOKEN, hang=10.0)
    await graph.start()
    yield graph
    await graph.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    async with http.request(
        method, url, headers=AUTH if headers is None else headers, **kwargs
    ) as response:
        return response.status, await response.json(content_type=None)


async def send(
    http: aiohttp.ClientSession, fake: FakeGraph, body: Any, **kwargs: Any
) -> tuple[int, Any]:
    return await call(http, "POST", f"{fake.base_url}/{PHONE_ID}/messages", json=body, **kwargs)


def pdf_form(
    *, mime: str = "application/pdf", type_field: str | None = "application/pdf"
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("messaging_product", "whatsapp")
    if type_field is not None:
        form.add_field("type", type_field)
    form.add_field("file", PDF, filename="tour.pdf", content_type=mime)
    return form


async def upload(http: aiohttp.ClientSession, fake: FakeGraph, **kwargs: Any) -> tuple[int, Any]:
    return await call(http, "POST", f"{fake.base_url}/{PHONE_ID}/media", data=pdf_form(**kwargs))


# --- messages -----------------------------------------------------------------------------


async def test_a_valid_text_is_accepted_and_recorded(
    fake: FakeGraph, http: aiohttp.ClientSession
) -> None:
    assert fake.base_url is not None
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/v23.0")
    status, answer = await send(http, fake, TEXT)
    wamid = answer["messages"][0]["id"]
    assert status == 200
    assert answer == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": TO, "wa_id": "263771234567"}],
        "messages": [{"id": wamid}],
    }
    assert wamid.startswith("wamid.")
    [sent] = fake.sent
    assert (sent.wamid, sent.to, sent.body) == (wamid, TO, TEXT)
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", f"/v23.0/{PHONE_ID}/messages")
    assert (request.status, request.wamid, request.body, request.fault) == (200, wamid, TEXT, None)
    assert request.at.tzinfo is not None


async def test_every_accepted_message_gets_its_own_wamid(
    fake: FakeGraph, http: aiohttp.ClientSession
) -> None:
    for _ in range(5):
        await send(http, fake, TEXT)
    assert len({sent.wamid for sent in fake.sent}) == 5


async def test_an_invalid_message_gets_metas_error_shape(
    fake: FakeGraph, http: aiohttp.ClientSession
) -> None:
    buttons = [{"type": "reply", "reply": {"id": f"b{i}", "title": f"B{i}"}} for i in range(4)]
    body = {
        **TEXT,
        "type": "interactive",
        "interactive": {"type": "button", "body": {"text": "?"}, "action": {"buttons": buttons}},
    }
    del body["text"]
    status, answer = await send(http, fake, body)
    assert status == 400
    error = answer["error"]
    assert error["message"] == "(#100) Invalid parameter"
    assert (error["type"], error["code"]) == ("OAuthException", 100)
    assert error["error_data"] == {
        "messaging_product": "whatsapp",
        "details": "$.interactive.action.buttons: has 4 items; at most 3 allowed",
    }
    assert isinstance(error["fbtrace_id"], str)
    assert error["fbtrace_id"]
    assert fake.sent == []
    assert [(r.status, r.wamid) for r in fake.requests] == [(400, None)]


@pytest.mark.parametrize(
    ("kwargs", "details"),
    [
        ({"data": b"{not json", "headers": {**AUTH, "Content-Type": "application/json"}}, "JSON"),
        ({"json": ["a", "list"]}, "a JSON object"),
        ({"json": {**TEXT, "to": 263771234567}}, "$.to: 263771234567 is not of type 'string'"),
    ],
    ids=["not json", "not an object", "number as to"],
)
async def test_malformed_bodies_are_refused(
    fake: FakeGraph, http: aiohttp.ClientSession, kwargs: dict[str, Any], details: str
) -> None:
    status, answer = await call(http, "POST", f"{fake.base_url}/{PHONE_ID}/messages", **kwargs)
    assert status == 400
    assert answer["error"]["code"] == 100
    assert details in answer["error"]["error_data"]["details"]
    assert fake.sent == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}],
    ids=["missing", "wrong", "not bearer"],
)
async def test_a_bad_token_is_401(
    fake: FakeGraph, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    status, answer = await send(http, fake, TEXT, headers=headers)
    assert status == 401
    assert answer["error"]["code"] == 190
    assert answer["error"]["type"] == "OAuthException"
    assert fake.sent == []
    assert [r.status for r in fake.requests] == [401]


async def test_only_the_configured_phone_number_exists(http: aiohttp.ClientSession) -> None:
    async with FakeGraph(token=TOKEN, phone_number_id=PHONE_ID) as fake:
        ok, _ = await send(http, fake, TEXT)
        status, answer = await call(http, "POST", f"{fake.base_url}/999/messages", json=TEXT)
    assert ok == 200
    assert status == 400
    assert "Object with ID '999' does not exist" in answer["error"]["message"]
    assert len(fake.sent) == 1


# --- mark as read -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [READ, {**READ, "typing_indicator": {"type": "text"}}], ids=["read", "typing"]
)
async def test_mark_as_read_succeeds(
    fake: FakeGraph, http: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    status, answer = await send(http, fake, body)
    assert (status, answer) == (200, {"success": True})
    assert fake.marked_read == ["wamid.HBgLMjYz"]
    assert fake.sent == []
    assert fake.requests[0].status == 200


async def test_a_bad_mark_as_read_is_refused(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    status, answer = await send(http, fake, {**READ, "to": TO})
    assert status == 400
    assert "'to' was unexpected" in answer["error"]["error_data"]["details"]
    assert fake.marked_read == []


# --- media --------------------------------------------------------------------------------


async def test_media_upload_metadata_and_download_round_trip(
    fake: FakeGraph, http: aiohttp.ClientSession
) -> None:
    status, answer = await upload(http, fake)
    assert status == 200
    media_id = answer["id"]
    assert media_id.isdigit()

    status, info = await call(http, "GET", f"{fake.base_url}/{media_id}")
    assert status == 200
    assert info == {
        "url": info["url"],
        "mime_type": "application/pdf",
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "file_size": str(len(PDF)),
        "id": media_id,
        "messaging_product": "whatsapp",
    }
    assert info["url"].endswith(f"/media-download/{media_id}")

    async with http.get(info["url"], headers=AUTH) as response:
        assert response.status == 200
        assert response.content_type == "application/pdf"
        assert await response.read() == PDF
    async with http.get(info["url"]) as response:
        assert response.status == 401

    recorded = fake.requests[0]
    assert recorded.media_id == media_id
    assert recorded.form == {
        "messaging_product": "whatsapp",
        "type": "application/pdf",
        "filename": "tour.pdf",
        "content_type": "application/pdf",
        "size": str(len(PDF)),
    }
    assert fake.media[media_id].content == PDF


async def test_an_uploaded_document_can_be_sent_by_id(
    fake: FakeGraph, http: aiohttp.ClientSession
) -> None:
    _, answer = await upload(http, fake)
    document = {"id": answer["id"], "filename": "tour.pdf", "caption": "Your tour"}
    body = {**TEXT, "type": "document", "document": document}
    del body["text"]
    status, _ = await send(http, fake, body)
    assert status == 200
    assert fake.sent[0].body["document"]["id"] == answer["id"]


@pytest.mark.parametrize(
    ("kwargs", "details"),
    [
        ({"type_field": None}, "type (the file's MIME type) is required"),
        ({"mime": "pdf"}, "file needs a MIME content type"),
    ],
    ids=["no type", "bad content type"],
)
async def test_bad_uploads_are_refused(
    fake: FakeGraph, http: aiohttp.ClientSession, kwargs: dict[str, Any], details: str
) -> None:
    status, answer = await upload(http, fake, **kwargs)
    assert status == 400
    assert details in answer["error"]["error_data"]["details"]
    assert fake.media == {}


async def test_an_upload_that_is_not_multipart_is_refused(
    fake: FakeGraph, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(http, "POST", f"{fake.base_url}/{PHONE_ID}/media", json=TEXT)
    assert status == 400
    assert "file is required" in answer["error"]["error_data"]["details"]


async def test_unknown_media_is_refused(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    status, answer = await call(http, "GET", f"{fake.base_url}/424242")
    assert status == 400
    assert answer["error"]["code"] == 100
    base = fake.base_url.rsplit("/", 1)[0] if fake.base_url else ""
    async with http.get(f"{base}/media-download/424242", headers=AUTH) as response:
        assert response.status == 404


# --- faults -------------------------------------------------------------------------------

HTTP_FAULTS = [
    (FaultKind.RATE_LIMIT, 429, 130429),
    (FaultKind.SERVER_ERROR, 500, 131000),
    (FaultKind.UNAVAILABLE, 503, 2),
    (FaultKind.PAIR_RATE_LIMIT, 400, 131056),
    (FaultKind.OUTSIDE_WINDOW, 400, 131047),
    (FaultKind.UNDELIVERABLE, 400, 131026),
]


@pytest.mark.parametrize(("kind", "status", "code"), HTTP_FAULTS, ids=[k for k, *_ in HTTP_FAULTS])
async def test_each_http_fault_answers_like_meta_once(
    fake: FakeGraph, http: aiohttp.ClientSession, kind: FaultKind, status: int, code: int
) -> None:
    fake.fail_next(1, kind)
    failed, answer = await send(http, fake, TEXT)
    recovered, _ = await send(http, fake, TEXT)
    error = answer["error"]
    assert (failed, error["code"], error["type"]) == (status, code, "OAuthException")
    assert error["message"].startswith(f"(#{code}) ")
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"] == FAULTS[kind].details
    assert recovered == 200
    assert len(fake.sent) == 1
    assert fake.injected == {kind: 1}
    assert [(r.status, r.fault) for r in fake.requests] == [(status, kind), (200, None)]


async def test_outside_the_window_is_a_re_engagement_message(
    fake: FakeGraph, http: aiohttp.ClientSession
) -> None:
    fake.fail_next(1, "outside_window")
    _, answer = await send(http, fake, TEXT)
    assert answer["error"]["message"] == "(#131047) Re-engagement message"


async def test_timeout_before_accepts_nothing(fake: FakeGraph) -> None:
    fake.fail_next(1, FaultKind.TIMEOUT_BEFORE)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as impatient:
        with pytest.raises(TimeoutError):
            await send(impatient, fake, TEXT)
    assert fake.sent == []
    assert [(r.status, r.fault, r.wamid) for r in fake.requests] == [
        (None, FaultKind.TIMEOUT_BEFORE, None)
    ]
    assert fake.injected == {FaultKind.TIMEOUT_BEFORE: 1}


async def test_timeout_after_accepts_though_the_client_sees_a_timeout(fake: FakeGraph) -> None:
    fake.fail_next(1, FaultKind.TIMEOUT_AFTER)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as impatient:
        with pytest.raises(TimeoutError):
            await send(impatient, fake, TEXT)
        retried, answer = await send(impatient, fake, TEXT)
    # A blind retry duplicates the message: what exactly-once logic must prevent.
    assert retried == 200
    assert [sent.body for sent in fake.sent] == [TEXT, TEXT]
    first, second = fake.requests
    assert (first.status, first.fault, first.wamid) == (
        200,
        FaultKind.TIMEOUT_AFTER,
        fake.sent[0].wamid,
    )
    assert second.wamid == answer["messages"][0]["id"] == fake.sent[1].wamid


async def test_stop_releases_held_answers_at_once(http: aiohttp.ClientSession) -> None:
    fake = FakeGraph(token=TOKEN, hang=60.0)
    await fake.start()
    fake.fail_next(1, FaultKind.TIMEOUT_BEFORE)
    pending = asyncio.create_task(send(http, fake, TEXT))
    async with asyncio.timeout(5):
        [held] = await fake.wait_for_requests(1)
    assert held.fault is FaultKind.TIMEOUT_BEFORE
    await asyncio.wait_for(fake.stop(), timeout=5)
    status, answer = await asyncio.wait_for(pending, timeout=5)
    assert (status, answer["error"]["code"]) == (503, 2)
    assert fake.sent == []


async def test_faults_hit_only_valid_requests_on_their_route(
    fake: FakeGraph, http: aiohttp.ClientSession
) -> None:
    fake.fail_next(1, FaultKind.SERVER_ERROR)
    fake.fail_next(1, FaultKind.UNAVAILABLE, route="upload")
    invalid, _ = await send(http, fake, {**TEXT, "to": 1})
    read, _ = await send(http, fake, READ)
    uploaded, _ = await upload(http, fake)
    sent, _ = await send(http, fake, TEXT)
    assert (invalid, read, uploaded, sent) == (400, 200, 503, 500)
    assert fake.injected == {FaultKind.SERVER_ERROR: 1, FaultKind.UNAVAILABLE: 1}
    fake.fail_next(2, FaultKind.RATE_LIMIT, route="any")
    read, _ = await send(http, fake, READ)
    uploaded, _ = await upload(http, fake)
    assert (read, uploaded) == (429, 429)


async def test_queued_faults_come_in_order(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    fake.fail_next(2, FaultKind.RATE_LIMIT)
    fake.fail_next(1, FaultKind.UNDELIVERABLE)
    statuses = [(await send(http, fake, TEXT))[0] for _ in range(4)]
    assert statuses == [429, 429, 400, 200]
    fake.fail_next(3, FaultKind.RATE_LIMIT)
    fake.clear_faults()
    assert (await send(http, fake, TEXT))[0] == 200


async def outcomes(seed: int, http: aiohttp.ClientSession) -> tuple[list[int], FakeGraph]:
    async with FakeGraph(token=TOKEN) as fake:
        fake.fault_rate(0.5, ["rate_limit", FaultKind.SERVER_ERROR], seed=seed)
        statuses = [(await send(http, fake, TEXT))[0] for _ in range(20)]
    return statuses, fake


async def test_random_faults_follow_the_seed(http: aiohttp.ClientSession) -> None:
    first, fake = await outcomes(7, http)
    again, _ = await outcomes(7, http)
    assert first == again
    assert set(first) <= {200, 429, 500}
    assert 0 < first.count(200) < 20
    assert (
        sum(fake.injected.values()) == 20 - first.count(200) == len(fake.requests) - len(fake.sent)
    )
    assert fake.injected[FaultKind.RATE_LIMIT] == first.count(429)
    assert fake.injected[FaultKind.SERVER_ERROR] == first.count(500)


async def test_a_zero_rate_ends_random_faults(
    fake: FakeGraph, http: aiohttp.ClientSession
) -> None:
    fake.fault_rate(1.0, [FaultKind.UNAVAILABLE], seed=1)
    assert (await send(http, fake, TEXT))[0] == 503
    fake.fault_rate(0, [])
    assert (await send(http, fake, TEXT))[0] == 200


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda f: f.fail_next(1, "meteor"), "'meteor' is not a valid FaultKind"),
        (lambda f: f.fault_rate(1.5, ["rate_limit"]), "rate must be between 0 and 1"),
        (lambda f: f.fault_rate(0.5, []), "at least one kind"),
    ],
    ids=["unknown kind", "rate above 1", "no kinds"],
)
async def test_bad_fault_settings_are_refused(fake: FakeGraph, action: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        action(fake)


# --- the runner ---------------------------------------------------------------------------


async def test_run_fake_graph_serves_until_cancelled(http: aiohttp.ClientSession) -> None:
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_fake_graph("127.0.0.1", 0, TOKEN, on_ready=ready.set_result))
    base_url = await asyncio.wait_for(ready, timeout=5)
    status, _ = await call(http, "POST", f"{base_url}/{PHONE_ID}/messages", json=TEXT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(http, "POST", f"{base_url}/{PHONE_ID}/messages", json=TEXT)


async def test_a_fake_cannot_start_twice(fake: FakeGraph) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        await fake.start()
