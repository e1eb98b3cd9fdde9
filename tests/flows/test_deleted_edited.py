"""Deleted and edited messages in the engine, on both backends (see flows/edits.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from flows import App, UserMessage
from flows.messages import Media, Text, reply_text
from flows.testing import ChatFactory, ChatTester
from storage import FlowStepEvent, InboundMessage, InboundStatus, OutboundMessage
from tests.cafe import build_app

RESEND = (
    "I saw you edited a message, but I can't use the change. "
    "Please send it again as a new message."
)


def text(wamid: str, body: str) -> UserMessage:
    return UserMessage(id=wamid, kind="text", text=body)


def revoke(wamid: str, of: str | None) -> UserMessage:
    return UserMessage(id=wamid, kind="revoke", refers_to=of)


def edit(wamid: str, of: str | None, body: str | None = None) -> UserMessage:
    return UserMessage(id=wamid, kind="edit", refers_to=of, text=body)


async def receive(chat: ChatTester, *messages: UserMessage) -> int:
    """Store messages without processing them (as a webhook batch does)."""
    contact_id = 0
    for message in messages:
        contact_id = (await chat.engine.receive(chat.contact, message)).contact_id
    return contact_id


async def inbound(chat: ChatTester, wamid: str) -> InboundMessage:
    async with chat.engine.db.read() as session:
        row = await session.scalar(
            select(InboundMessage).where(InboundMessage.wa_message_id == wamid)
        )
    assert row is not None
    return row


async def replies_to(chat: ChatTester, wamid: str) -> int:
    row = await inbound(chat, wamid)
    async with chat.engine.db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.inbound_id == row.id)
        )
    return int(count or 0)


async def step_events(chat: ChatTester) -> int:
    async with chat.engine.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(FlowStepEvent)) or 0)


async def test_a_deleted_message_gets_no_reply(cafe: App, nyala_chat: ChatFactory) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("order", message_id="wamid.order")
    assert chat.last_text == "Your name?"
    events = await step_events(chat)
    replies = await chat.engine.handle(chat.contact, revoke("wamid.del", "wamid.order"))
    assert replies == []
    row = await inbound(chat, "wamid.del")
    assert row.status is InboundStatus.DONE and row.processed_at is not None
    assert await replies_to(chat, "wamid.del") == 0
    assert await step_events(chat) == events  # analytics untouched
    conversation = await chat.conversation()
    assert (conversation.flow_name, conversation.state) == ("order_flow", "ask_name")
    # The conversation goes on where it was.
    await chat.send("Ada Lovelace")
    assert chat.last_text == "Which size, Ada Lovelace?"


async def test_a_deletion_whatsapp_names_nothing_for_is_quiet_too(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    assert await chat.engine.handle(chat.contact, revoke("wamid.del", None)) == []
    assert (await inbound(chat, "wamid.del")).status is InboundStatus.DONE
    assert await replies_to(chat, "wamid.del") == 0


async def test_a_message_deleted_before_it_was_processed_is_never_processed(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    contact_id = await receive(
        chat, text("wamid.a", "order"), revoke("wamid.del", "wamid.a"), text("wamid.b", "hi")
    )
    replies = await chat.engine.process_pending(contact_id)
    # Only "hi" is answered (the menu); "order" was taken back, so no flow started.
    assert await replies_to(chat, "wamid.a") == 0
    assert await replies_to(chat, "wamid.del") == 0
    assert await replies_to(chat, "wamid.b") == len(replies) > 0
    for wamid in ("wamid.a", "wamid.del", "wamid.b"):
        assert (await inbound(chat, wamid)).status is InboundStatus.DONE
    assert await chat.sessions() == []
    assert (await chat.conversation()).flow_name is None


async def test_an_edit_of_a_waiting_message_is_answered_instead_of_it(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("order")
    contact_id = await receive(
        chat,
        text("wamid.name", "Ada Lovelase"),
        edit("wamid.e1", "wamid.name", "Ada Lovelacee"),
        edit("wamid.e2", "wamid.name", "Ada Lovelace"),
    )
    replies = await chat.engine.process_pending(contact_id)
    # One answer, to what the user now means.
    assert [reply_text(r) for r in replies] == ["Which size, Ada Lovelace?"]
    name = await inbound(chat, "wamid.name")
    assert name.payload["text"] == "Ada Lovelace"
    assert name.payload["edited_from"] == "Ada Lovelase"
    for wamid in ("wamid.e1", "wamid.e2"):
        assert (await inbound(chat, wamid)).status is InboundStatus.DONE
        assert await replies_to(chat, wamid) == 0
    events = await chat.events()
    assert events[1].input_value == "Ada Lovelace"


async def test_an_edited_caption_of_a_waiting_file_replaces_its_caption(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    photo = UserMessage(
        id="wamid.photo",
        kind="image",
        text="old",
        media=Media(id="m1", mime_type="image/jpeg", caption="old"),
    )
    contact_id = await receive(chat, photo, edit("wamid.e1", "wamid.photo", "new caption"))
    await chat.engine.process_pending(contact_id)
    stored = UserMessage.from_payload((await inbound(chat, "wamid.photo")).payload)
    assert stored.kind == "image"
    assert stored.text == "new caption"
    assert stored.media is not None and stored.media.caption == "new caption"
    assert stored.media.id == "m1"


async def test_an_edit_of_an_answered_message_is_the_next_answer(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("rate")
    await chat.send("6", message_id="wamid.six")
    assert chat.last_text == "Rate us from 1 to 5"  # refused, asked again
    replies = await chat.engine.handle(chat.contact, edit("wamid.e", "wamid.six", "5"))
    assert [reply_text(r) for r in replies] == ["Thanks for rating us 5!"]
    assert (await chat.sessions())[-1].status.value == "completed"
    assert (await chat.events())[-2].input_value == "5"


async def test_an_edit_without_content_asks_once_to_send_it_again(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("order")
    first = await chat.engine.handle(chat.contact, edit("wamid.e1", None))
    assert first == [Text(RESEND)]
    # Edited again (and again): no second notice, no menu, the flow waits as it was.
    assert await chat.engine.handle(chat.contact, edit("wamid.e2", None)) == []
    assert await chat.engine.handle(chat.contact, edit("wamid.e3", None)) == []
    conversation = await chat.conversation()
    assert (conversation.flow_name, conversation.state) == ("order_flow", "ask_name")
    await chat.send("Ada Lovelace")
    assert chat.last_text == "Which size, Ada Lovelace?"
    # After anything else the notice may come again.
    assert await chat.engine.handle(chat.contact, edit("wamid.e4", None)) == [Text(RESEND)]


async def test_an_edited_caption_of_an_answered_file_asks_to_send_it_again(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    caption_edit = UserMessage(
        id="wamid.e",
        kind="edit",
        refers_to="wamid.old-photo",
        text="new",
        media=Media(id="m", mime_type="image/jpeg", caption="new"),
    )
    assert await chat.engine.handle(chat.contact, caption_edit) == [Text(RESEND)]


async def test_the_notice_is_the_apps_copy(tmp_path: Path, nyala_chat: ChatFactory) -> None:
    app = build_app(tmp_path / "flows", copy={"edit.resend": "Edits don't reach me, sorry!"})
    chat = await nyala_chat(app)
    assert await chat.engine.handle(chat.contact, edit("wamid.e", None)) == [
        Text("Edits don't reach me, sorry!")
    ]


async def test_a_person_handling_the_chat_means_the_bot_stays_quiet(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("agent", message_id="wamid.agent")
    assert await chat.engine.handle(chat.contact, edit("wamid.e", None)) == []
    assert await chat.engine.handle(chat.contact, edit("wamid.e2", "wamid.agent", "hi")) == []
    assert await chat.engine.handle(chat.contact, revoke("wamid.d", "wamid.agent")) == []
    for wamid in ("wamid.e", "wamid.e2", "wamid.d"):
        assert (await inbound(chat, wamid)).status is InboundStatus.DONE


async def test_edits_are_applied_per_contact_within_one_batch(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    """The batch looks for edits once for all its contacts: each turn gets its own."""
    ada = await nyala_chat(cafe, phone="263770000001")
    grace = await nyala_chat(cafe, phone="263770000002")
    await ada.send("order")
    await grace.send("order")
    ada_id = await receive(
        ada,
        text("wamid.ada", "Ada Lovelase"),
        edit("wamid.ada.edit", "wamid.ada", "Ada Lovelace"),
    )
    grace_id = await receive(
        grace,
        text("wamid.grace", "Grace Hopper"),
        edit("wamid.grace.edit", "wamid.ada", "not hers to edit"),
        text("wamid.grace.next", "large"),
    )
    batch = await ada.engine.process_batch([ada_id, grace_id], wait=True)
    assert {cid: [reply_text(r) for r in replies] for cid, replies in batch.replies.items()} == {
        ada_id: ["Which size, Ada Lovelace?"],
        grace_id: ["Which size, Grace Hopper?"],
    }
    assert (await inbound(ada, "wamid.ada.edit")).status is InboundStatus.DONE
    # Grace's "edit" names Ada's message: it is not Grace's amendment and still waits.
    assert (await inbound(grace, "wamid.grace.edit")).status is InboundStatus.PENDING
    assert (await inbound(grace, "wamid.grace.next")).status is InboundStatus.PENDING
    assert await ada.engine.process_pending(ada_id) == []  # the edit was used up
