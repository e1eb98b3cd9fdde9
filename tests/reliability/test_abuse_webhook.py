# ruff: noqa: F811 - the server fixtures are imported by name, and tests take them by name
"""Hostile webhook traffic: forged and replayed signatures, floods of one delivery, JSON
nested past Python's recursion limit, oversized bodies. Real server, both backends.

(The plain cases — no signature, a zero signature, broken JSON, one oversized signed
body — are in ``tests/bot/test_server.py``; these go further.)
"""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select

from bot.whatsapp.webhook import SIGNATURE_HEADER, signature
from storage import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus
from tests.bot.test_server import Running, eventually, fake, server  # noqa: F401 - fixtures
from tests.bot.webhooks import APP_SECRET, message, messages_payload, signed
from tests.reliability.results import Row, record

CUSTOMER = "263771230099"


async def _post(server: Running, raw: bytes, headers: dict[str, str]) -> int:
    async with server.http.post(f"{server.url}/webhook", data=raw, headers=headers) as response:
        return response.status


async def test_a_valid_signature_moved_to_another_body_is_refused(server: Running) -> None:
    genuine, headers = signed(messages_payload(message(CUSTOMER, text="hi")))
    forged = genuine.replace(b'"hi"', b'"book everything"')
    variants = {
        "another body": (forged, headers),
        "sha1 prefix": (genuine, {**headers, SIGNATURE_HEADER: "sha1=" + headers[
            SIGNATURE_HEADER].removeprefix("sha256=")}),
        "upper-case hex": (genuine, {**headers, SIGNATURE_HEADER: headers[
            SIGNATURE_HEADER].upper()}),
        "digest without prefix": (genuine, {**headers, SIGNATURE_HEADER: headers[
            SIGNATURE_HEADER].removeprefix("sha256=")}),
        "the app secret as the signature": (genuine, {**headers, SIGNATURE_HEADER: APP_SECRET}),
        "empty secret": (genuine, {**headers, SIGNATURE_HEADER: signature("", genuine)}),
    }  # fmt: skip
    answers = {name: await _post(server, raw, h) for name, (raw, h) in variants.items()}
    assert answers == dict.fromkeys(variants, 403)
    assert await server.count(InboundMessage) == 0
    record(
        "abuse-webhook-signatures",
        Row(
            scenario="Forged webhook signatures",
            injected="a genuine signature on another body, sha1=, upper-case hex, no prefix, "
            "the secret itself, an empty-secret HMAC",
            load=f"{len(variants)} requests",
            observed=f"403 for all {len(variants)}; 0 messages stored",
        ),
    )


async def test_one_delivery_replayed_twenty_times_at_once_is_processed_once(
    server: Running,
) -> None:
    raw, headers = signed(messages_payload(message(CUSTOMER, text="order", wamid="wamid.R1")))
    answers = await asyncio.gather(*(_post(server, raw, headers) for _ in range(20)))
    assert answers == [200] * 20

    async def settled() -> bool:
        # Every copy was answered, the one stored message processed, and everything it
        # queued (a read receipt and the reply) handed to the fake: nothing is left that
        # could still add a row or a send, so the counts below are final, not a snapshot.
        async with server.db.read() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(InboundMessage)
                .where(InboundMessage.status != InboundStatus.DONE)
            )
            unsent = await session.scalar(
                select(func.count())
                .select_from(OutboundMessage)
                .where(OutboundMessage.status == OutboundStatus.QUEUED)
            )
        return pending == 0 and unsent == 0 and await server.count(OutboundMessage) >= 2

    await eventually(settled)
    assert await server.count(InboundMessage) == 1
    assert await server.count(OutboundMessage) == 2
    replies = [s for s in server.fake.sent if s.to == f"+{CUSTOMER}"]
    assert len(replies) == 1
    assert server.fake.marked_read == ["wamid.R1"]
    record(
        "abuse-webhook-replay",
        Row(
            scenario="One webhook replayed concurrently",
            injected="the same signed delivery posted 20 times at once",
            load="20 concurrent requests",
            observed="20 × 200; 1 message stored, 1 reply sent, 1 read receipt",
        ),
    )


def _nested(depth: int) -> bytes:
    inner = "[" * depth + "]" * depth
    document = messages_payload(message(CUSTOMER, text="hi", wamid="wamid.NEST"))
    return json.dumps(document).replace('"hi"', f'"hi", "extra": {inner}').encode()


async def test_json_nested_within_reason_is_accepted_and_stored_flat(server: Running) -> None:
    raw, headers = signed(_nested(400))
    assert await _post(server, raw, headers) == 200
    assert await server.count(InboundMessage) == 1


async def test_json_nested_past_the_recursion_limit_is_a_400(server: Running) -> None:
    answers = []
    for body in (b"[" * 30_000 + b"]" * 30_000, _nested(5_000)):
        raw, headers = signed(body)
        answers.append(await _post(server, raw, headers))
    stored = await server.count(InboundMessage)
    record(
        "abuse-webhook-nesting",
        Row(
            scenario="Deeply nested webhook JSON",
            injected="signed bodies nested 30,000 and 5,000 levels deep (Python's recursion "
            "limit is 1,000)",
            load="2 requests",
            observed=f"answers {answers}, {stored} stored",
            passed=answers == [400, 400],
        ),
    )
    assert answers == [400, 400]
    assert stored == 0


async def test_oversized_bodies_are_refused_before_the_signature_is_checked(
    server: Running,
) -> None:
    huge = json.dumps(messages_payload(message(CUSTOMER, text="x" * 200_000))).encode()
    unsigned = {"Content-Type": "application/json"}
    many = messages_payload(
        *(message(CUSTOMER, text="y" * 500, wamid=f"wamid.M{i}") for i in range(200))
    )
    many_raw, many_headers = signed(many)
    answers = [
        await _post(server, huge, unsigned),
        await _post(server, huge, {**unsigned, SIGNATURE_HEADER: "sha256=00"}),
        await _post(server, many_raw, many_headers),  # small messages adding up past it
    ]
    assert answers == [413, 413, 413]
    assert await server.count(InboundMessage) == 0
    record(
        "abuse-webhook-size",
        Row(
            scenario="Oversized webhook bodies",
            injected="a 200 kB body unsigned and badly signed; 200 messages of 500 characters "
            "signed (limit 64 kB)",
            load=f"{len(answers)} requests",
            observed=f"answers {answers}; 0 messages stored",
        ),
    )
