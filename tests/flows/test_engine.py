"""The engine end to end on both backends, through the conversation harness."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from flows import App, ContactRef, Engine, UserMessage, release_handoff
from flows.testing import ChatFactory, Clock
from storage import (
    Contact,
    Database,
    FlowSession,
    FlowStepEvent,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
    SessionStatus,
)
from tests.cafe import ORDER_FLOW


async def order_until_confirm(chat: object) -> None:
    await chat.send("order")  # type: ignore[attr-defined]
    await chat.send("Ada Lovelace")  # type: ignore[attr-defined]
    await chat.send(tap="Large")  # type: ignore[attr-defined]
    await chat.send("2")  # type: ignore[attr-defined]


async def test_a_whole_flow_is_tracked_step_by_step(cafe: App, nyala_chat: ChatFactory) -> None:
    clock = Clock()
    chat = await nyala_chat(cafe, clock=clock)
    await chat.send("order")
    assert chat.last_text == "Your name?"
    clock.advance(seconds=12)
    await chat.send("ada lovelace")
    assert chat.last_text == "Which size, Ada Lovelace?"
    assert chat.options == ["Small", "Large"]
    clock.advance(seconds=3)
    await chat.send(tap="Large")
    await chat.send("2")
    assert chat.last_text == "2 large for Ada Lovelace. Confirm?"
    await chat.send(tap="Confirm")
    assert chat.texts == ["☕ Brewing now.", "Order placed, Ada Lovelace!"]

    assert await chat.steps() == [
        ("ask_name", "entered"), ("ask_name", "completed"),
        ("ask_size", "entered"), ("ask_size", "completed"),
        ("ask_count", "entered"), ("ask_count", "completed"),
        ("confirm", "entered"), ("confirm", "completed"),
        ("done", "entered"),
    ]  # fmt: skip
    events = await chat.events()
    name_done = events[1]
    assert name_done.time_spent == 12.0
    assert (name_done.input_value, name_done.output_value) == ("ada lovelace", "Ada Lovelace")
    assert events[3].time_spent == 3.0
    assert events[3].output_value == "Large"
    [session] = await chat.sessions()
    assert session.status is SessionStatus.COMPLETED
    assert session.flow_name == "order_flow"
    assert session.flow_version == cafe.flow("order_flow").version
    assert session.duration_seconds == 15.0
    assert session.context_data == {"name": "Ada Lovelace", "size": "large", "count": 2}
    conversation = await chat.conversation()
    assert conversation.flow_name is None and conversation.state is None


async def test_known_data_skips_the_step(cafe: App, nyala_chat: ChatFactory) -> None:
    chat = await nyala_chat(cafe)
    await order_until_confirm(chat)
    await chat.send(tap="Confirm")
    await chat.send("coffee")
    assert chat.last_text.startswith("Which size")
    second = await chat.sessions()
    assert len(second) == 2
    steps = await chat.steps()
    assert steps[9:] == [("ask_name", "entered"), ("ask_name", "skipped"), ("ask_size", "entered")]
    skipped = (await chat.events())[10]
    assert (skipped.time_spent, skipped.input_value) == (None, None)


async def test_invalid_answers_are_counted_retries_then_a_person_is_offered(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("order")
    await chat.send("Ada")
    await chat.send(tap="Small")
    await chat.send("lots")
    assert chat.texts[0].startswith("“lots” isn't a number")
    assert chat.last_text == "How many?"
    await chat.send("9")
    assert "more than the 5 available" in chat.texts[0]
    await chat.send("🙂 pls")
    assert chat.options == ["Talk to a person", "Try again", "Main menu"]
    retries = [e for e in await chat.events() if e.action == "retry"]
    assert [(e.step_name, e.retry_count, e.input_value) for e in retries] == [
        ("ask_count", 1, "lots"), ("ask_count", 2, "9"), ("ask_count", 3, "🙂 pls"),
    ]  # fmt: skip
    assert retries[0].error_message is not None
    await chat.send(tap="Try again")
    assert chat.last_text == "How many?"
    await chat.send("3")
    completed = (await chat.events())[-2]
    assert (completed.step_name, completed.action, completed.retry_count) == (
        "ask_count", "completed", 3,
    )  # fmt: skip


async def test_talking_to_a_person_hands_off_until_released(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("order")
    await chat.send("human")
    assert "member of our team" in chat.last_text
    await chat.send("hello?")
    assert chat.replies == []  # the bot stays quiet while a person has the conversation
    [session] = await chat.sessions()
    assert session.status is SessionStatus.ABANDONED
    assert session.ended_reason is not None and "person" in session.ended_reason
    contact_id = (await chat.conversation()).contact_id
    assert await release_handoff(nyala_db, contact_id)
    await chat.send("hello")
    assert chat.options[0] == "Order coffee"


async def test_global_intents_work_from_anywhere(cafe: App, nyala_chat: ChatFactory) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("coffee")
    await chat.send("help")
    assert "You can type these at any time" in chat.texts[0]
    assert chat.last_text == "Your name?"  # help keeps the flow and asks again
    await chat.send("CANCEL!")
    assert "stopped" in chat.last_text
    await chat.send("rate")
    await chat.send("menu")
    assert chat.options == ["Order coffee"]
    sessions = await chat.sessions()
    assert [(s.flow_name, s.status, s.ended_reason) for s in sessions] == [
        ("order_flow", SessionStatus.ABANDONED, "cancelled by the user"),
        ("rating_flow", SessionStatus.ABANDONED, "left for the main menu"),
    ]


async def test_unknown_and_unsupported_input_get_helpful_answers(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("what's the wifi password")
    assert chat.texts[0].startswith("Sorry, I didn't quite get that")
    assert chat.options == ["Order coffee"]
    await chat.send(kind="sticker")
    assert chat.replies and "can't do anything with that kind of message" in chat.texts[0]
    await chat.send("order")
    await chat.send(kind="sticker")
    assert "sticker" in chat.texts[0]
    assert chat.last_text == "Your name?"
    await chat.send(kind="reaction", emoji="👍")
    assert chat.texts == ["Thanks 👍!", "Your name?"]
    assert [a for _, a in await chat.steps()].count("retry") == 1  # the reaction is no retry


async def test_python_class_flows_run_and_are_tracked(cafe: App, nyala_chat: ChatFactory) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("rate")
    assert chat.last_text == "Rate us from 1 to 5"
    await chat.send("7")
    await chat.send("5")
    assert chat.last_text == "Thanks for rating us 5!"
    assert await chat.steps() == [
        ("awaiting_rating", "entered"), ("awaiting_rating", "retry"),
        ("awaiting_rating", "completed"), ("thanked", "entered"),
    ]  # fmt: skip


async def test_a_failing_action_leaves_no_half_written_state(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    chat = await nyala_chat(cafe)
    await order_until_confirm(chat)
    cafe.state["fail"] = "crash"  # type: ignore[attr-defined]
    await chat.send(tap="Confirm")
    assert "something went wrong" in chat.last_text
    [session] = await chat.sessions()
    assert session.status is SessionStatus.ERROR
    assert session.error_message == "RuntimeError: payment service exploded"
    steps = await chat.steps()
    assert steps[-1] == ("confirm", "error")
    assert ("confirm", "completed") not in steps and ("done", "entered") not in steps
    async with nyala_db.read() as s:
        contact = await s.scalar(select(Contact))
        inbound = (await s.scalars(select(InboundMessage).order_by(InboundMessage.id))).all()
    assert contact is not None and "orders" not in contact.attributes  # rolled back
    assert inbound[-1].status is InboundStatus.FAILED
    assert inbound[-1].error == "RuntimeError: payment service exploded"
    conversation = await chat.conversation()
    assert conversation.flow_name is None
    await chat.send("hi")
    assert chat.options == ["Order coffee"]


async def test_a_business_rule_refusal_is_a_retry_and_rolls_back(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    chat = await nyala_chat(cafe)
    await order_until_confirm(chat)
    cafe.state["fail"] = "sold_out"  # type: ignore[attr-defined]
    await chat.send(tap="Confirm")
    assert chat.texts[0] == "Sorry, we just sold out of that. Please choose again."
    assert chat.options == ["Confirm", "Cancel"]
    steps = await chat.steps()
    assert steps[-1] == ("confirm", "retry")
    assert ("confirm", "completed") not in steps
    async with nyala_db.read() as s:
        contact = await s.scalar(select(Contact))
    assert contact is not None and "orders" not in contact.attributes
    cafe.state["fail"] = None  # type: ignore[attr-defined]
    await chat.send(tap="Confirm")
    assert chat.last_text == "Order placed, Ada Lovelace!"


async def test_duplicate_messages_are_processed_once(
    cafe: App, nyala_chat: ChatFactory, nyala_db: Database
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("order", message_id="wamid.same")
    again = await chat.send("order", message_id="wamid.same")
    assert again == []
    assert await chat.steps() == [("ask_name", "entered")]
    async with nyala_db.read() as s:
        assert await s.scalar(select(func.count()).select_from(InboundMessage)) == 1
        assert await s.scalar(select(func.count()).select_from(FlowSession)) == 1


async def test_a_new_engine_continues_the_conversation(cafe: App, nyala_db: Database) -> None:
    contact = ContactRef(wa_id="263770000077")
    first = Engine(nyala_db, cafe)
    await first.handle(contact, UserMessage(id="m1", kind="text", text="order"))
    await first.handle(contact, UserMessage(id="m2", kind="text", text="Grace Hopper"))
    del first  # a restart: nothing survives but the database
    second = Engine(nyala_db, cafe)
    replies = await second.handle(
        contact, UserMessage(id="m3", kind="reply", reply_id="small", text="Small")
    )
    assert [getattr(r, "body", None) for r in replies] == ["How many?"]
    async with nyala_db.read() as s:
        events = (await s.scalars(select(FlowStepEvent).order_by(FlowStepEvent.id))).all()
    assert [(e.step_name, e.action) for e in events][-2:] == [
        ("ask_size", "completed"), ("ask_count", "entered"),
    ]  # fmt: skip
    assert sum(1 for e in events if e.action == "entered") == 3  # no entry re-run


async def test_replies_are_stored_as_outbound_rows(cafe: App, nyala_db: Database) -> None:
    sandbox = Engine(nyala_db, cafe, sandbox=True)
    live = Engine(nyala_db, cafe, sandbox=False)
    await sandbox.handle(ContactRef(wa_id="1111111"), UserMessage(id="a", kind="text", text="hi"))
    await live.handle(ContactRef(wa_id="2222222"), UserMessage(id="b", kind="text", text="hi"))
    async with nyala_db.read() as s:
        rows = (await s.scalars(select(OutboundMessage).order_by(OutboundMessage.id))).all()
    assert [(r.kind, r.status) for r in rows] == [
        ("list", OutboundStatus.SANDBOX), ("list", OutboundStatus.QUEUED),
    ]  # fmt: skip
    assert rows[1].payload["options"][0]["title"] == "Order coffee"


async def test_an_idle_session_times_out_on_the_next_message(
    cafe: App, nyala_chat: ChatFactory
) -> None:
    clock = Clock()
    chat = await nyala_chat(cafe, clock=clock)
    await chat.send("order")
    await chat.send("Ada")
    clock.advance(minutes=31)
    await chat.send("Small")
    assert chat.texts[0].startswith("It's been a while, so I closed")
    assert chat.options == ["Order coffee"]
    [session] = await chat.sessions()
    assert session.status is SessionStatus.ABANDONED
    assert session.current_step == "ask_size"  # where the user dropped off


async def test_a_changed_flow_restarts_politely(
    cafe: App, nyala_chat: ChatFactory, tmp_path: Path
) -> None:
    chat = await nyala_chat(cafe)
    await chat.send("order")
    await chat.send("Ada")
    assert (await chat.conversation()).state == "ask_size"
    flow_file = tmp_path / "flows" / "order_flow.yaml"
    flow_file.write_text(ORDER_FLOW.replace("ask_size", "choose_size") + "\n# v2\n")
    await chat.send("Small")
    assert chat.texts[0].startswith("We've just updated this conversation")
    sessions = await chat.sessions()
    assert sessions[0].status is SessionStatus.ABANDONED
    assert sessions[0].ended_reason is not None
    assert "'ask_size' no longer exists" in sessions[0].ended_reason
    assert sessions[1].status is SessionStatus.ACTIVE
    assert sessions[1].flow_version != sessions[0].flow_version
    assert (await chat.conversation()).state == "choose_size"  # name known: skipped
