"""``last_error`` of outbound rows says each part of Meta's error once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.whatsapp.errors import error_from_response, error_text
from storage import OutboundMessage, OutboundStatus
from tests.bot import test_server
from tests.bot.test_server import Running, eventually
from tests.bot.webhooks import message, messages_payload

# The running server and fake Graph API of the server tests.
fake = test_server.fake
server = test_server.server

CUSTOMER = "263771110003"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {
                "message": "(#131026) Message Undeliverable",
                "type": "OAuthException",
                "code": 131026,
                "error_data": {"messaging_product": "whatsapp", "details": "Unable to deliver."},
            },
            "(131026) Message Undeliverable: Unable to deliver.",
        ),
        (
            {
                "message": "(#130429) Rate limit hit",
                "code": 130429,
                "error_data": {"details": "Rate limit hit"},
            },
            "(130429) Rate limit hit",
        ),
        (
            {"message": "(#100) Invalid parameter", "code": 100},
            "(100) Invalid parameter",
        ),
    ],
)
def test_a_raised_graph_error_is_said_once(error: dict[str, object], expected: str) -> None:
    assert error_text(error_from_response(400, {"error": error})) == expected


def test_a_reported_error_does_not_repeat_title_and_message() -> None:
    text = error_text(
        code=131047,
        title="Re-engagement message",
        message="Re-engagement message",
        details="Message failed to send because more than 24 hours have passed",
    )
    assert text == (
        "(131047) Re-engagement message: "
        "Message failed to send because more than 24 hours have passed"
    )
    assert text.count("Re-engagement message") == 1


def test_other_exceptions_keep_their_text() -> None:
    assert error_text(TimeoutError()) == "TimeoutError"
    assert error_text(RuntimeError("boom")) == "boom"


async def test_a_failed_send_stores_the_error_once(server: Running) -> None:
    server.fake.fail_next(1, "undeliverable")
    await server.post(messages_payload(message(CUSTOMER, text="order")))

    async def failed() -> OutboundMessage | None:
        async with server.db.read() as session:
            return await session.scalar(
                select(OutboundMessage).where(OutboundMessage.status == OutboundStatus.FAILED)
            )

    await eventually(failed)
    row = await failed()
    assert row is not None and row.last_error is not None
    assert row.last_error.startswith("(131026) ")
    assert "(#131026)" not in row.last_error
    assert row.last_error.count("Undeliverable") == 1
