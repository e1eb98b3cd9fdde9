"""An ad lead is greeted by the safari bot with the ad and the next steps (both backends)."""

from __future__ import annotations

import pytest

from flows import UserMessage
from flows.messages import Buttons, Referral
from flows.testing import ChatFactory
from storage import Database
from tests.apps.safari.chat_helpers import Catalogue, add_catalogue, open_chat

AD = Referral(source_id="120226", source_type="ad", headline="Victoria Falls in 3 days")


@pytest.fixture
async def catalogue(db: Database) -> Catalogue:
    return await add_catalogue(db)


async def test_an_ad_lead_is_greeted_by_the_ad_and_can_book_at_once(
    nyala_chat: ChatFactory, catalogue: Catalogue
) -> None:
    chat = await open_chat(nyala_chat)
    message = UserMessage(id="wamid.ad", kind="text", text="Tell me more", referral=AD)
    chat.replies = await chat.engine.handle(chat.contact, message)
    (greeting,) = chat.replies
    assert isinstance(greeting, Buttons)
    assert "*Victoria Falls in 3 days*" in greeting.body
    assert chat.options == ["Book a tour", "Get a quote", "Talk to a person"]
    await chat.send(tap="Book a tour")
    assert "Which tour would you like to book?" in chat.texts[0]


async def test_an_ad_lead_can_ask_for_a_quote(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    message = UserMessage(id="wamid.ad", kind="text", text="Hi", referral=Referral(source_id="1"))
    chat.replies = await chat.engine.handle(chat.contact, message)
    assert "Thanks for getting in touch!" in chat.texts[0]
    await chat.send(tap="Get a quote")
    assert chat.last_text == "Wonderful! Let's plan your safari. What's your full name?"
