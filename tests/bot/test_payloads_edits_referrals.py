"""Edited and deleted messages and click-to-WhatsApp referrals, parsed from real shapes.

Sources: Meta's OpenAPI webhook example "Text Message from Click to WhatsApp Ad" and its
``ReferralObject``; pywa's fixtures ``tests/data/updates/edit_message.json`` and
``delete_message.json`` (``type: "edit"``/``"revoke"`` with ``original_message_id``); Meta's
``unsupported`` reference (131051, ``unsupported.type``), as the webhook-errors tests use it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select

from bot.whatsapp.inbox import GroupCommit
from bot.whatsapp.payloads import parse_webhook
from flows.messages import Media, Referral, UserMessage
from storage import Database, InboundMessage
from testing.meta_spec import MetaSpec
from tests.bot.test_meta_limits_webhook_errors import UNSUPPORTED
from tests.bot.webhooks import envelope

USER = "972987654321"


def notification(*messages: dict[str, Any]) -> dict[str, Any]:
    return envelope(
        {
            "contacts": [{"profile": {"name": "Test Name"}, "wa_id": USER}],
            "messages": list(messages),
        }
    )


def _message(type_: str, **body: Any) -> dict[str, Any]:
    return {"from": USER, "id": "wamid.yyyyyy", "timestamp": "1697044968", "type": type_, **body}


EDIT_TEXT = _message(
    "edit",
    edit={
        "original_message_id": "wamid.zzzzzz",
        "message": {"type": "text", "text": {"body": "Text was edited"}},
    },
)
EDIT_CAPTION = _message(
    "edit",
    edit={
        "original_message_id": "wamid.zzzzzz",
        "message": {
            "type": "image",
            "image": {
                "caption": "caption",
                "mime_type": "image/jpeg",
                "sha256": "4654+8g=",
                "id": "65463453",
            },
        },
    },
)
REVOKE = _message("revoke", revoke={"original_message_id": "wamid.zzzzzz"})


def ctwa_example() -> dict[str, Any]:
    examples = dict(MetaSpec.load().webhook_examples())
    return copy.deepcopy(examples["Text Message from Click to WhatsApp Ad"])


def only(document: dict[str, Any]) -> UserMessage:
    batch = parse_webhook(document)
    assert batch.ignored == ()
    (incoming,) = batch.messages
    return incoming.message


def test_an_edit_carries_the_new_text_and_the_edited_message() -> None:
    message = only(notification(EDIT_TEXT))
    assert (message.kind, message.text, message.refers_to) == (
        "edit",
        "Text was edited",
        "wamid.zzzzzz",
    )
    assert message.media is None
    assert message.display == "[edited] Text was edited"


def test_an_edited_caption_carries_the_media_and_its_new_caption() -> None:
    message = only(notification(EDIT_CAPTION))
    assert message.kind == "edit"
    assert message.text == "caption"
    assert message.media == Media(
        id="65463453", mime_type="image/jpeg", sha256="4654+8g=", caption="caption"
    )


def test_an_edit_whatsapp_could_not_show_is_an_edit_without_content() -> None:
    batch = parse_webhook(UNSUPPORTED)  # unsupported.type "edit", error 131051
    (incoming,) = batch.messages
    assert incoming.message.kind == "edit"
    assert (incoming.message.text, incoming.message.refers_to) == (None, None)
    assert [r.error.code for r in batch.reported] == [131051]  # still stored and counted


@pytest.mark.parametrize(
    "body",
    [
        _message("edit"),  # no edit object
        _message("edit", edit="junk"),
        _message("edit", edit={"original_message_id": {"x": 1}, "message": {"type": "text"}}),
        _message("edit", edit={"message": {"type": "poll", "poll": {}}}),
    ],
)
def test_an_unreadable_edit_is_kept_as_an_edit_without_content(body: dict[str, Any]) -> None:
    message = only(notification(body))
    assert (message.kind, message.text, message.media, message.refers_to) == (
        "edit",
        None,
        None,
        None,
    )


def test_a_deletion_names_the_deleted_message() -> None:
    message = only(notification(REVOKE))
    assert (message.kind, message.refers_to, message.text) == ("revoke", "wamid.zzzzzz", None)
    assert message.display == "[deleted]"


@pytest.mark.parametrize(
    "body",
    [
        _message("deleted", deleted={"original_message_id": "wamid.zzzzzz"}),
        _message("delete", delete={"original_message_id": "wamid.zzzzzz"}),
        _message("revoke"),
        _message(
            "unsupported",
            unsupported={"type": "revoke"},
            errors=[{"code": 131051, "title": "Message type unknown"}],
        ),
    ],
)
def test_every_shape_of_a_deletion_is_a_revoke(body: dict[str, Any]) -> None:
    message = only(notification(body))
    assert message.kind == "revoke"
    assert message.refers_to in ("wamid.zzzzzz", None)


def test_other_unsupported_types_stay_unsupported() -> None:
    body = _message(
        "unsupported",
        unsupported={"type": "poll_creation"},
        errors=[{"code": 131051, "title": "Message type unknown"}],
    )
    assert only(notification(body)).kind == "unsupported"


def test_the_referral_of_metas_example_is_parsed_completely() -> None:
    document = ctwa_example()
    assert MetaSpec.load().validate_webhook(document) == []
    message = only(document)
    assert (message.kind, message.text) == ("text", "Hello! Can I get more info on this?")
    assert message.referral == Referral(
        source_url="https://fb.me/3cr4Wqqkv",
        source_id="120226305854810726",
        source_type="ad",
        headline="Chat with us",
        body="Summer Succulents are here!",
        media_type="image",
        image_url="https://scontent.xx.fbcdn.net/v/t45.1...",
        ctwa_clid=(
            "Aff-n8ZTODiE79d22KtAwQKj9e_mIEOOj27vDVwFjN80dp4_0NiNhEgpGo0AHemvuSoifXaytfTzcchpti"
            "ErTKCqTrJ5nW1h7IHYeYymGb5K5J5iTROpBhWAGaIAeUzHL50"
        ),
        welcome_message="Hi there! Let us know how we can help!",
    )
    assert UserMessage.from_payload(message.to_payload()) == message


def test_a_video_ad_referral_on_a_media_message() -> None:
    body = _message(
        "image",
        image={"id": "1003383421387256", "mime_type": "image/jpeg", "sha256": "Sf=="},
        referral={
            "source_url": "https://fb.me/abc",
            "source_id": "1202",
            "source_type": "post",
            "body": "Walking safaris",
            "headline": "Hwange in October",
            "media_type": "video",
            "video_url": "https://example.com/video.mp4",
            "thumbnail_url": "https://example.com/thumbnail.jpg",
        },
    )
    message = only(notification(body))
    assert message.kind == "image"
    assert message.referral is not None
    assert message.referral.video_url == "https://example.com/video.mp4"
    assert message.referral.ctwa_clid is None  # absent for clicks from WhatsApp Web


@pytest.mark.parametrize(
    ("referral", "expected"),
    [
        ({"headline": {"a": 1}, "source_id": ["x"], "ctwa_clid": "c1"}, Referral(ctwa_clid="c1")),
        ({"headline": "\x00Safari ", "welcome_message": "hi"}, Referral(headline="Safari")),
        ({"source_id": 120226305854810726}, Referral(source_id="120226305854810726")),
        ({"welcome_message": {"text": 3}, "junk": {"a": 1}, "source_type": True}, None),
        ("not an object", None),
        ([], None),
    ],
)
def test_a_malformed_referral_never_costs_the_message(
    referral: Any, expected: Referral | None
) -> None:
    message = only(notification(_message("text", text={"body": "hi"}, referral=referral)))
    assert (message.kind, message.text) == ("text", "hi")
    assert message.referral == expected


async def test_edits_deletions_and_referrals_are_stored_with_the_message(db: Database) -> None:
    group = GroupCommit(db, mark_read=False)
    original = _message("text", text={"body": "Hello"})
    original["id"] = "wamid.zzzzzz"
    stored = await group.store(
        parse_webhook(notification(original, EDIT_TEXT | {"id": "wamid.e1"}, REVOKE))
    )
    await group.store(parse_webhook(ctwa_example()))
    assert stored.new_messages == 3
    async with db.read() as session:
        rows = (await session.scalars(select(InboundMessage).order_by(InboundMessage.id))).all()
    assert [r.kind for r in rows] == ["text", "edit", "revoke", "text"]
    assert rows[1].payload["refers_to"] == rows[2].payload["refers_to"] == "wamid.zzzzzz"
    restored = UserMessage.from_payload(rows[3].payload)
    assert restored.referral is not None
    assert restored.referral.headline == "Chat with us"
