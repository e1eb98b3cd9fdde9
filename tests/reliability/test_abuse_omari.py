# ruff: noqa: F811 - the server fixtures are imported by name, and tests take them by name
"""Replayed and flooded Omari callbacks: one payment is confirmed once, whatever arrives.

(``tests/bot/test_omari_callback.py`` covers a replay after the fact, forged and missing
signatures, stale timestamps; these send the same news many times at once.)
"""

from __future__ import annotations

import asyncio
import io
import json

from sqlalchemy import func, select

from bot.omari import SIGNATURE_HEADER, signature
from apps.safari.omari import CALLBACK_PATH
from storage import PaymentStatus, Receipt
from tests.apps.safari.test_omari_callback import (  # noqa: F401 - fixtures
    CALLBACK_SECRET,
    Running,
    _own_providers,
    fake,
    server,
)
from tests.reliability.results import Row, record
from tests.safari.test_omari import snapshot


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
