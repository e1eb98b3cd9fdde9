"""Conversation tests of support_flow (hand-off to a person) and update_details_flow.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import pytest

from flows import release_handoff
from flows.testing import ChatFactory, ChatTester
from storage import Database, SessionStatus
from tests.apps.safari.chat_helpers import (
    PHONE,
    START,
    Catalogue,
    add_catalogue,
    contact_and_customer,
    day,
    open_chat,
)

SUPPORT_QUESTION = (
    "Of course! Someone from our team will take over this chat. So they can help you "
    "quickly, what is it about? Type a few words, or tap *Skip*."
)
HANDED_OFF = (
    "I've asked a member of our team to take over. They'll reply right here as soon as they can."
)


@pytest.fixture
async def catalogue(db: Database) -> Catalogue:
    """Two tours with departures relative to today, one of them nearly full."""
    return await add_catalogue(db)


async def release(chat: ChatTester) -> None:
    """An operator gives the conversation back to the bot."""
    assert await release_handoff(chat.engine.db, (await chat.conversation()).contact_id)


async def test_support_hands_the_chat_to_a_person_with_the_topic(
    nyala_chat: ChatFactory,
) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("support")
    assert chat.texts == [SUPPORT_QUESTION]
    assert chat.options == ["Skip"]

    await chat.send("I need to change the date of my tour")
    assert chat.texts == [HANDED_OFF]
    conversation = await chat.conversation()
    assert conversation.handed_off_at == START
    assert conversation.handoff_reason == "support request: I need to change the date of my tour"
    await chat.send("hello?")
    assert chat.replies == []  # the bot stays quiet until released

    assert await chat.steps() == [
        ("support_topic", "entered"),
        ("support_topic", "completed"),
        ("handed_to_team", "entered"),
    ]
    (session,) = await chat.sessions()
    assert session.flow_name == "support_flow"
    # Reaching the hand-off step is what support_flow is for: completed, with the reason.
    assert session.status is SessionStatus.COMPLETED
    assert session.ended_reason == (
        "handed to a person: support request: I need to change the date of my tour"
    )

    await release(chat)
    await chat.send("hi")
    assert chat.last_text == "Hello from Savannah Trails Safaris 🦁 What would you like to do?"


async def test_every_way_to_a_person_goes_through_support(
    nyala_chat: ChatFactory, catalogue: Catalogue
) -> None:
    chat = await open_chat(nyala_chat)

    # Typed in the middle of a booking.
    await chat.send("book")
    await chat.send("agent")
    assert chat.texts == [SUPPORT_QUESTION]
    booking_session, _ = await chat.sessions()
    assert booking_session.ended_reason == "switched to support_flow"
    await chat.send(tap="Skip")
    assert chat.texts == [HANDED_OFF]
    assert (await chat.conversation()).handoff_reason == "support request (no topic given)"
    await release(chat)

    # The button offered after three invalid answers.
    await chat.send("book")
    await chat.send(tap="falls")
    await chat.send(tap=day(7).isoformat())
    for answer in ("lots", "many", "a few"):
        await chat.send(answer)
    await chat.send(tap="Talk to a person")
    assert chat.texts == [SUPPORT_QUESTION]
    await chat.send("skip")
    assert (await chat.conversation()).handoff_reason == "support request (no topic given)"
    await release(chat)

    # The main menu.
    await chat.send("hi")
    await chat.send(tap="Talk to a person")
    assert chat.texts == [SUPPORT_QUESTION]
    assert [s.flow_name for s in await chat.sessions()] == [
        "booking_flow", "support_flow", "booking_flow", "support_flow", "support_flow",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("button", "question", "bad", "good", "saved", "label"),
    [
        ("E-mail", "Which e-mail address should we use?", "ana@", "Ana@Example.com",
         "Ana@example.com", "e-mail address"),
        ("Phone number", "Which phone number should we use? Include the country code if it "
         "isn't Zimbabwean.", "12", "0772 123 456", "+263772123456", "phone number"),
    ],
    ids=["email", "phone"],
)  # fmt: skip
async def test_updating_email_or_phone(
    nyala_chat: ChatFactory,
    button: str,
    question: str,
    bad: str,
    good: str,
    saved: str,
    label: str,
) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("my details")
    assert chat.texts == [
        "Here's what we have for you:\n"
        "• Name: not given yet\n"
        "• E-mail: not given yet\n"
        f"• Phone: +{PHONE}\n\n"
        "What would you like to change?"
    ]
    assert chat.options == ["Name", "E-mail", "Phone number"]
    await chat.send(tap=button)
    assert chat.texts == [question]
    await chat.send(bad)
    assert chat.texts[1] == question  # after why, the question again
    await chat.send(good)
    assert chat.texts == [f"Done! Your {label} is now {saved}. Type *menu* for anything else."]

    contact, customer = await contact_and_customer(chat.engine.db)
    assert customer is not None
    key = "email" if button == "E-mail" else "phone"
    assert getattr(customer, key) == saved
    assert customer.name == "Test User"  # the service layer's fallback: the profile name
    assert contact.attributes == {key: saved}
    await chat.send("my details")
    assert "• Name: not given yet" in chat.last_text  # a profile name is no full name
    assert saved in chat.last_text
    step = "new_email" if button == "E-mail" else "new_phone"
    assert (await chat.steps())[:6] == [
        ("detail_to_change", "entered"),
        ("detail_to_change", "completed"),
        (step, "entered"),
        (step, "retry"),
        (step, "completed"),
        ("details_saved", "entered"),
    ]


async def test_a_new_name_is_used_by_the_other_flows(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("my details")
    await chat.send(tap="Name")
    assert chat.texts == ["What's your full name, as on your passport or ID?"]
    await chat.send("Ana")
    assert chat.texts[0] == "Please give the full name (first name and surname)."
    await chat.send("ana moyo")
    assert chat.texts == ["Done! Your name is now Ana Moyo. Type *menu* for anything else."]
    _, customer = await contact_and_customer(db)
    assert customer is not None and customer.name == "Ana Moyo"

    await chat.send("my details")
    assert "• Name: Ana Moyo" in chat.last_text

    # The booking does not ask the name again, the enquiry greets by it.
    await chat.send("book")
    await chat.send(tap="falls")
    await chat.send(tap=day(7).isoformat())
    await chat.send("1")
    assert chat.texts == ["Which e-mail address should we send your booking confirmation to?"]
    await chat.send("plan a safari")
    assert chat.last_text == "What would you most like to experience, Ana?"
