# ruff: noqa: F811 - the fake fixture is imported by name, and the tests take it by name
"""Replayed and flooded Omari callbacks: one payment is confirmed once, whatever arrives.

(``tests/apps/safari/test_omari_callback.py`` covers a replay after the fact, forged and
missing signatures, stale timestamps; these send the same news many times at once, to the
safari app served as ``nyala serve`` serves it, its receipt hook included.)
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from apps.safari import app as safari
from apps.safari.fake_omari import FakeOmari
from apps.safari.models import PaymentStatus, Receipt
from apps.safari.omari import CALLBACK_PATH
from apps.safari.omari_callback import SIGNATURE_HEADER, signature
from bot.keys import RUNTIME
from bot.server import create_app
from storage import Database
from tests.apps.safari.test_omari import seed_payment, snapshot
from tests.apps.safari.test_omari_callback import (  # noqa: F401 - the fixture `fake`
    CALLBACK_SECRET,
    Running,
    fake,
    free_port,
    omari_env,
    server_settings,
)
from tests.reliability.results import Row, record


@pytest.fixture
def database_url(safari_database_url: str) -> str:
    return safari_database_url


@pytest_asyncio.fixture
async def server(
    database_url: str, fake: FakeOmari, db: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    """The safari app served over loopback HTTP with the fake Omari, its receipt hook
    on, and a pending payment."""
    seeded = await seed_payment(db, provider_reference=None)
    port = free_port()
    omari_env(monkeypatch, fake, callback_secret=CALLBACK_SECRET)
    web_app: web.Application = create_app(server_settings(database_url, port), safari)
    http_server = TestServer(web_app, host="127.0.0.1", port=port)
    await http_server.start_server()
    try:
        async with ClientSession() as http:
            url = str(http_server.make_url("")).rstrip("/")
            yield Running(url, fake, db, http, seeded, web_app[RUNTIME])
    finally:
        await http_server.close()


async def _receipts(server: Running) -> int:
    async with server.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Receipt)) or 0)


async def test_one_confirmation_delivered_twenty_times_at_once_confirms_once(
    server: Running,
) -> None:
    reference = await server.initiate()
    event = server.fake.event(reference)
    outcomes = [d.answer["outcome"] for d in await asyncio.gather(
        *(server.fake.deliver(event) for _ in range(20)))]  # fmt: skip
    # The same news in 20 different events, at once, after that.
    fresh = [d.answer["outcome"] for d in await asyncio.gather(
        *(server.fake.deliver(server.fake.event(reference)) for _ in range(20)))]  # fmt: skip
    after = await snapshot(server.db, server.seeded)
    assert sorted(outcomes) == ["confirmed"] + ["duplicate"] * 19
    assert fresh == ["duplicate"] * 20
    assert after.payment_status is PaymentStatus.CONFIRMED
    # The news once, and the receipt once.
    assert [m for m in after.messages if m != "document"] == after.messages[:1]
    assert after.messages.count("document") == 1
    assert await _receipts(server) == 1
    record(
        "abuse-omari-replay",
        Row(
            scenario="Replayed Omari callbacks",
            injected="one signed confirmation delivered 20 times at once, then 20 new "
            "events with the same news at once",
            load="40 concurrent callbacks",
            observed=f"outcomes: confirmed {outcomes.count('confirmed')}, duplicate "
            f"{outcomes.count('duplicate') + fresh.count('duplicate')}; payment confirmed "
            f"once, {len(after.messages) - 1} message and {after.messages.count('document')} "
            f"receipt document to the customer, {await _receipts(server)} receipt stored",
        ),
    )


async def test_callbacks_nested_past_the_recursion_limit_are_400(server: Running) -> None:
    for body in (b"[" * 30_000 + b"]" * 30_000,
                 json.dumps({"event_id": "e"}).replace("}", ', "x": ' + "[" * 5000 + "]" * 5000
                                                       + "}").encode()):  # fmt: skip
        status, answer = await server.post(
            body, {SIGNATURE_HEADER: signature(CALLBACK_SECRET, body)}
        )
        assert status == 400, answer
    huge = io.BytesIO(b"x" * 5_000_000)
    async with server.http.post(server.url + CALLBACK_PATH, data=huge) as r:
        assert r.status == 413
