"""Click-to-WhatsApp ad referrals kept on the contact and greeted as leads; deleted
messages unanswered, through the engine and through the running server (both backends)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from sqlalchemy import select

from bot.whatsapp.outbox import MARK_READ
from flows import App, FlowContext, UserMessage
from flows.messages import ListMenu, Referral, reply_text
from flows.testing import ChatFactory, ChatTester
from storage import Contact, InboundMessage, InboundStatus, OutboundMessage, SessionStatus
from testing.meta_spec import MetaSpec
from tests.bot import test_server
from tests.bot.test_server import Running, eventually
from tests.bot.webhooks import envelope

# The running server and fake Graph API of the server tests.
fake = test_server.fake
server = test_server.server

AD = Referral(
    source_url="https://fb.me/3cr4Wqqkv",
    source_id="120226305854810726",
    source_type="ad",
    headline="Free refill Fridays",
    body="Bring a friend",
    media_type="image",
    image_url="https://scontent.xx.fbcdn.net/v/t45.1",
    ctwa_clid="Aff-n8ZTODiE79d22",
    welcome_message="Hi there! Let us know how we can help!",
)
SENT_AT = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)


def from_ad(wamid: str = "wamid.ad", referral: Referral = AD, text: str = "Hi!") -> UserMessage:
    return UserMessage(id=wamid, kind="text", text=text, referral=referral, timestamp=SENT_AT)


async def contact_row(chat: ChatTester) -> Contact:
    async with chat.engine.db.read() as session:
        row = await session.scalar(select(Contact).where(Contact.wa_id == chat.phone))
    assert row is not None
    return row


async def test_a_lead_is_kept_on_the_contact_and_greeted_by_the_ad(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    replies = await chat.engine.handle(chat.contact, from_ad())
    (greeting,) = replies
    assert isinstance(greeting, ListMenu)  # the main menu, headed for a lead
    assert greeting.body == (
        "Hello, and thanks for your interest in “Free refill Fridays” from Test Café! "
        "How can I help?"
    )
    assert [o.title for o in greeting.options] == ["Order coffee"]
    contact = await contact_row(chat)
    assert contact.referral == AD.to_payload()
    assert contact.referred_at == SENT_AT


async def test_without_a_headline_the_greeting_names_the_business(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    replies = await chat.engine.handle(chat.contact, from_ad(referral=Referral(source_id="1")))
    assert reply_text(replies[0]) == (
        "Hello, and thanks for your interest in Test Café! How can I help?"
    )


async def test_an_ad_click_during_a_flow_is_a_fresh_start(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("order")
    assert chat.last_text == "Your name?"
    replies = await chat.engine.handle(chat.contact, from_ad())
    assert "Free refill Fridays" in reply_text(replies[0])
    (session,) = await chat.sessions()
    assert session.status is SessionStatus.ABANDONED
    assert session.ended_reason == "came back through an ad"
    assert (await chat.conversation()).flow_name is None


async def test_the_latest_ad_is_the_one_kept(cafe: App, nyala_chat: ChatFactory) -> None:
    chat = await nyala_chat(cafe)
    await chat.engine.handle(chat.contact, from_ad("wamid.1"))
    await chat.send("hello")  # no referral: what was kept stays
    assert (await contact_row(chat)).referral == AD.to_payload()
    later = Referral(source_id="999", source_type="post", headline="Winter menu")
    await chat.engine.handle(chat.contact, from_ad("wamid.2", referral=later))
    assert (await contact_row(chat)).referral == {
        "source_id": "999",
        "source_type": "post",
        "headline": "Winter menu",
    }


async def test_the_apps_handler_greets_the_lead(cafe: App, nyala_chat: ChatFactory) -> None:
    seen: list[Referral | None] = []

    def greet(ctx: FlowContext) -> None:
        assert ctx.message is not None
        seen.append(ctx.message.referral)
        ctx.reply(f"Welcome! Ask us about {ctx.message.referral.headline}.")  # type: ignore[union-attr]

    cafe.on_referral = greet
    chat = await nyala_chat(cafe)
    replies = await chat.engine.handle(chat.contact, from_ad())
    assert [reply_text(r) for r in replies] == ["Welcome! Ask us about Free refill Fridays."]
    assert seen == [AD]


async def test_the_apps_handler_may_start_a_flow_or_leave_the_default(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    async def order(ctx: FlowContext) -> None:
        ctx.start_flow("order_flow")

    cafe.on_referral = order
    chat = await nyala_chat(cafe)
    replies = await chat.engine.handle(chat.contact, from_ad("wamid.1"))
    assert [reply_text(r) for r in replies] == ["Your name?"]

    cafe.on_referral = lambda ctx: None  # says nothing: the default greeting
    other = await nyala_chat(cafe, phone="263770000002")
    replies = await other.engine.handle(other.contact, from_ad("wamid.2"))
    assert "Free refill Fridays" in reply_text(replies[0])


async def test_a_lead_in_a_handed_off_chat_is_kept_and_left_to_the_person(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("agent")
    assert await chat.engine.handle(chat.contact, from_ad()) == []
    assert (await contact_row(chat)).referral == AD.to_payload()


# Through the running server -------------------------------------------------------------

LEAD = "16505551234"  # the sender of Meta's example


def _ctwa_example() -> dict[str, Any]:
    examples = dict(MetaSpec.load().webhook_examples())
    return copy.deepcopy(examples["Text Message from Click to WhatsApp Ad"])


def _revoke(wamid: str, original: str) -> dict[str, Any]:
    return envelope(
        {
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": LEAD}],
            "messages": [
                {
                    "from": LEAD,
                    "id": wamid,
                    "timestamp": "1750276000",
                    "type": "revoke",
                    "revoke": {"original_message_id": original},
                }
            ],
        }
    )


def _bodies(server: Running) -> list[str]:
    bodies = []
    for sent in server.fake.sent:
        body = sent.body
        if body["type"] == "text":
            bodies.append(body["text"]["body"])
        elif body["type"] == "interactive":
            bodies.append(body["interactive"]["body"]["text"])
    return bodies


async def _processed(server: Running, wamid: str) -> InboundMessage | None:
    async with server.db.read() as session:
        row = await session.scalar(
            select(InboundMessage).where(InboundMessage.wa_message_id == wamid)
        )
    return row if row is not None and row.status is InboundStatus.DONE else None


async def test_a_lead_by_webhook_is_kept_and_greeted_and_a_deletion_is_unanswered(
    server: Running,
) -> None:
    document = _ctwa_example()
    original = document["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert await server.post(document) == 200
    await eventually(lambda: any("“Chat with us”" in b for b in _bodies(server)))
    async with server.db.read() as session:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == LEAD))
    assert contact is not None and contact.referral is not None
    assert contact.referral["ctwa_clid"].startswith("Aff-n8ZTODiE79d22KtAwQKj9e")
    assert contact.referral["welcome_message"] == "Hi there! Let us know how we can help!"
    assert contact.referred_at is not None

    assert await server.post(_revoke("wamid.REVOKE1", original)) == 200

    async def revoke_done() -> InboundMessage | None:
        return await _processed(server, "wamid.REVOKE1")

    await eventually(revoke_done)
    row = await revoke_done()
    assert row is not None
    async with server.db.read() as session:
        answers = (
            await session.scalars(
                select(OutboundMessage).where(
                    OutboundMessage.inbound_id == row.id, OutboundMessage.kind != MARK_READ
                )
            )
        ).all()
    # Replies are written in the transaction that marks the message done: none is coming.
    assert answers == []
