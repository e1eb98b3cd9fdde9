"""Meta's OpenAPI spec as validators: known-good bodies pass, known-bad ones are named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from testing.meta_spec import MARK_READ_EXAMPLE, SPEC_PATH, MetaSpec, MetaSpecError

TO = "+263771234567"


@pytest.fixture(scope="module")
def spec() -> MetaSpec:
    return MetaSpec.load()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    with SPEC_PATH.open("rb") as stream:
        loaded: dict[str, Any] = yaml.load(stream, Loader=yaml.CSafeLoader)
    return loaded


def message(kind: str, **content: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": kind,
        **content,
    }


def button(i: int, title: str | None = None) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": f"choice-{i}", "title": title or f"Option {i}"}}


def buttons(*items: dict[str, Any]) -> dict[str, Any]:
    return message(
        "interactive",
        interactive={
            "type": "button",
            "header": {"type": "text", "text": "Your safari"},
            "body": {"text": "How many travellers?"},
            "footer": {"text": "Savannah Trails"},
            "action": {"buttons": list(items)},
        },
    )


def listing(*sections: int) -> dict[str, Any]:
    return message(
        "interactive",
        interactive={
            "type": "list",
            "body": {"text": "Pick a tour"},
            "action": {
                "button": "Tours",
                "sections": [
                    {
                        "title": f"Section {s}",
                        "rows": [
                            {"id": f"s{s}r{r}", "title": f"Tour {r}", "description": "3 days"}
                            for r in range(rows)
                        ],
                    }
                    for s, rows in enumerate(sections)
                ],
            },
        },
    )


def template(*components: dict[str, Any], **language: str) -> dict[str, Any]:
    return message(
        "template",
        template={
            "name": "tour_summary",
            "language": language or {"code": "en_US", "policy": "deterministic"},
            "components": list(components),
        },
    )


BODY = {"type": "body", "parameters": [{"type": "text", "text": "Tendai"}]}
GOOD = {
    "text": message("text", text={"preview_url": False, "body": "Hello from Savannah Trails"}),
    "text in reply": message(
        "text", context={"message_id": "wamid.HBgLMjYz"}, text={"body": "Noted"}
    ),
    "3 reply buttons": buttons(button(1), button(2), button(3, "x" * 20)),
    "list with 10 rows": listing(10),
    "list with 10 rows in 2 sections": listing(4, 6),
    "document by id": message(
        "document",
        document={"id": "1037543291543636", "filename": "tour.pdf", "caption": "Your tour"},
    ),
    "location": message(
        "location",
        location={
            "latitude": "-17.9243",
            "longitude": "25.8572",
            "name": "Victoria Falls",
            "address": "Livingstone Way",
        },
    ),
    "template with body parameters": template(
        BODY,
        {
            "type": "body",
            "parameters": [{"type": "text", "parameter_name": "name", "text": "Tendai"}],
        },
    ),
    "template with quick-reply button 0": template(
        BODY,
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "CONFIRM"}],
        },
    ),
    "template without components": template(),
}


@pytest.mark.parametrize("body", GOOD.values(), ids=GOOD.keys())
def test_known_good_messages_pass(spec: MetaSpec, body: dict[str, Any]) -> None:
    assert spec.validate_message(body) == []


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


BAD = {
    "4th reply button": (
        buttons(button(1), button(2), button(3), button(4)),
        "$.interactive.action.buttons: has 4 items; at most 3 allowed",
    ),
    "30-character button title": (
        buttons(button(1, "A" * 30)),
        "$.interactive.action.buttons[0].reply.title: is 30 characters long; at most 20 allowed",
    ),
    "unknown top-level field": (
        {**GOOD["text"], "priority": "high"},
        "$: 'priority' is not allowed here",
    ),
    "unknown field in text": (
        message("text", text={"body": "hi", "bold": True}),
        "$.text: Additional properties are not allowed ('bold' was unexpected)",
    ),
    "11th list row": (
        listing(11),
        "$.interactive.action.sections[0].rows: has 11 items; at most 10 allowed",
    ),
    "missing to": (without(GOOD["text"], "to"), "$: 'to' is a required property"),
    "missing recipient_type": (
        without(GOOD["text"], "recipient_type"),
        "$: 'recipient_type' is a required property",
    ),
    "numeric latitude": (
        message("location", location={"latitude": -17.9243, "longitude": "25.8572"}),
        "$.location.latitude: -17.9243 is not of type 'string'",
    ),
    "language without policy": (
        template(BODY, code="en_US"),
        "$.template.language: 'policy' is a required property",
    ),
    "text parameter without text": (
        template({"type": "body", "parameters": [{"type": "text"}]}),
        "$.template.components[0].parameters[0]: 'text' is a required property",
    ),
    "button index 10": (
        template(
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "10",
                "parameters": [{"type": "payload", "payload": "x"}],
            }
        ),
        "$.template.components[0].index: '10' does not match '^[0-9]$'",
    ),
    "unknown type": (
        message("carousel", carousel={}),
        "$.type: 'carousel' is not one of: audio, contacts, document, image, interactive, "
        "location, reaction, sticker, template, text, video",
    ),
    "document by id and link": (
        message("document", document={"id": "1", "link": "https://x.test/a.pdf"}),
        "$.document: matches more than one of the 2 shapes the spec allows here",
    ),
    "document by neither": (
        message("document", document={"filename": "tour.pdf"}),
        "$.document: needs one of: 'id'; 'link'",
    ),
    "list without sections": (
        message(
            "interactive",
            interactive={"type": "list", "body": {"text": "x"}, "action": {"button": "Go"}},
        ),
        "$.interactive.action: needs one of: 'sections'; 'buttons'; 'catalog_id'",
    ),
}


@pytest.mark.parametrize(("body", "problem"), BAD.values(), ids=BAD.keys())
def test_known_bad_messages_are_rejected_with_the_place_named(
    spec: MetaSpec, body: dict[str, Any], problem: str
) -> None:
    problems = spec.validate_message(body)
    assert any(line.startswith(problem) for line in problems), problems


def test_a_wrong_field_is_not_also_reported_as_unexpected(spec: MetaSpec) -> None:
    body = message("location", location={"latitude": 1.5, "longitude": "2"})
    assert spec.validate_message(body) == ["$.location.latitude: 1.5 is not of type 'string'"]


def test_several_problems_are_all_named(spec: MetaSpec) -> None:
    body = without({**buttons(button(1, "B" * 21)), "priority": 1}, "to")
    assert spec.validate_message(body) == [
        "$: 'to' is a required property",
        "$: 'priority' is not allowed here",
        "$.interactive.action.buttons[0].reply.title: is 21 characters long; at most 20 allowed",
    ]


def test_the_validators_read_the_schemas_the_operations_name(spec: MetaSpec) -> None:
    assert spec.message_schema_name == "Message"
    assert spec.webhook_schema_name == "WebhookPayload"


def test_the_spec_is_parsed_once_per_process() -> None:
    assert MetaSpec.load() is MetaSpec.load()
    assert MetaSpec.load(SPEC_PATH.parent / ".." / "meta_openapi" / SPEC_PATH.name) is (
        MetaSpec.load()
    )


SPEC_EXAMPLES_FAILING = {
    # no recipient_type
    "Send Contact Message",
    "Send Reply to Contact Message",
    "Send Test Message",
    "Send Sample Issue Resolution Template",
    "Send Flow Template Message",
    # no type at all
    "Send Text Message with Preview URL",
    "Send Reply to List Message",
    # numeric latitude/longitude
    "Send Location Message",
    "Send Reply to Location Message",
    # template language without policy
    "Send Message Template Interactive",
    "Send Message Template Media",
    "Send Message Template Text",
    "Send Sample Shipping Confirmation Template",
    "Send Sample Text Message",
    "Send Catalog Template Message",
    # placeholders or interactive types the schema does not know
    "Send Multi-Product Message",
    "Send Order Details Message",
    "Send Order Status Message",
    # mark-as-read, which the Message schema does not cover
    MARK_READ_EXAMPLE,
}


def test_the_spec_examples_that_fail_its_own_schema_are_the_known_19(spec: MetaSpec) -> None:
    examples = spec.message_examples()
    failing = {name for name, body in examples if spec.validate_message(body)}
    assert len(examples) == 50
    assert failing == SPEC_EXAMPLES_FAILING


# --- mark as read -----------------------------------------------------------------------

READ = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.HBgLMjYz"}


@pytest.mark.parametrize(
    "body", [READ, {**READ, "typing_indicator": {"type": "text"}}], ids=["read", "typing"]
)
def test_mark_read_bodies_pass(spec: MetaSpec, body: dict[str, Any]) -> None:
    assert spec.validate_mark_read(body) == []


def test_the_spec_example_for_mark_read_passes(spec: MetaSpec) -> None:
    example = dict(spec.message_examples())[MARK_READ_EXAMPLE]
    assert spec.validate_mark_read(example) == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({**READ, "status": "delivered"}, "$.status: 'read' was expected"),
        (without(READ, "message_id"), "$: 'message_id' is a required property"),
        (without(READ, "messaging_product"), "$: 'messaging_product' is a required property"),
        ({**READ, "message_id": 7}, "$.message_id: 7 is not of type 'string'"),
        ({**READ, "to": TO}, "$: Additional properties are not allowed ('to' was unexpected)"),
        ({**READ, "typing_indicator": {"type": "audio"}}, "$.typing_indicator.type: 'text'"),
        ({**READ, "typing_indicator": {}}, "$.typing_indicator: 'type' is a required"),
    ],
    ids=["status", "no id", "no product", "id type", "extra key", "indicator type", "empty"],
)
def test_bad_mark_read_bodies_are_rejected(
    spec: MetaSpec, body: dict[str, Any], problem: str
) -> None:
    problems = spec.validate_mark_read(body)
    assert any(line.startswith(problem) for line in problems), problems


# --- webhooks -----------------------------------------------------------------------------

WEBHOOK_EXAMPLE_NAMES = [
    "Text Message",
    "Text Message with Context (Product Inquiry)",
    "Text Message from Click to WhatsApp Ad",
    "Reaction Message",
    "Image Message",
    "Location Message",
    "Contact Sharing Message",
    "Unsupported Message",
    "Button Message",
    "Interactive List Reply Message",
    "Interactive Button Reply Message",
    "Order Message",
    "System Message",
    "Group Create Message",
    "Group Settings Update",
    "Group Remove Participants",
]


def test_the_spec_has_16_named_webhook_examples(spec: MetaSpec) -> None:
    assert [name for name, _ in spec.webhook_examples()] == WEBHOOK_EXAMPLE_NAMES


@pytest.mark.parametrize("name", WEBHOOK_EXAMPLE_NAMES)
def test_every_webhook_example_validates(spec: MetaSpec, name: str) -> None:
    payload = dict(spec.webhook_examples())[name]
    assert spec.validate_webhook(payload) == []


def test_webhook_examples_are_fresh_copies(spec: MetaSpec) -> None:
    first = dict(spec.webhook_examples())["Text Message"]
    first["object"] = "changed"
    assert dict(spec.webhook_examples())["Text Message"]["object"] == "whatsapp_business_account"


def text_webhook(spec: MetaSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    payload = dict(spec.webhook_examples())["Text Message"]
    return payload, payload["entry"][0]["changes"][0]["value"]["messages"][0]


def test_inbound_messages_use_the_webhook_schemas_not_the_outgoing_ones(spec: MetaSpec) -> None:
    payload, inbound = text_webhook(spec)
    assert "to" not in inbound
    assert "recipient_type" not in inbound
    assert spec.validate_webhook(payload) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m.pop("text"), "messages[0]: 'text' is a required property"),
        (lambda m: m.pop("from"), "messages[0]: 'from' is a required property"),
        (lambda m: m.update(type="hologram"), "messages[0].type: 'hologram' is not one of"),
        (lambda m: m["text"].update(body=3), "messages[0].text.body: 3 is not of type"),
    ],
    ids=["no text", "no from", "unknown type", "body type"],
)
def test_broken_inbound_messages_are_rejected(spec: MetaSpec, change: Any, problem: str) -> None:
    payload, inbound = text_webhook(spec)
    change(inbound)
    problems = spec.validate_webhook(payload)
    assert problems
    assert problems[0].startswith(f"$.entry[0].changes[0].value.{problem}"), problems


def status_webhook(status: str) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "statuses": [
                                {
                                    "id": "wamid.HBgLMjYz",
                                    "status": status,
                                    "timestamp": "1750263773",
                                    "recipient_id": "263771234567",
                                    "pricing": {
                                        "billable": True,
                                        "pricing_model": "PMP",
                                        "category": "utility",
                                        "type": "regular",
                                    },
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def test_status_webhooks_validate(spec: MetaSpec) -> None:
    assert spec.validate_webhook(status_webhook("delivered")) == []
    assert spec.validate_webhook(status_webhook("teleported")) == [
        "$.entry[0].changes[0].value.statuses[0].status: 'teleported' is not one of "
        "['sent', 'delivered', 'read', 'failed']"
    ]


def test_a_payload_without_entries_is_rejected(spec: MetaSpec) -> None:
    assert spec.validate_webhook({"object": "whatsapp_business_account"}) == [
        "$: 'entry' is a required property"
    ]


# --- a spec that is not the one we know -------------------------------------------------


def test_a_document_without_the_operations_is_refused(document: dict[str, Any]) -> None:
    broken = copy.deepcopy(document)
    del broken["paths"]["/whatsapp/webhooks"]
    with pytest.raises(MetaSpecError, match="lacks '/whatsapp/webhooks'"):
        MetaSpec(broken)


def test_a_patched_place_that_moved_is_refused(document: dict[str, Any]) -> None:
    broken = copy.deepcopy(document)
    del broken["components"]["schemas"]["TemplateComponent"]["properties"]["index"]
    with pytest.raises(MetaSpecError, match="cannot patch TemplateComponent/properties/index"):
        MetaSpec(broken)


def test_a_file_that_is_not_a_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(MetaSpecError, match="is not an OpenAPI document"):
        MetaSpec.load(path)
