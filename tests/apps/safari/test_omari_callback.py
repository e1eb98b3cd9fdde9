"""``POST /payments/omari/callback`` over real HTTP on loopback, with the fake Omari, both
backends: a payment initiated through the server's provider, confirmed by a signed
callback; forged, unsigned, stale, replayed, unknown and mismatched callbacks."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from apps.safari import app as safari
from apps.safari.fake_omari import Delivery, FakeOmari
from apps.safari.lifespan import omari_provider, omari_warnings
from apps.safari.models import Payment, PaymentStatus
from apps.safari.omari import CALLBACK_PATH, ReceiptHooks, SandboxOmari
from apps.safari.omari_callback import SIGNATURE_HEADER, signature
from apps.safari.omari_client import OmariClient
from apps.safari.payments import PaymentProviderError, PaymentProviders, PaymentRequest
from apps.safari.settings import SafariSettings
from bot.keys import RUNTIME
from bot.server import create_app
from bot.settings import Settings
from flows.runtime import Runtime
from storage import Contact, Database, OutboundStatus
from testing.fake_graph import FakeGraph
from tests.apps.safari.test_omari import (
    Seeded,
    Snapshot,
    assert_untouched,
    seed_payment,
    snapshot,
)
from tests.bot.test_server import eventually
from tests.bot.webhooks import ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID

MERCHANT_KEY = "test-merchant-key"
CALLBACK_SECRET = "test-callback-secret"


@dataclass
class Running:
    """A Nyala server whose Omari is the fake, and a pending payment."""

    url: str
    fake: FakeOmari
    db: Database
    http: ClientSession
    seeded: Seeded
    runtime: Runtime

    async def initiate(self) -> str:
        """Initiate the payment through the server's provider, storing its reference as
        the payment flow does; returns the reference."""
        provider = self.runtime.services.get(PaymentProviders).get("omari")
        assert isinstance(provider, OmariClient)
        initiated = await provider.initiate(
            PaymentRequest(
                payment_id=self.seeded.payment_id,
                booking_reference=self.seeded.booking_reference,
                amount=self.seeded.amount,
                currency="USD",
                mobile_number="+263770000321",
            )
        )
        async with self.db.transaction() as s:
            payment = await s.get(Payment, self.seeded.payment_id)
            assert payment is not None
            payment.provider_reference = initiated.provider_reference
        self.seeded = replace(self.seeded, provider_reference=initiated.provider_reference)
        return initiated.provider_reference

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.http.post(self.url + CALLBACK_PATH, data=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def omari_env(
    monkeypatch: pytest.MonkeyPatch, fake: FakeOmari, *, callback_secret: str | None = None
) -> None:
    """The safari app's Omari settings, in the environment it reads them from."""
    assert fake.base_url is not None, "the fake is running"
    monkeypatch.setenv("OMARI_API_BASE", fake.base_url)
    monkeypatch.setenv("OMARI_MERCHANT_KEY", MERCHANT_KEY)
    monkeypatch.setenv("OMARI_TIMEOUT", "2.0")
    if callback_secret is None:
        monkeypatch.delenv("OMARI_CALLBACK_SECRET", raising=False)
    else:
        monkeypatch.setenv("OMARI_CALLBACK_SECRET", callback_secret)


def server_settings(database_url: str, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "whatsapp_app_secret": APP_SECRET,
        "public_url": f"http://127.0.0.1:{port}",
        "send_rate": 500.0,
        "graph_timeout": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


def without_receipts(runtime: Runtime) -> Runtime:
    """These tests are about the confirmation itself: the running app's receipt hook
    (tests/apps/safari/test_receipts.py covers it) is taken out."""
    hooks = runtime.services.get(ReceiptHooks)
    for hook in hooks.hooks:
        hooks.unregister(hook)
    return runtime


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOmari]:
    async with FakeOmari(merchant_key=MERCHANT_KEY, callback_secret=CALLBACK_SECRET) as omari:
        yield omari


async def _serve(
    settings: Settings, port: int
) -> AsyncIterator[tuple[str, ClientSession, Runtime]]:
    """``nyala serve`` of the safari app on ``port``: its URL, a client, the running app."""
    web_app: web.Application = create_app(settings, safari)
    server = TestServer(web_app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with ClientSession() as http:
            runtime = without_receipts(web_app[RUNTIME])
            yield str(server.make_url("")).rstrip("/"), http, runtime
    finally:
        await server.close()


@pytest_asyncio.fixture
async def server(
    database_url: str, fake: FakeOmari, db: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    seeded = await seed_payment(db, provider_reference=None)
    port = free_port()
    omari_env(monkeypatch, fake, callback_secret=CALLBACK_SECRET)
    async for url, http, runtime in _serve(server_settings(database_url, port), port):
        yield Running(url, fake, db, http, seeded, runtime)


async def test_a_payment_initiated_and_confirmed_by_callback(server: Running) -> None:
    reference = await server.initiate()
    [request] = server.fake.requests
    assert request.body is not None
    assert request.body["callback_url"] == server.url + CALLBACK_PATH
    assert request.body["merchant_reference"] == str(server.seeded.payment_id)
    delivery = await server.fake.confirm(reference)
    assert delivery.status == 200
    assert delivery.answer == {
        "status": "ok", "outcome": "confirmed", "payment": str(server.seeded.payment_id),
        "booking": "SAF-7K3QX2",
    }  # fmt: skip
    after = await snapshot(server.db, server.seeded)
    assert after.payment_status is PaymentStatus.CONFIRMED
    assert after.booking_status.value == "confirmed"
    assert after.messages == [
        "✅ Payment of USD 50.00 received for booking SAF-7K3QX2. Balance due: USD 70.00."
    ]
    assert after.message_statuses == [OutboundStatus.SANDBOX]


async def test_a_replayed_event_is_a_no_op(server: Running) -> None:
    reference = await server.initiate()
    first = await server.fake.confirm(reference)
    before = await snapshot(server.db, server.seeded)
    again = await server.fake.replay(first)
    assert (again.status, again.answer["outcome"]) == (200, "duplicate")
    assert again.body == first.body
    # A fresh event telling the same news is no news either.
    other = await server.fake.confirm(reference)
    assert (other.status, other.answer["outcome"]) == (200, "duplicate")
    after = await snapshot(server.db, server.seeded)
    assert after.messages == before.messages and len(after.messages) == 1
    assert after.events == 2


async def test_a_failed_payment_is_rejected_with_the_reason(server: Running) -> None:
    reference = await server.initiate()
    delivery = await server.fake.fail(reference, reason="Insufficient funds")
    assert (delivery.status, delivery.answer["outcome"]) == (200, "failed")
    after = await snapshot(server.db, server.seeded)
    assert (after.payment_status, after.rejected_reason) == (
        PaymentStatus.REJECTED, "Insufficient funds",
    )  # fmt: skip


async def test_forged_and_missing_signatures_are_refused(server: Running) -> None:
    reference = await server.initiate()
    unsigned = await server.fake.deliver(server.fake.event(reference), unsigned=True)
    assert unsigned.status == 401
    forged = await server.fake.deliver(server.fake.event(reference), forged="sha256=" + "0" * 64)
    assert forged.status == 403
    signed_by_someone_else = await server.fake.deliver(
        server.fake.event(reference),
        forged=signature("not-the-secret", json.dumps(server.fake.event(reference)).encode()),
    )
    assert signed_by_someone_else.status == 403
    # A genuine signature over other bytes: the amount was changed in transit.
    genuine = json.dumps(server.fake.event(reference, event_id="evt_x")).encode()
    tampered = genuine.replace(b'"50.00"', b'"0.50"')
    assert tampered != genuine
    status, answer = await server.post(
        tampered, {SIGNATURE_HEADER: signature(CALLBACK_SECRET, genuine)}
    )
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    await assert_untouched(server.db, server.seeded)


@pytest.mark.parametrize("age", [601, -121], ids=["stale", "from-the-future"])
async def test_timestamps_outside_the_window_are_refused(server: Running, age: int) -> None:
    reference = await server.initiate()
    delivery = await server.fake.confirm(reference, timestamp=time.time() - age)
    assert delivery.status == 400
    assert delivery.answer["error"]["code"] == "stale"
    await assert_untouched(server.db, server.seeded)
    # Just inside the window is fine.
    inside = await server.fake.confirm(reference, timestamp=time.time() - 540)
    assert inside.status == 200


@pytest.mark.parametrize("merchant_reference", ["999999", "not-ours", "9" * 30])
async def test_an_unknown_payment_is_404(server: Running, merchant_reference: str) -> None:
    reference = await server.initiate()
    delivery = await server.fake.confirm(reference, merchant_reference=merchant_reference)
    assert delivery.status == 404
    assert delivery.answer["error"]["code"] == "unknown_payment"
    await assert_untouched(server.db, server.seeded)


@pytest.mark.parametrize(
    "changes",
    [{"amount": "5.00"}, {"amount": 50.01}, {"currency": "ZWG"}, {"reference": "OM-OTHER"}],
    ids=["amount", "number-amount", "currency", "reference"],
)
async def test_a_different_amount_is_409_and_writes_nothing(
    server: Running, changes: dict[str, Any]
) -> None:
    reference = await server.initiate()
    delivery = await server.fake.deliver(server.fake.event(reference, **changes))
    assert delivery.status == 409
    assert delivery.answer["error"]["code"] == "conflict"
    await assert_untouched(server.db, server.seeded)
    # Nothing half-written stands in the way of the right callback.
    assert (await server.fake.confirm(reference)).status == 200


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"event_id": "e", "status": "success"}',
        b'{"event_id": "e", "reference": "r", "merchant_reference": "1", "amount": "1.001",'
        b' "currency": "USD", "status": "success", "timestamp": 1}',
        b'{"event_id": "e", "reference": "r", "merchant_reference": "1", "amount": "1.00",'
        b' "currency": "USD", "status": "paid", "timestamp": 1}',
    ],
    ids=["json", "utf8", "array", "missing", "mills", "status"],
)
async def test_malformed_signed_bodies_are_400(server: Running, body: bytes) -> None:
    status, answer = await server.post(body, {SIGNATURE_HEADER: signature(CALLBACK_SECRET, body)})
    assert (status, answer["error"]["code"]) == (400, "invalid")
    await assert_untouched(server.db, server.seeded)


async def test_without_a_callback_secret_callbacks_are_503(
    database_url: str, fake: FakeOmari, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await seed_payment(db)
    port = free_port()
    omari_env(monkeypatch, fake, callback_secret=None)
    async for url, http, runtime in _serve(server_settings(database_url, port), port):
        body = json.dumps({"event_id": "e"}).encode()
        headers = {SIGNATURE_HEADER: signature(CALLBACK_SECRET, body)}
        async with http.post(url + CALLBACK_PATH, data=body, headers=headers) as response:
            assert response.status == 503
        # And mobile money is off: customers could pay but never be confirmed.
        with pytest.raises(PaymentProviderError):
            runtime.services.get(PaymentProviders).get("omari")
    await assert_untouched(db, seeded)


async def test_a_confirmation_reaches_whatsapp_when_live(
    database_url: str, fake: FakeOmari, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await seed_payment(db, provider_reference="OM-LIVE-1")

    async def sent_recorded() -> bool:
        return (await snapshot(db, seeded)).message_statuses == [OutboundStatus.SENT]

    async with db.transaction() as s:
        contact = await s.get(Contact, seeded.contact_id)
        assert contact is not None
        # The customer chatted a minute ago (the payment flow): the 24-hour window is open.
        contact.last_inbound_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    async with FakeGraph(token=ACCESS_TOKEN, phone_number_id=PHONE_NUMBER_ID) as graph:
        port = free_port()
        omari_env(monkeypatch, fake, callback_secret=CALLBACK_SECRET)
        settings = server_settings(
            database_url, port, whatsapp_access_token=ACCESS_TOKEN,
            whatsapp_phone_number_id=PHONE_NUMBER_ID, whatsapp_api_base=graph.base_url,
        )  # fmt: skip
        async for url, _http, _runtime in _serve(settings, port):
            event = {
                "event_id": "evt_live", "reference": "OM-LIVE-1",
                "merchant_reference": str(seeded.payment_id), "amount": "50.00",
                "currency": "USD", "status": "success", "timestamp": int(time.time()),
            }  # fmt: skip
            delivery: Delivery = await fake.deliver(event, url=url + CALLBACK_PATH)
            assert delivery.status == 200
            await eventually(lambda: len(graph.sent) == 1)
            # The sender records the send after Meta's answer: wait for that too.
            await eventually(sent_recorded)
    [sent] = graph.sent
    assert sent.to == "+263770000321"
    assert sent.body["text"]["body"].startswith("✅ Payment of USD 50.00 received")
    after: Snapshot = await snapshot(db, seeded)
    assert after.message_statuses == [OutboundStatus.SENT]


async def test_the_provider_follows_the_settings(database_url: str, fake: FakeOmari) -> None:
    port = free_port()
    public = Settings(database_url=database_url, public_url=f"http://127.0.0.1:{port}")
    configured = SafariSettings(
        omari_api_base=fake.base_url, omari_merchant_key=MERCHANT_KEY,
        omari_callback_secret=CALLBACK_SECRET, omari_timeout=2.0,
    )  # fmt: skip
    unset = SafariSettings(
        omari_api_base=None, omari_merchant_key=None, omari_callback_secret=None
    )
    hooks = ReceiptHooks()
    db = Database(database_url)

    def runtime(settings: Settings, *, sandbox: bool) -> Runtime:
        return Runtime(safari, db, sandbox=sandbox, settings=settings)

    def provider(settings: SafariSettings, host: Settings, *, sandbox: bool) -> object:
        return omari_provider(settings, runtime(host, sandbox=sandbox), http, hooks)

    try:
        async with aiohttp.ClientSession() as http:
            client = provider(configured, public, sandbox=True)
            assert isinstance(client, OmariClient)
            assert client.callback_url == f"http://127.0.0.1:{port}{CALLBACK_PATH}"
            assert omari_warnings(configured, public_url=public.public_url, sandbox=True) == []
            assert isinstance(provider(unset, public, sandbox=True), SandboxOmari)
            assert any(
                "Omari payments run in sandbox" in n
                for n in omari_warnings(unset, public_url=None, sandbox=True)
            )
            # Live WhatsApp: a self-confirming Omari would give bookings away.
            assert provider(unset, public, sandbox=False) is None
            assert any(
                "mobile money is off" in n
                for n in omari_warnings(unset, public_url=None, sandbox=False)
            )
            no_url = Settings(database_url=database_url)
            assert provider(configured, no_url, sandbox=True) is None
            assert any(
                "NYALA_PUBLIC_URL" in n
                for n in omari_warnings(configured, public_url=None, sandbox=True)
            )
            half = SafariSettings(
                omari_api_base=fake.base_url, omari_merchant_key=None, omari_callback_secret=None
            )
            assert provider(half, public, sandbox=True) is None
            assert omari_warnings(half, public_url=None, sandbox=True) == [
                "OMARI_API_BASE and OMARI_MERCHANT_KEY must be set together: Omari is off"
            ]
    finally:
        await db.dispose()
    assert MERCHANT_KEY not in repr(configured)
    assert CALLBACK_SECRET not in repr(configured)
    assert MERCHANT_KEY not in repr(client)


async def test_amounts_in_json_numbers_are_exact(server: Running) -> None:
    reference = await server.initiate()
    delivery = await server.fake.confirm(reference, amount=Decimal("50.00").__float__())
    assert delivery.status == 200


async def test_the_fake_can_confirm_by_itself(server: Running) -> None:
    server.fake.auto_confirm = 0.05
    await server.initiate()

    async def confirmed() -> bool:
        after = await snapshot(server.db, server.seeded)
        return after.payment_status is PaymentStatus.CONFIRMED

    await eventually(confirmed)
    [delivery] = server.fake.deliveries
    assert delivery.status == 200
    assert [p.status for p in server.fake.payments.values()] == ["success"]
