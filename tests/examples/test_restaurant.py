"""Conversation tests of the restaurant example bot (examples/restaurant).

Every test runs on SQLite and on PostgreSQL, in a database migrated with the framework's
branch and the restaurant's (tests/examples/conftest.py).
The clock is fixed on Tuesday 2 April 2030, 09:00 in Harare, so dates and sittings are
predictable.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from examples.restaurant.app import app
from examples.restaurant.models import Reservation, ReservationStatus
from flows import Flow, load_flow_text
from flows.testing import ChatFactory, ChatTester, Clock
from storage import Contact, GoalEvent, SessionOutcome, SessionStatus

ROOT = Path(__file__).resolve().parents[2]

START = dt.datetime(2030, 4, 2, 7, 0, tzinfo=dt.UTC)  # Tuesday 09:00 in Harare
REFERENCE = re.compile(r"\*(MG-[A-Z2-9]{6})\*")


# helpers ------------------------------------------------------------------------------


async def open_chat(nyala_chat: ChatFactory, phone: str = "263770000001") -> ChatTester:
    return await nyala_chat(app, phone=phone, clock=Clock(START))


async def attributes(chat: ChatTester) -> dict[str, Any]:
    async with chat.engine.db.read() as session:
        contact = await session.scalar(select(Contact).where(Contact.wa_id == chat.phone))
        assert contact is not None
        return dict(contact.attributes)


async def reservations(chat: ChatTester) -> list[Reservation]:
    """The contact's reservations, oldest first."""
    async with chat.engine.db.read() as session:
        contact_id = await session.scalar(select(Contact.id).where(Contact.wa_id == chat.phone))
        rows = await session.scalars(
            select(Reservation)
            .where(Reservation.contact_id == contact_id)
            .order_by(Reservation.id)
        )
        return list(rows)


async def last_session_steps(chat: ChatTester) -> list[tuple[str, str]]:
    """The step events of the contact's latest flow session."""
    latest = (await chat.sessions())[-1].id
    return [(e.step_name, e.action.value) for e in await chat.events() if e.session_id == latest]


async def reach_review(
    chat: ChatTester,
    *,
    party: str = "4",
    day: str = "tomorrow",
    sitting: str = "19:30 Dinner",
    name: str | None = "rudo chikwanha",
    phone: str | None = "077 212 3456",
) -> None:
    """Answer the booking questions up to the review (``None``: expect the step skipped)."""
    await chat.send("book")
    assert chat.last_text.startswith("How many people")
    await chat.send(party)
    await chat.send(day)
    await chat.send(tap=sitting)
    if name is not None:
        assert chat.last_text == "What name should the booking be under?"
        await chat.send(name)
    await chat.send(tap="Phone call")
    if phone is not None:
        assert chat.last_text.startswith("Which number should we call?")
        await chat.send(phone)
    assert chat.last_text.startswith("Any special requests")
    await chat.send("none")
    assert chat.last_text.startswith("Please check your booking:")


# a complete booking -------------------------------------------------------------------


async def test_complete_booking(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)

    await chat.send("hi")
    assert chat.options == ["Book a table", "Rate your visit", "Opening hours"]

    await chat.send(tap="Book a table")
    assert chat.texts == ["How many people is the table for? (1 to 12)"]

    await chat.send("4")
    assert chat.last_text.startswith("Which day would you like to come?")

    await chat.send("tomorrow")
    assert chat.last_text == "Which sitting on Wednesday 3 April would you like?"
    assert chat.options == ["12:00 Lunch", "13:30 Lunch", "18:00 Dinner", "19:30 Dinner"]

    await chat.send(tap="19:30 Dinner")
    assert chat.last_text == "What name should the booking be under?"

    await chat.send("rudo chikwanha")
    assert chat.last_text == "How should we reach you if something changes?"
    assert chat.options == ["Phone call", "E-mail"]

    await chat.send(tap="Phone call")
    await chat.send("077 212 3456")
    assert chat.last_text.startswith("Any special requests")

    await chat.send("A high chair, please")
    assert chat.last_text == (
        "Please check your booking:\n"
        "• 4 people, Wednesday 3 April at 19:30\n"
        "• Name: Rudo Chikwanha\n"
        "• Phone: +263772123456\n"
        "• Requests: A high chair, please"
    )
    assert chat.options == ["Confirm booking", "Change time", "Cancel booking"]

    await chat.send(tap="Confirm booking")
    assert chat.texts[0].startswith("You're booked, Rudo! Your reference is *MG-")
    assert chat.texts[1] == (
        "We look forward to seeing you on Wednesday 3 April at 19:30. "
        "Type *menu* for anything else."
    )

    assert await chat.steps() == [
        ("party_size", "entered"),
        ("party_size", "completed"),
        ("booking_date", "entered"),
        ("booking_date", "completed"),
        ("time_slot", "entered"),
        ("time_slot", "completed"),
        ("guest_name", "entered"),
        ("guest_name", "completed"),
        ("contact_method", "entered"),
        ("contact_method", "completed"),
        ("phone_number", "entered"),
        ("phone_number", "completed"),
        ("requests", "entered"),
        ("requests", "completed"),
        ("review", "entered"),
        ("review", "completed"),
        ("confirmed", "entered"),
    ]
    events = await chat.events()
    assert (events[1].input_value, events[1].output_value) == ("4", "4")  # party_size completed
    assert events[5].output_value == "19:30 Dinner"  # time_slot completed: the row's title

    (session,) = await chat.sessions()
    assert session.status is SessionStatus.COMPLETED
    assert session.context_data["booking_date"] == "2030-04-03"

    match = REFERENCE.search(chat.texts[0])
    assert match is not None
    remembered = await attributes(chat)
    assert remembered["name"] == "Rudo Chikwanha"
    assert remembered["phone"] == "+263772123456"
    assert "reservations" not in remembered  # they have their own table now
    (reservation,) = await reservations(chat)
    assert (
        reservation.reference,
        reservation.table_code,  # the smallest table for four
        reservation.day,
        reservation.sitting,
        reservation.party_size,
        reservation.guest_name,
        reservation.phone,
        reservation.email,
        reservation.set_menu,
        reservation.requests,
        reservation.status,
        reservation.created_at,
    ) == (
        match.group(1),
        "T3",
        dt.date(2030, 4, 3),
        "19:30",
        4,
        "Rudo Chikwanha",
        "+263772123456",
        None,
        False,
        "A high chair, please",
        ReservationStatus.CONFIRMED,
        START,
    )
    async with chat.engine.db.read() as db_session:
        goal = await db_session.scalar(select(GoalEvent))
    assert goal is not None
    assert (goal.goal, goal.session_id, goal.reference) == ("reservation", session.id, match[1])


async def test_booking_by_email_and_cancelling(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("reserve a table")
    await chat.send("2")
    await chat.send("05/04/2030")
    assert chat.last_text == "Which sitting on Friday 5 April would you like?"
    await chat.send("1")  # typed number of the first row
    await chat.send("Chipo")
    await chat.send(tap="E-mail")
    assert chat.last_text == "Which e-mail address should we use?"
    await chat.send("chipo@example.com")
    await chat.send("no")
    assert "• E-mail: chipo@example.com" in chat.last_text
    assert "12:00" in chat.last_text

    await chat.send(tap="Cancel booking")
    assert chat.texts == [
        "No problem, I haven't booked anything. Type *book* whenever you're ready."
    ]
    steps = await chat.steps()
    assert ("phone_number", "entered") not in steps  # the 'on:' branch went to email_address
    assert steps[-2:] == [("review", "completed"), ("cancelled", "entered")]
    assert await reservations(chat) == []


# invalid answers ----------------------------------------------------------------------


async def test_invalid_answers_are_counted_retries(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("book")

    await chat.send("a lot of us")
    assert chat.texts == [
        "“a lot of us” isn't a number I understand. "
        "Please send a whole number between 1 and 12, for example 1.",
        "How many people is the table for? (1 to 12)",
    ]
    await chat.send("20")
    assert chat.texts[0].startswith("Sorry, 20 is more than the 12 available.")

    await chat.send("three")
    assert chat.last_text.startswith("Which day would you like to come?")

    await chat.send("01/03/2030")  # in the past
    assert chat.texts[0] == "Please choose a date from 02 Apr 2030 onwards."

    assert await chat.steps() == [
        ("party_size", "entered"),
        ("party_size", "retry"),
        ("party_size", "retry"),
        ("party_size", "completed"),
        ("booking_date", "entered"),
        ("booking_date", "retry"),
    ]
    events = await chat.events()
    assert [e.retry_count for e in events[:4]] == [0, 1, 2, 2]
    assert events[1].input_value == "a lot of us"
    assert events[1].error_message is not None
    assert events[3].output_value == "3"
    assert (await chat.conversation()).retry_count == 1  # at booking_date


async def test_third_invalid_answer_offers_a_person(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("book")
    for answer in ("many", "lots", "plenty"):
        await chat.send(answer)
    assert chat.options == ["Talk to a person", "Try again", "Main menu"]

    await chat.send(tap="Try again")
    assert chat.texts == ["How many people is the table for? (1 to 12)"]


# skipped steps ----------------------------------------------------------------------


async def test_returning_guest_is_not_asked_name_or_number(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await reach_review(chat)
    await chat.send(tap="Confirm booking")

    await reach_review(chat, party="2", day="04/04/2030", sitting="12:00 Lunch", name=None,
                       phone=None)  # fmt: skip
    assert "• Name: Rudo Chikwanha" in chat.last_text
    assert "• Phone: +263772123456" in chat.last_text
    await chat.send(tap="Confirm booking")
    assert chat.texts[0].startswith("You're booked, Rudo!")

    steps = await last_session_steps(chat)
    assert steps[6:12] == [
        ("guest_name", "entered"),
        ("guest_name", "skipped"),
        ("contact_method", "entered"),
        ("contact_method", "completed"),
        ("phone_number", "entered"),
        ("phone_number", "skipped"),
    ]
    skipped = [e for e in await chat.events() if e.action.value == "skipped"]
    assert all(e.input_value is None and e.time_spent is None for e in skipped)
    assert [r.day for r in await reservations(chat)] == [dt.date(2030, 4, 3), dt.date(2030, 4, 4)]


# business rules: ActionError ---------------------------------------------------------


async def test_closed_day_is_a_business_rule_retry(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("book")
    await chat.send("2")

    await chat.send("08/04/2030")  # a Monday
    assert chat.texts == [
        "Sorry, we're closed on Mondays. Which other day would suit you?",
        "Which day would you like to come? Send a date like 24/12, or *today* or *tomorrow*.",
    ]
    await chat.send("07/04/2030")  # Sunday: lunch only
    assert chat.options == ["12:00 Lunch", "13:30 Lunch"]

    assert await chat.steps() == [
        ("party_size", "entered"),
        ("party_size", "completed"),
        ("booking_date", "entered"),
        ("booking_date", "retry"),
        ("booking_date", "completed"),
        ("time_slot", "entered"),
    ]
    conversation = await chat.conversation()
    assert conversation.data["booking_date"] == "2030-04-07"


def taken(day: dt.date, sitting: str, *tables: str) -> list[Reservation]:
    """Reservations of other guests holding ``tables`` at one sitting."""
    return [
        Reservation(
            reference=f"MG-T{day:%d}{sitting[:2]}{code}",
            table_code=code,
            day=day,
            sitting=sitting,
            party_size=2,
            guest_name="Someone else",
        )
        for code in tables
    ]


WEDNESDAY = dt.date(2030, 4, 3)


async def test_last_table_taken_is_a_business_rule_retry(nyala_chat: ChatFactory) -> None:
    ana = await open_chat(nyala_chat, phone="263770000001")
    ben = await open_chat(nyala_chat, phone="263770000002")
    async with ana.engine.db.transaction() as session:  # only T5 (6) and T6 (12) are left
        session.add_all(taken(WEDNESDAY, "19:30", "T1", "T2", "T3", "T4"))
        session.add_all(taken(WEDNESDAY, "13:30", "T5", "T6"))

    await reach_review(ana, party="5", name="Ana Moyo", phone="0772000001")
    # Meanwhile Ben, a party of six, takes T5 and then the long table goes too.
    await reach_review(ben, party="6", name="Ben Dube", phone="0772000002")
    await ben.send(tap="Confirm booking")
    assert ben.texts[0].startswith("You're booked, Ben!")
    async with ana.engine.db.transaction() as session:
        session.add_all(taken(WEDNESDAY, "19:30", "T6"))

    await ana.send(tap="Confirm booking")
    assert ana.texts[0] == (
        "Sorry, the last table for 5 at 19:30 on Wednesday 3 April has just been taken. "
        "Still free that day: 12:00, 18:00. Tap *Change time* to pick one."
    )
    assert ana.last_text.startswith("Please check your booking:")
    assert await reservations(ana) == []  # the attempt left nothing behind

    await ana.send(tap="Change time")
    assert ana.options == ["12:00 Lunch", "18:00 Dinner"]  # 13:30 has no table for five
    await ana.send(tap="18:00 Dinner")
    assert "• 5 people, Wednesday 3 April at 18:00" in ana.last_text  # straight back to review
    await ana.send(tap="Confirm booking")
    assert ana.texts[0].startswith("You're booked, Ana!")

    steps = await ana.steps()
    assert steps[14:] == [
        ("review", "entered"),
        ("review", "retry"),
        ("review", "completed"),
        ("time_slot", "entered"),
        ("time_slot", "completed"),
        ("review", "entered"),
        ("review", "completed"),
        ("confirmed", "entered"),
    ]
    retry = [e for e in await ana.events() if e.action.value == "retry"]
    assert retry[0].error_message is not None
    assert "has just been taken" in retry[0].error_message
    assert [(r.sitting, r.table_code) for r in await reservations(ana)] == [("18:00", "T5")]
    assert [(r.sitting, r.table_code) for r in await reservations(ben)] == [("19:30", "T5")]


async def test_fully_booked_day_ends_the_flow(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    sunday = dt.date(2030, 4, 7)
    async with chat.engine.db.transaction() as session:
        for sitting in ("12:00", "13:30"):
            session.add_all(taken(sunday, sitting, "T1", "T2", "T3", "T4", "T5", "T6"))

    await chat.send("book")
    await chat.send("2")
    await chat.send("07/04/2030")
    assert chat.texts == ["Sorry, we're fully booked that day. Type *book* to try another day."]
    (session_row,) = await chat.sessions()
    # Nothing to choose from is not the customer giving up (issue 16.6): the session
    # completed with the outcome "nothing to do", outside the completion rate's goal.
    assert session_row.status is SessionStatus.COMPLETED
    assert session_row.outcome == SessionOutcome.NOTHING_TO_DO
    assert (await chat.conversation()).flow_name is None


async def test_a_cancelled_reservation_frees_its_table(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    sunday = dt.date(2030, 4, 7)
    async with chat.engine.db.transaction() as session:
        session.add_all(taken(sunday, "12:00", "T1", "T2", "T3", "T4", "T5", "T6"))
        session.add_all(taken(sunday, "13:30", "T1", "T2", "T3", "T4", "T5", "T6"))
    async with chat.engine.db.transaction() as session:
        freed = await session.scalar(
            select(Reservation).where(
                Reservation.table_code == "T2", Reservation.sitting == "13:30"
            )
        )
        assert freed is not None
        freed.cancel(START)

    await chat.send("book")
    await chat.send("2")
    await chat.send("07/04/2030")
    assert chat.options == ["13:30 Lunch"]
    await chat.send(tap="13:30 Lunch")
    await chat.send("Rudo")
    await chat.send(tap="Phone call")
    await chat.send("0772123456")
    await chat.send("none")
    await chat.send(tap="Confirm booking")
    assert chat.texts[0].startswith("You're booked, Rudo!")
    assert [r.table_code for r in await reservations(chat)] == ["T2"]


# if / unless branches ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reply"),
    [
        ("Yes, sounds good", "Which day would you like to come?"),
        ("No thanks", "Understood. Please call us on +263 242 123 456"),
    ],
)
async def test_large_party_and_the_set_menu(
    nyala_chat: ChatFactory, answer: str, reply: str
) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("book")
    await chat.send("8")
    assert chat.options == ["Yes, sounds good", "No thanks"]
    await chat.send(tap=answer)
    assert chat.texts[0].startswith(reply)
    if answer == "No thanks":
        assert chat.texts[0].endswith("for a group of 8.")
    steps = await chat.steps()
    assert steps[2:4] == [("set_menu", "entered"), ("set_menu", "completed")]


# the flow written in Python --------------------------------------------------------------


async def test_feedback_flow_asks_why_after_a_low_rating(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("hi")
    await chat.send(tap="Rate your visit")
    assert chat.last_text == "How was your meal, Test? Pick a rating."
    assert chat.options[0] == "★ Poor"

    await chat.send("2")  # typed: the second row
    assert chat.texts == ["Sorry it wasn't better. What should we improve?"]
    await chat.send("ok")
    assert chat.texts[0] == "Please write at least 3 characters."
    await chat.send("The chips were cold")
    assert chat.texts == ["Thank you for your feedback, Test! 🙏"]

    assert await chat.steps("feedback") == [
        ("awaiting_rating", "entered"),
        ("awaiting_rating", "completed"),
        ("awaiting_comment", "entered"),
        ("awaiting_comment", "retry"),
        ("awaiting_comment", "completed"),
        ("thanked", "entered"),
    ]
    feedback = (await attributes(chat))["feedback"]
    assert feedback == [{"rating": 2, "at": START.isoformat(), "comment": "The chips were cold"}]


async def test_feedback_flow_thanks_after_a_high_rating(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("rate us")
    await chat.send(tap="★★★★★ Excellent")
    assert chat.texts == ["Thank you for your feedback, Test! 🙏"]
    assert await chat.steps() == [
        ("awaiting_rating", "entered"),
        ("awaiting_rating", "completed"),
        ("thanked", "entered"),
    ]
    (session,) = await chat.sessions()
    assert session.flow_name == "feedback"
    assert session.status is SessionStatus.COMPLETED
    assert (await attributes(chat))["feedback"][0]["rating"] == 5


# app-level intents -----------------------------------------------------------------------


async def test_opening_hours_intent(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("Opening hours?")
    assert chat.texts == [
        "Our opening hours:\n"
        "• Tuesday to Saturday: lunch 12:00-15:00, dinner 18:00-22:00\n"
        "• Sunday: lunch 12:00-15:00\n"
        "• Monday: closed"
    ]

    # In the middle of a booking it answers and the booking stays where it was.
    await chat.send("book")
    await chat.send("are you open")
    assert chat.texts[0].startswith("Our opening hours:")
    assert chat.last_text == "How many people is the table for? (1 to 12)"  # asked again
    conversation = await chat.conversation()
    assert (conversation.flow_name, conversation.state) == ("table_booking", "party_size")
    await chat.send("2")
    assert chat.last_text.startswith("Which day would you like to come?")
    assert await chat.steps() == [
        ("party_size", "entered"),
        ("party_size", "completed"),
        ("booking_date", "entered"),
    ]


async def test_directions_intent_and_help(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("directions")
    assert chat.texts == ["Msasa Grill"]  # a location pin

    await chat.send("help")
    assert "• *opening hours*: our opening hours" in chat.last_text
    assert "• *where are you*: how to find us" in chat.last_text
    assert "• *book*: Reserve a table for lunch or dinner" in chat.last_text


# the app and its flow files ------------------------------------------------------------


def test_app_checks_and_lists_its_flows() -> None:
    app.check()
    assert sorted(app.flows) == ["feedback", "table_booking"]
    assert issubclass(app.flow("feedback").machine, Flow)
    assert app.flow("table_booking").timeout == dt.timedelta(minutes=20)


def _docs_yaml_blocks() -> list[str]:
    text = (ROOT / "docs" / "flows.md").read_text(encoding="utf-8")
    return re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)


def test_flow_snippets_in_the_docs_compile() -> None:
    """Every flow in docs/flows.md compiles against the restaurant's registered names:
    complete files (``flow:``) and step snippets (``steps:``)."""
    compiled = 0
    for block in _docs_yaml_blocks():
        yaml.safe_load(block)  # every block is valid YAML
        flow = "flow: snippet\n" + block if block.startswith("steps:") else block
        if flow.startswith("flow:") or "\nflow:" in flow:
            load_flow_text(flow, app.registry, path="docs/flows.md")
            compiled += 1
    assert compiled >= 6


def test_the_docs_show_the_flow_file_as_it_is() -> None:
    flow_file = ROOT / "examples" / "restaurant" / "flows" / "table_booking.yaml"
    docs = (ROOT / "docs" / "flows.md").read_text(encoding="utf-8")
    assert f"```yaml\n{flow_file.read_text(encoding='utf-8')}```" in docs


async def test_core_weekday_names_are_the_next_such_day(nyala_chat: ChatFactory) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("book")
    await chat.send("2")
    await chat.send("monday")  # 8 April; today it is accepted as 1 April 2031, a Tuesday
    assert chat.texts[0] == "Sorry, we're closed on Mondays. Which other day would suit you?"
