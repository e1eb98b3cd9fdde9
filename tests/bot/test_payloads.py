"""Webhook payload parsing: Meta's own examples, BSUID senders, statuses, and bad shapes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import typing
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.whatsapp.payloads import (
    Ignored,
    IncomingMessage,
    Sender,
    StatusError,
    StatusUpdate,
    WebhookBatch,
    parse_webhook,
)
from flows.messages import Location, Media, MessageKind
from testing.meta_spec import SPEC_PATH as SPEC
from tests.testing.test_meta_spec import WEBHOOK_EXAMPLE_NAMES

KINDS = frozenset(typing.get_args(MessageKind))
WABA = "whatsapp_business_account"
PHONE_NUMBER_ID = "106540352242922"
SHEENA = Sender(wa_id="16505551234", user_id=None, profile_name="Sheena Nelson")
BSUID = "US.13491208655302741918"


@functools.cache
def spec_examples() -> dict[str, Any]:
    """The named request-body examples of the spec's webhook operation."""
    with SPEC.open(encoding="utf-8") as f:
        spec = yaml.load(f, Loader=yaml.CSafeLoader)
    body = spec["paths"]["/whatsapp/webhooks"]["post"]["requestBody"]
    examples: dict[str, Any] = body["content"]["application/json"]["examples"]
    return {name: example["value"] for name, example in examples.items()}


def example(name: str) -> WebhookBatch:
    return parse_webhook(spec_examples()[name])


def only_message(batch: WebhookBatch) -> IncomingMessage:
    assert batch.ignored == () and batch.statuses == () and batch.errors == ()
    assert len(batch.messages) == 1
    return batch.messages[0]


def utc(timestamp: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)


def notification(*values: Any, field: str = "messages") -> dict[str, Any]:
    """A notification with one entry holding one change per value."""
    changes = [{"field": field, "value": value} for value in values]
    return {"object": WABA, "entry": [{"id": "419561257915477", "changes": changes}]}


def messages_value(
    *messages: Any, contacts: list[Any] | None = None, **extra: Any
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "messages": list(messages),
        **extra,
    }
    if contacts is not None:
        value["contacts"] = contacts
    return value


def text_message(body: str, wamid: str = "wamid.1", **extra: Any) -> dict[str, Any]:
    return {
        "from": "16505551234",
        "id": wamid,
        "timestamp": "1749416383",
        "type": "text",
        "text": {"body": body},
        **extra,
    }


def typed_message(type_: str, body: Any, **extra: Any) -> dict[str, Any]:
    return {
        "from": "16505551234",
        "id": f"wamid.{type_}",
        "timestamp": "1749416383",
        "type": type_,
        type_: body,
        **extra,
    }


def parse_one(message: dict[str, Any]) -> IncomingMessage:
    return only_message(parse_webhook(notification(messages_value(message))))


def parse_one_with_contacts(message: dict[str, Any], contacts: list[Any]) -> IncomingMessage:
    return only_message(parse_webhook(notification(messages_value(message, contacts=contacts))))


def ignored_reason(message: Any) -> str:
    """The single reason a message was ignored for (it must be the only outcome)."""
    batch = parse_webhook(notification(messages_value(message)))
    assert batch.messages == ()
    assert len(batch.ignored) == 1
    return batch.ignored[0].reason


# Meta's 16 spec examples -----------------------------------------------------------


def test_the_spec_has_the_16_examples_tested_here() -> None:
    assert sorted(spec_examples()) == sorted(WEBHOOK_EXAMPLE_NAMES)


@pytest.mark.parametrize("name", sorted(spec_examples()))
def test_every_spec_example_gives_exactly_one_message_or_one_ignored(name: str) -> None:
    batch = example(name)
    assert len(batch.messages) + len(batch.ignored) == 1
    assert batch.statuses == () and batch.errors == ()


def test_text_message() -> None:
    incoming = only_message(example("Text Message"))
    assert incoming.phone_number_id == PHONE_NUMBER_ID
    assert incoming.sender == SHEENA
    assert incoming.raw_type == "text"
    assert incoming.context_id is None
    message = incoming.message
    assert message.id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert message.kind == "text"
    assert message.text == "Does it come in another color?"
    assert message.timestamp == utc(1749416383)
    assert message.timestamp.tzinfo is dt.UTC


def test_text_message_with_product_context_keeps_the_quoted_message_id() -> None:
    incoming = only_message(example("Text Message with Context (Product Inquiry)"))
    assert incoming.message.kind == "text"
    assert incoming.message.text == "Is this still available?"
    assert incoming.context_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA"
    assert incoming.raw["context"]["referred_product"]["product_retailer_id"] == "di9ozbzfi4"


def test_text_message_from_an_ad_drops_the_referral_but_keeps_it_raw() -> None:
    incoming = only_message(example("Text Message from Click to WhatsApp Ad"))
    assert incoming.message.kind == "text"
    assert incoming.message.text == "Hello! Can I get more info on this?"
    assert incoming.message.id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA="
    assert incoming.raw["referral"]["source_type"] == "ad"


def test_reaction_message() -> None:
    incoming = only_message(example("Reaction Message"))
    assert incoming.message.kind == "reaction"
    assert incoming.message.emoji == "👍"
    assert incoming.message.text is None
    assert incoming.context_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"
    assert incoming.message.timestamp == utc(1749419544)


def test_image_message() -> None:
    incoming = only_message(example("Image Message"))
    assert incoming.message.kind == "image"
    assert incoming.message.text == "Taj Mahal"
    assert incoming.message.media == Media(
        id="1003383421387256",
        mime_type="image/jpeg",
        sha256="SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
        caption="Taj Mahal",
    )


def test_location_message() -> None:
    incoming = only_message(example("Location Message"))
    assert incoming.message.kind == "location"
    assert incoming.message.id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTU2MjZEMDBGRkE3MENEMDE0RQA="
    assert incoming.message.location == Location(
        latitude=37.44221496582,
        longitude=-122.16165924072,
        name="Philz Coffee",
        address="101 Forest Ave, Palo Alto, CA 94301",
    )


def test_contact_sharing_message_is_summarised() -> None:
    incoming = only_message(example("Contact Sharing Message"))
    assert incoming.sender == SHEENA  # the sender, not the shared card
    assert incoming.message.kind == "contacts"
    assert incoming.message.text == "Lucía Gómez (+1 (983) 555-2319)"


def test_unsupported_message_carries_the_error_text() -> None:
    incoming = only_message(example("Unsupported Message"))
    assert incoming.raw_type == "unsupported"
    assert incoming.message.kind == "unsupported"
    assert incoming.message.id == "wamid.HBgLMTQyMDU1NTA3NDkVAgASGBI5N0MwRjg0RTVBNUI1RDA2OTkA"
    assert (
        incoming.message.text == "Message type unknown: Message type is currently not supported."
    )


def test_button_message_is_a_reply_with_the_payload() -> None:
    incoming = only_message(example("Button Message"))
    assert incoming.raw_type == "button"
    assert incoming.message.kind == "reply"
    assert incoming.message.reply_id == "Unsubscribe"
    assert incoming.message.text == "Unsubscribe"
    assert incoming.context_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA"


def test_interactive_list_reply_message() -> None:
    incoming = only_message(example("Interactive List Reply Message"))
    assert incoming.raw_type == "interactive"
    assert incoming.message.kind == "reply"
    assert incoming.message.reply_id == "priority_express"
    assert incoming.message.text == "Priority Mail Express"
    assert incoming.context_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJGMzEyNzhENTZDMzNGODlDRDgA"


def test_interactive_button_reply_message() -> None:
    incoming = only_message(example("Interactive Button Reply Message"))
    assert incoming.message.kind == "reply"
    assert incoming.message.reply_id == "cancel-button"
    assert incoming.message.text == "Cancel"
    assert incoming.context_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA"
    assert incoming.message.id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA="


def test_order_message_is_unsupported() -> None:
    incoming = only_message(example("Order Message"))
    assert incoming.raw_type == "order"
    assert incoming.message.kind == "unsupported"
    assert incoming.message.text == "order"
    assert len(incoming.raw["order"]["product_items"]) == 2


def test_system_message_is_ignored() -> None:
    batch = example("System Message")
    assert batch.messages == ()
    assert batch.ignored == (
        Ignored(
            what="message type 'system' (entry[0].changes[0].messages[0])",
            reason="system notice 'user_changed_number' is about the user's identity, "
            "not something the user wrote",
        ),
    )


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("Group Create Message", "group_lifecycle_update"),
        ("Group Settings Update", "group_settings_update"),
        ("Group Remove Participants", "group_participants_update"),
    ],
)
def test_group_events_are_ignored(name: str, field: str) -> None:
    batch = example(name)
    assert batch.messages == ()
    assert batch.ignored == (
        Ignored(
            what=f"change field '{field}' (entry[0].changes[0])",
            reason="group events are not handled: Nyala's conversations are one-to-one",
        ),
    )


# Senders: phone numbers, BSUIDs, usernames -----------------------------------------


def test_username_only_sender_is_keyed_on_the_bsuid() -> None:
    message = text_message("hi")
    del message["from"]
    message["from_user_id"] = BSUID
    contact = {"profile": {"name": "Tendai", "username": "@tendai"}, "user_id": BSUID}
    incoming = parse_one_with_contacts(message, [contact])
    assert incoming.sender == Sender(
        wa_id=None, user_id=BSUID, profile_name="Tendai", username="@tendai"
    )
    assert incoming.message.text == "hi"


def test_sender_takes_the_bsuid_from_its_contact_entry() -> None:
    contact = {"profile": {"name": "Sheena"}, "wa_id": "16505551234", "user_id": BSUID}
    incoming = parse_one_with_contacts(text_message("hi"), [contact])
    assert incoming.sender == Sender(wa_id="16505551234", user_id=BSUID, profile_name="Sheena")


def test_sender_with_only_a_contact_entry_takes_its_ids() -> None:
    message = text_message("hi")
    del message["from"]
    contact = {"profile": {"name": "Sheena"}, "wa_id": "16505551234"}
    incoming = parse_one_with_contacts(message, [contact])
    assert incoming.sender == Sender(wa_id="16505551234", user_id=None, profile_name="Sheena")


def test_each_message_gets_its_own_contact_entry() -> None:
    contacts = [
        {"profile": {"name": "Ana"}, "wa_id": "111"},
        {"profile": {"name": "Ben"}, "user_id": "US.2"},
    ]
    ben = text_message("from Ben", wamid="wamid.b")
    del ben["from"]
    ben["from_user_id"] = "US.2"
    ana = text_message("from Ana", wamid="wamid.a", **{"from": "111"})
    batch = parse_webhook(notification(messages_value(ben, ana, contacts=contacts)))
    assert [m.sender.profile_name for m in batch.messages] == ["Ben", "Ana"]
    assert [m.sender.wa_id for m in batch.messages] == [None, "111"]


def test_a_contact_with_another_number_is_not_the_sender() -> None:
    contact = {"profile": {"name": "Someone else"}, "wa_id": "999"}
    incoming = parse_one_with_contacts(text_message("hi"), [contact])
    assert incoming.sender == Sender(wa_id="16505551234", user_id=None)


def test_a_sender_without_any_id_is_ignored() -> None:
    message = text_message("hi")
    del message["from"]
    assert ignored_reason(message) == (
        "no sender: neither 'from' nor 'from_user_id', and no matching contact"
    )


def test_a_malformed_contact_entry_is_recorded_and_the_message_kept() -> None:
    contacts: list[Any] = [{"profile": {"name": 5}, "wa_id": "16505551234"}, "junk"]
    batch = parse_webhook(notification(messages_value(text_message("hi"), contacts=contacts)))
    assert [m.message.text for m in batch.messages] == ["hi"]
    assert batch.messages[0].sender.profile_name is None
    assert batch.ignored == (
        Ignored(
            what="contact (entry[0].changes[0].contacts[0])",
            reason="'profile.name' is not a string",
        ),
        Ignored(what="contact (entry[0].changes[0].contacts[1])", reason="not an object"),
    )


# Reactions, media, interactive and other types ---------------------------------------


@pytest.mark.parametrize(
    "reaction", [{"message_id": "wamid.ours"}, {"message_id": "wamid.ours", "emoji": ""}]
)
def test_a_removed_reaction_has_no_emoji(reaction: dict[str, Any]) -> None:
    incoming = parse_one(typed_message("reaction", reaction))
    assert incoming.message.kind == "reaction"
    assert incoming.message.emoji is None
    assert incoming.context_id == "wamid.ours"


def test_document_keeps_its_filename() -> None:
    body = {"id": "m1", "mime_type": "application/pdf", "sha256": "h", "filename": "tour.pdf"}
    incoming = parse_one(typed_message("document", body))
    assert incoming.message.kind == "document"
    assert incoming.message.media == Media(
        id="m1", mime_type="application/pdf", sha256="h", filename="tour.pdf"
    )
    assert incoming.message.text is None


@pytest.mark.parametrize("kind", ["audio", "video", "sticker"])
def test_other_media_kinds(kind: MessageKind) -> None:
    body = {"id": 4711, "mime_type": "x/y", "voice": True, "animated": False}
    incoming = parse_one(typed_message(kind, body))
    assert incoming.message.kind == kind
    assert incoming.message.media == Media(id="4711", mime_type="x/y")


def test_media_without_a_mime_type_gets_a_generic_one() -> None:
    incoming = parse_one(typed_message("image", {"id": "m1"}))
    assert incoming.message.media == Media(id="m1", mime_type="application/octet-stream")


def test_a_document_filename_is_only_read_for_documents() -> None:
    incoming = parse_one(
        typed_message("image", {"id": "m1", "mime_type": "image/png", "filename": "x"})
    )
    assert incoming.message.media is not None and incoming.message.media.filename is None


def test_location_coordinates_given_as_strings_become_floats() -> None:
    body = {"latitude": "-17.8292", "longitude": "31.0522", "name": "Harare"}
    location = parse_one(typed_message("location", body)).message.location
    assert location == Location(latitude=-17.8292, longitude=31.0522, name="Harare")
    assert isinstance(location.latitude, float)


def test_flow_replies_are_unsupported_with_their_body() -> None:
    interactive = {
        "type": "nfm_reply",
        "nfm_reply": {"response_json": '{"flow_token": "t"}', "body": "Sent", "name": "flow"},
    }
    incoming = parse_one(typed_message("interactive", interactive))
    assert incoming.message.kind == "unsupported"
    assert incoming.message.text == "Sent"
    assert incoming.message.reply_id is None


def test_unknown_interactive_and_message_types_are_unsupported() -> None:
    batch = parse_webhook(
        notification(
            messages_value(
                typed_message("interactive", {"type": "call_permission_reply"}),
                typed_message("request_welcome", None),
                typed_message("unknown", None),
            )
        )
    )
    assert batch.ignored == ()
    assert [(m.raw_type, m.message.kind, m.message.text) for m in batch.messages] == [
        ("interactive", "unsupported", None),
        ("request_welcome", "unsupported", None),
        ("unknown", "unsupported", None),
    ]


def test_messages_inside_a_group_are_ignored() -> None:
    message = text_message("hello group", group_id="Y2FwaV9ncm91cDox")
    assert ignored_reason(message) == (
        "group messages are not handled: Nyala's conversations are one-to-one"
    )


def test_contact_cards_with_several_people_and_missing_parts() -> None:
    cards = [
        {
            "name": {"first_name": "Ana", "last_name": "Moyo"},
            "phones": [{"phone": "+1"}, {"wa_id": "2"}],
        },
        {"name": {"formatted_name": "Ben"}},
        {"phones": [{"phone": "+3"}]},
        {"org": {"company": "only an org"}},
        "junk",
    ]
    incoming = parse_one(typed_message("contacts", None, contacts=cards))
    assert incoming.message.text == "Ana Moyo (+1, 2); Ben; +3"


def test_a_long_contact_summary_is_shortened() -> None:
    cards = [{"name": {"formatted_name": f"Person number {i}"}} for i in range(50)]
    text = parse_one(typed_message("contacts", None, contacts=cards)).message.text
    assert text is not None and len(text) == 200 and text.endswith("…")


# Text content -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "x" * 1_000_000,
        "Nice 👍🏽🇿🇼 family 👨‍👩‍👧",
        "שלום, מה שלומך? مرحبا",
        "",
        "line one\nline two\r\n\ttabbed",
    ],
)
def test_text_bodies_are_kept_as_sent(body: str) -> None:
    assert parse_one(text_message(body)).message.text == body


def test_nul_characters_and_lone_surrogates_are_cleaned() -> None:
    incoming = parse_one(text_message("a\x00b\ud800c"))
    assert incoming.message.text == "ab\ufffdc"
    assert incoming.raw["text"]["body"] == "a\x00b\ud800c"


# Statuses and errors ---------------------------------------------------------------


def status_value(*statuses: Any, **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "statuses": list(statuses),
        **extra,
    }


def test_a_failed_status_without_contacts_carries_its_errors() -> None:
    failed = {
        "id": "wamid.out1",
        "status": "failed",
        "timestamp": "1750000000",
        "recipient_id": "16505551234",
        "errors": [
            {
                "code": 131047,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {"details": "Message failed to send because more than 24 hours"},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }
        ],
    }
    batch = parse_webhook(notification(status_value(failed)))
    assert batch.messages == () and batch.ignored == ()
    assert batch.statuses == (
        StatusUpdate(
            wa_message_id="wamid.out1",
            status="failed",
            timestamp=utc(1750000000),
            recipient_id="16505551234",
            errors=(
                StatusError(
                    code=131047,
                    title="Re-engagement message",
                    message="Re-engagement message",
                    details="Message failed to send because more than 24 hours",
                ),
            ),
        ),
    )


def test_statuses_with_bsuids_pricing_and_callback_data() -> None:
    contacts = [{"profile": {"name": "Sheena"}, "wa_id": "16505551234", "user_id": BSUID}]
    common = {"recipient_id": "16505551234", "recipient_user_id": BSUID}
    statuses = [
        {
            "id": "wamid.out1",
            "status": "sent",
            "timestamp": 1750000001,
            "biz_opaque_callback_data": "booking-42",
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"},
            **common,
        },
        {"id": "wamid.out1", "status": "read", "timestamp": "1750000002", **common},
        {"id": "wamid.out2", "status": "played", "timestamp": "1750000003", **common},
        {"id": "wamid.out3", "status": "deleted", **common},
    ]
    batch = parse_webhook(notification(status_value(*statuses, contacts=contacts)))
    assert batch.ignored == () and batch.messages == ()
    assert [(s.wa_message_id, s.status) for s in batch.statuses] == [
        ("wamid.out1", "sent"),
        ("wamid.out1", "read"),
        ("wamid.out2", "played"),
        ("wamid.out3", "deleted"),
    ]
    first = batch.statuses[0]
    assert first.biz_opaque_callback_data == "booking-42"
    assert first.recipient_user_id == BSUID
    assert first.timestamp == utc(1750000001)
    assert batch.statuses[3].timestamp is None


def test_error_codes_given_as_strings_become_integers() -> None:
    failed = {"id": "wamid.x", "status": "failed", "errors": [{"code": "131026"}]}
    (status,) = parse_webhook(notification(status_value(failed))).statuses
    assert status.errors == (StatusError(code=131026),)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({"status": "sent"}, "no message 'id'"),
        ({"id": "wamid.x"}, "'status' is missing"),
        ({"id": "wamid.x", "status": 3}, "'status' is not a string"),
        (
            {"id": "wamid.x", "status": "sent", "timestamp": "soon"},
            "'timestamp' is not a unix time",
        ),
        ({"id": "wamid.x", "status": "failed", "errors": "bad"}, "'errors' is not a list"),
        ({"id": "wamid.x", "status": "failed", "errors": [1]}, "'errors[0]' is not an object"),
        (
            {"id": "wamid.x", "status": "failed", "errors": [{"code": "x"}]},
            "'errors[0].code' is not an integer",
        ),
        (
            {"id": "wamid.x", "status": "sent", "recipient_id": {}},
            "'recipient_id' is not a valid id",
        ),
    ],
)
def test_malformed_statuses_are_ignored_and_the_rest_kept(
    status: dict[str, Any], reason: str
) -> None:
    good = {"id": "wamid.good", "status": "delivered"}
    batch = parse_webhook(notification(status_value(status, good)))
    assert [s.wa_message_id for s in batch.statuses] == ["wamid.good"]
    assert len(batch.ignored) == 1
    assert batch.ignored[0].what.endswith("(entry[0].changes[0].statuses[0])")
    assert batch.ignored[0].reason == reason


def test_webhook_level_errors() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": PHONE_NUMBER_ID},
        "errors": [
            {"code": 131052, "title": "Media download error", "error_data": {"details": "big"}},
            "junk",
        ],
    }
    batch = parse_webhook(notification(value))
    assert batch.errors == (StatusError(code=131052, title="Media download error", details="big"),)
    assert batch.ignored == (
        Ignored(what="error (entry[0].changes[0].errors[1])", reason="not an object"),
    )


# Batches ----------------------------------------------------------------------------


def test_several_entries_and_changes_are_parsed_in_document_order() -> None:
    document = {
        "object": WABA,
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": messages_value(
                            text_message("one", "wamid.1"),
                            text_message("two", "wamid.2"),
                            text_message("three", "wamid.3"),
                        ),
                    },
                    {
                        "field": "messages",
                        "value": status_value({"id": "wamid.o1", "status": "sent"}),
                    },
                ],
            },
            {
                "id": "2",
                "changes": [
                    {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
                    {
                        "field": "messages",
                        "value": messages_value(
                            text_message("four", "wamid.4"),
                            typed_message("reaction", {"message_id": "wamid.o1", "emoji": "❤️"}),
                            text_message("six", "wamid.6"),
                        ),
                    },
                    {
                        "field": "messages",
                        "value": status_value({"id": "wamid.o2", "status": "read"}),
                    },
                ],
            },
        ],
    }
    batch = parse_webhook(document)
    assert [m.message.id for m in batch.messages] == [
        "wamid.1",
        "wamid.2",
        "wamid.3",
        "wamid.4",
        "wamid.reaction",
        "wamid.6",
    ]
    assert [s.wa_message_id for s in batch.statuses] == ["wamid.o1", "wamid.o2"]
    assert batch.ignored == (
        Ignored(
            what="change field 'account_update' (entry[1].changes[0])",
            reason="only 'messages' changes are handled",
        ),
    )


def test_a_full_batch_of_a_thousand_messages() -> None:
    messages = [text_message(f"message {i}", f"wamid.{i}") for i in range(1000)]
    batch = parse_webhook(notification(messages_value(*messages)))
    assert [m.message.text for m in batch.messages] == [f"message {i}" for i in range(1000)]


def test_other_objects_are_ignored() -> None:
    batch = parse_webhook({"object": "page", "entry": [{"changes": []}]})
    assert batch == WebhookBatch(
        ignored=(
            Ignored(
                what="object 'page'",
                reason="not a WhatsApp Business Account notification ('page')",
            ),
        )
    )


def test_a_messages_change_without_anything_is_recorded() -> None:
    batch = parse_webhook(notification({"messaging_product": "whatsapp"}))
    assert batch.ignored == (
        Ignored(
            what="change field 'messages' (entry[0].changes[0])",
            reason="no messages, statuses or errors",
        ),
    )


def test_malformed_metadata_only_loses_the_phone_number_id() -> None:
    value = messages_value(text_message("hi"))
    value["metadata"] = ["not", "an", "object"]
    batch = parse_webhook(notification(value))
    assert [m.phone_number_id for m in batch.messages] == [None]
    assert batch.ignored == (
        Ignored(what="metadata (entry[0].changes[0])", reason="not an object"),
    )


# Garbage shapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "what"),
    [
        ({}, "object"),
        ([], "document"),
        ("x", "document"),
        (None, "document"),
        (17, "document"),
        (True, "document"),
        ({"object": WABA}, "entry"),
        ({"object": WABA, "entry": {"id": "1"}}, "entry"),
        ({"object": WABA, "entry": ["x"]}, "entry (entry[0])"),
        ({"object": WABA, "entry": [{"changes": "x"}]}, "changes (entry[0])"),
        ({"object": WABA, "entry": [{"changes": [7]}]}, "change (entry[0].changes[0])"),
        (
            {"object": WABA, "entry": [{"changes": [{"value": {}}]}]},
            "change (entry[0].changes[0])",
        ),
        (notification("value"), "change field 'messages' (entry[0].changes[0])"),
        (notification({"messages": {"id": "x"}}), "messages (entry[0].changes[0])"),
    ],
)
def test_garbage_documents_are_recorded_not_raised(document: Any, what: str) -> None:
    batch = parse_webhook(document)
    assert batch.messages == () and batch.statuses == () and batch.errors == ()
    assert [i.what for i in batch.ignored] == [what]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": None}, "no message 'id'"),
        ({"id": ""}, "no message 'id'"),
        ({"id": ["wamid"]}, "'id' is not a valid id"),
        ({"id": "wamid\x00"}, "'id' is not a valid id"),
        ({"from": {"phone": "1"}}, "'from' is not a valid id"),
        ({"timestamp": "yesterday"}, "'timestamp' is not a unix time"),
        ({"timestamp": "nan"}, "'timestamp' is not a unix time"),
        ({"timestamp": True}, "'timestamp' is not a unix time"),
        ({"timestamp": 10**20}, "'timestamp' is out of range"),
        ({"context": "wamid.x"}, "'context' is not an object"),
        ({"context": {"id": 1.5}}, "'context.id' is not a valid id"),
        ({"text": "hi"}, "'text' is missing or not an object"),
        ({"text": {}}, "'text.body' is missing"),
        ({"text": {"body": 42}}, "'text.body' is not a string"),
    ],
)
def test_malformed_text_messages_are_ignored(change: dict[str, Any], reason: str) -> None:
    assert ignored_reason({**text_message("hi"), **change}) == reason


@pytest.mark.parametrize(
    ("type_", "body", "reason"),
    [
        (
            "location",
            {"latitude": "north", "longitude": 1},
            "'location.latitude' is missing or not a number",
        ),
        ("location", {"latitude": 1}, "'location.longitude' is missing or not a number"),
        ("location", {"latitude": 91, "longitude": 1}, "'location.latitude' is out of range"),
        (
            "location",
            {"latitude": "inf", "longitude": 1},
            "'location.latitude' is missing or not a number",
        ),
        ("image", {"mime_type": "image/png"}, "'image.id' is missing"),
        ("image", [], "'image' is missing or not an object"),
        ("document", {"id": "1", "filename": 3}, "'document.filename' is not a string"),
        ("reaction", {"message_id": "wamid.x", "emoji": 1}, "'reaction.emoji' is not a string"),
        ("reaction", {"message_id": {}}, "'reaction.message_id' is not a valid id"),
        (
            "interactive",
            {"type": "button_reply"},
            "'interactive.button_reply' is missing or not an object",
        ),
        (
            "interactive",
            {"type": "list_reply", "list_reply": {"title": "t"}},
            "'interactive.list_reply.id' is missing",
        ),
        (
            "interactive",
            {"button_reply": {"id": "x"}},
            "'interactive.type' is missing or not a string",
        ),
        ("button", {"text": "Yes"}, "'button.payload' is missing"),
        ("contacts", None, "'contacts' is missing or not a list"),
    ],
)
def test_malformed_typed_messages_are_ignored(type_: str, body: Any, reason: str) -> None:
    message = typed_message(type_, body)
    if type_ == "contacts":
        message["contacts"] = {"name": "x"}
    assert ignored_reason(message) == reason


@pytest.mark.parametrize("type_", [None, 3, "", ["text"], "te\x00xt"])
def test_messages_without_a_type_are_ignored(type_: Any) -> None:
    message = {**text_message("hi"), "type": type_}
    assert ignored_reason(message) == "'type' is missing or not a type name"


def test_a_bad_message_does_not_cost_the_rest_of_the_batch() -> None:
    batch = parse_webhook(
        notification(
            messages_value(
                text_message("first", "wamid.1"),
                {**text_message("broken", "wamid.2"), "timestamp": "x"},
                "not a message",
                text_message("last", "wamid.3"),
            )
        )
    )
    assert [m.message.text for m in batch.messages] == ["first", "last"]
    assert [i.what for i in batch.ignored] == [
        "message type 'text' (entry[0].changes[0].messages[1])",
        "message (entry[0].changes[0].messages[2])",
    ]


def test_ids_and_timestamps_given_as_numbers_are_accepted() -> None:
    message = {**text_message("hi"), "from": 16505551234, "timestamp": 1749416383.0}
    incoming = parse_one(message)
    assert incoming.sender.wa_id == "16505551234"
    assert incoming.message.timestamp == utc(1749416383)


def test_a_missing_timestamp_is_none() -> None:
    message = text_message("hi")
    del message["timestamp"]
    assert parse_one(message).message.timestamp is None


# The types themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [Sender, IncomingMessage, StatusError, StatusUpdate, Ignored, WebhookBatch]
)
def test_update_types_are_frozen_slotted_and_keyword_only(cls: type[Any]) -> None:
    params = getattr(cls, "__dataclass_params__")  # noqa: B009 - not in typeshed's stubs
    assert params.frozen
    assert "__slots__" in vars(cls)
    assert all(f.kw_only for f in dataclasses.fields(cls))


def test_raw_is_left_out_of_equality_and_repr() -> None:
    first = parse_one(text_message("hi"))
    second = parse_one({**text_message("hi"), "extra": "field"})
    assert first == second
    assert hash(first) == hash(second)
    assert "extra" not in repr(second)
    assert second.raw["extra"] == "field"


def test_parsed_messages_survive_the_stored_payload_round_trip() -> None:
    for name in sorted(spec_examples()):
        for incoming in example(name).messages:
            stored = type(incoming.message).from_payload(incoming.message.to_payload())
            assert stored == incoming.message


# Property-based: nothing raises ----------------------------------------------------

KEYS = [
    "object", "entry", "changes", "field", "value", "metadata", "phone_number_id", "contacts",
    "profile", "name", "username", "wa_id", "user_id", "messages", "statuses", "errors", "from",
    "from_user_id", "id", "timestamp", "type", "text", "body", "context", "interactive",
    "button_reply", "list_reply", "nfm_reply", "title", "button", "payload", "image", "document",
    "audio", "video", "sticker", "mime_type", "sha256", "filename", "caption", "location",
    "latitude", "longitude", "address", "reaction", "message_id", "emoji", "system", "group_id",
    "status", "recipient_id", "recipient_user_id", "biz_opaque_callback_data", "code",
    "error_data", "details", "message", "phones", "phone", "formatted_name",
]  # fmt: skip
TYPES = [
    "text", "interactive", "button", "image", "document", "audio", "video", "sticker",
    "location", "reaction", "contacts", "order", "unsupported", "system", "button_reply",
    "list_reply", "nfm_reply", "whatsapp_business_account", "messages",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(TYPES)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), children, max_size=5)
    ),
    max_leaves=12,
)
# A valid message's skeleton, with a random body and random fields on top.
random_messages = st.builds(
    lambda type_, body, extra: {
        "id": "wamid.x",
        "from": "16505551234",
        "timestamp": "1749416383",
        "type": type_,
        type_: body,
        **extra,
    },
    st.sampled_from(TYPES),
    json_values | st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3),
)
# Random JSON, and random messages and statuses inside a valid envelope, which reach the
# per-type parsing that random JSON alone rarely gets to.
documents = json_values | st.builds(
    lambda messages, contacts, statuses: notification(
        messages_value(*messages, contacts=contacts, statuses=statuses)
    ),
    st.lists(random_messages, max_size=3),
    json_values,
    st.lists(json_values, max_size=2),
)


@settings(max_examples=300, deadline=None, database=None)
@given(documents)
def test_random_documents_never_raise(document: Any) -> None:
    batch = parse_webhook(document)
    assert isinstance(batch, WebhookBatch)
    for incoming in batch.messages:
        assert incoming.sender.wa_id is not None or incoming.sender.user_id is not None
        assert incoming.message.kind in KINDS
        stamp = incoming.message.timestamp
        assert stamp is None or stamp.tzinfo is dt.UTC
    assert all(isinstance(s.wa_message_id, str) for s in batch.statuses)
