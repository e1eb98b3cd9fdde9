"""The stored payload of a message: :func:`message_payload` is ``to_payload()`` exactly."""

from __future__ import annotations

import datetime as dt
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.whatsapp.payloads import message_payload, parse_webhook
from flows.messages import Location, Media, MessageKind, Referral, UserMessage
from tests.bot.test_payloads import spec_examples

_text = st.none() | st.text(max_size=20)
_media = st.builds(
    Media,
    id=st.text(min_size=1, max_size=10),
    mime_type=st.text(max_size=10),
    sha256=_text,
    filename=_text,
    size=st.none() | st.integers(min_value=0),
    caption=_text,
    refused=_text,
)
_location = st.builds(
    Location,
    latitude=st.floats(-90, 90),
    longitude=st.floats(-180, 180),
    name=_text,
    address=_text,
)
_referral = st.builds(Referral, source_url=_text, source_id=_text, headline=_text, ctwa_clid=_text)
_messages = st.builds(
    UserMessage,
    id=st.text(min_size=1, max_size=20),
    kind=st.sampled_from(typing.get_args(MessageKind)),
    text=_text,
    reply_id=_text,
    media=st.none() | _media,
    location=st.none() | _location,
    emoji=_text,
    timestamp=st.none() | st.datetimes(timezones=st.just(dt.UTC)),
    refers_to=_text,
    referral=st.none() | _referral,
)


@pytest.mark.parametrize("name", sorted(spec_examples()))
def test_every_spec_example_is_stored_as_to_payload_says(name: str) -> None:
    for incoming in parse_webhook(spec_examples()[name]).messages:
        assert message_payload(incoming.message) == incoming.message.to_payload()


@given(_messages)
def test_any_message_is_stored_as_to_payload_says(message: UserMessage) -> None:
    payload = message_payload(message)
    assert payload == message.to_payload()
    assert list(payload) == list(message.to_payload())  # same key order in the JSON


def test_the_payload_shares_no_mutable_part_with_the_message() -> None:
    media = Media(id="m1", mime_type="image/jpeg")
    message = UserMessage(id="wamid.1", kind="image", media=media)
    payload = message_payload(message)
    payload["media"]["id"] = "changed"
    assert media.id == "m1" and message_payload(message)["media"]["id"] == "m1"
