"""Every body Nyala sends validates against the Message schema of Meta's spec."""

from __future__ import annotations

from typing import Any

import pytest

from bot.whatsapp.message_bodies import mark_read_body, message_body, recipient, template_body
from flows.messages import (
    Buttons,
    Document,
    ListMenu,
    LocationPin,
    Option,
    Reply,
    Template,
    Text,
)
from testing.meta_spec import MetaSpec

LONG = "x" * 60


@pytest.fixture(scope="module")
def spec() -> MetaSpec:
    return MetaSpec.load()


REPLIES: list[Reply] = [
    Text("Hello 👋 مرحبا — see https://example.com"),
    Buttons("Confirm?", (Option("yes", "Confirm"), Option("no", "Cancel")), header="Booking",
            footer="Savannah Trails"),
    Buttons("Pick one " * 200, tuple(Option(str(i), f"{LONG} {i}") for i in range(3))),
    ListMenu("Choose a tour", tuple(Option(f"t{i}", f"{LONG} {i}", LONG * 2) for i in range(10)),
             button="Tours available today", section_title=LONG),
    Document(7, "Receipt_RCT-2026-000001.pdf", "Your receipt"),
    LocationPin(-17.9243, 25.8572, "Victoria Falls", "Livingstone Way"),
    Template("tour_summary", "en_US", ("Tendai", "Big Five Safari"), "fallback",
             (Option("pay", "Pay balance"), Option("ids", "Upload IDs"))),
]  # fmt: skip


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_each_reply_kind_is_a_valid_message(spec: MetaSpec, reply: Reply) -> None:
    body = message_body(reply, to=recipient("263771234567", None), media_id="1234567890")
    assert spec.validate_message(body) == []
    assert body["to"] == "+263771234567"


def test_quoted_replies_and_username_recipients_validate(spec: MetaSpec) -> None:
    body = message_body(Text("hi"), to=recipient(None, "ZW.abc123"), context="wamid.XYZ")
    assert body["to"] == "ZW.abc123"
    assert spec.validate_message(body) == []


def test_a_template_without_parameters_validates(spec: MetaSpec) -> None:
    body: dict[str, Any] = template_body(Template("hello_world", "en_US"), to="+263771234567")
    assert spec.validate_message(body) == []


def test_mark_as_read_validates(spec: MetaSpec) -> None:
    assert spec.validate_mark_read(mark_read_body("wamid.ABC")) == []
    assert spec.validate_mark_read(mark_read_body("wamid.ABC", typing=True)) == []


def test_a_document_needs_its_uploaded_media_id() -> None:
    with pytest.raises(ValueError, match="media id"):
        message_body(Document(1, "a.pdf"), to="+1")
