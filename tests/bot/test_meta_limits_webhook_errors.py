"""Errors WhatsApp reports in webhooks are stored, logged and counted, never dropped."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from bot.whatsapp.inbox import GroupCommit
from bot.whatsapp.payloads import ReportedError, StatusError, parse_webhook
from storage import Database, IgnoredUpdate, InboundMessage
from tests.bot import test_server
from tests.bot.test_server import Running
from tests.bot.webhooks import envelope

# The running server and fake Graph API of the server tests.
fake = test_server.fake
server = test_server.server

CUSTOMER = "263771110002"

# Shapes from Meta's webhook reference (messages: errors; messages/unsupported).
CHANGE_ERRORS = envelope(
    {
        "errors": [
            {
                "code": 131000,
                "title": "Something went wrong",
                "message": "Something went wrong",
                "error_data": {"details": "Message failed to send due to an unknown error."},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }
        ]
    }
)
UNSUPPORTED = envelope(
    {
        "contacts": [{"profile": {"name": "Sheryl"}, "wa_id": CUSTOMER}],
        "messages": [
            {
                "from": CUSTOMER,
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                "timestamp": "1744344496",
                "errors": [
                    {
                        "code": 131051,
                        "title": "Message type unknown",
                        "message": "Message type unknown",
                        "error_data": {"details": "Message type is currently not supported."},
                    }
                ],
                "type": "unsupported",
                "unsupported": {"type": "edit"},
            }
        ],
    }
)


def test_both_kinds_of_error_are_parsed_with_their_place() -> None:
    change = parse_webhook(CHANGE_ERRORS)
    assert change.reported == (
        ReportedError(
            where="entry[0].changes[0].errors[0]",
            error=StatusError(
                code=131000,
                title="Something went wrong",
                message="Something went wrong",
                details="Message failed to send due to an unknown error.",
            ),
        ),
    )
    unsupported = parse_webhook(UNSUPPORTED)
    assert len(unsupported.messages) == 1  # the message itself is still stored
    (reported,) = unsupported.reported
    assert reported.where == "entry[0].changes[0].messages[0].errors[0]"
    assert reported.error.code == 131051
    assert reported.message_id == unsupported.messages[0].message.id


def test_a_malformed_message_error_is_recorded_as_ignored() -> None:
    document = envelope(
        {
            "contacts": [{"profile": {"name": "S"}, "wa_id": CUSTOMER}],
            "messages": [
                {
                    "from": CUSTOMER,
                    "id": "wamid.X1",
                    "timestamp": "1744344496",
                    "type": "unsupported",
                    "errors": [{"code": "not a number"}, "junk"],
                }
            ],
        }
    )
    batch = parse_webhook(document)
    assert batch.reported == ()
    assert len(batch.messages) == 1
    assert {i.what for i in batch.ignored} == {
        "error (entry[0].changes[0].messages[0].errors[0])",
        "error (entry[0].changes[0].messages[0].errors[1])",
    }


async def test_reported_errors_are_stored_and_logged(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    group = GroupCommit(db, mark_read=False)
    with caplog.at_level(logging.WARNING, logger="nyala.inbox"):
        first = await group.store(parse_webhook(CHANGE_ERRORS))
        second = await group.store(parse_webhook(UNSUPPORTED))
    assert (first.errors, second.errors, second.new_messages) == (1, 1, 1)
    async with db.read() as session:
        rows = (await session.scalars(select(IgnoredUpdate).order_by(IgnoredUpdate.id))).all()
        inbound = (await session.scalars(select(InboundMessage))).all()
    assert [r.what for r in rows] == [
        "webhook error 131000 (entry[0].changes[0].errors[0])",
        "webhook error 131051 (entry[0].changes[0].messages[0].errors[0])",
    ]
    assert rows[0].reason == "Message failed to send due to an unknown error."
    assert rows[1].payload is not None and rows[1].payload["code"] == 131051
    assert rows[1].payload["message_id"] == inbound[0].wa_message_id
    logged = [r.getMessage() for r in caplog.records]
    assert any("131000" in m and "unknown error" in m for m in logged)
    assert any("131051" in m and "not supported" in m for m in logged)


async def test_the_webhook_acknowledges_and_counts_reported_errors(server: Running) -> None:
    assert await server.post(CHANGE_ERRORS) == 200
    assert await server.post(UNSUPPORTED) == 200
    assert await server.count(IgnoredUpdate) == 2
    async with server.http.get(f"{server.url}/metrics") as response:
        text = await response.text()
    assert 'nyala_webhook_errors_total{code="131000"} 1.0' in text
    assert 'nyala_webhook_errors_total{code="131051"} 1.0' in text
