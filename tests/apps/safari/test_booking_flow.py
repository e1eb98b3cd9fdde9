"""Conversation tests of booking_flow: choose a tour and a date, name the travellers, book.

Every test runs on SQLite and on PostgreSQL. The catalogue is built relative to today
(tests/safari/chat_helpers.py) and the clock stands at 09:00 today in Harare.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from decimal import Decimal

import pytest
from sqlalchemy import text, update

from analytics import get_flow_completion_rate
from apps.safari import operations
from apps.safari.common import long_date, short_date
from apps.safari.models import Booking, BookingStatus, Customer, Tour, Traveler
from flows.messages import ROW_DESCRIPTION_MAX
from flows.testing import ChatFactory, Clock
from storage import Database, GoalEvent, SessionStatus, get_or_create_contact
from tests.apps.safari.catalogue import add_tour
from tests.apps.safari.chat_helpers import (
    HARARE,
    PHONE,
    Catalogue,
    add_catalogue,
    all_rows,
    contact_and_customer,
    count,
    day,
    descriptions,
    open_chat,
    reach_review,
    seats_left,
    take_seats,
    tap_stale,
)

REFERENCE = re.compile(r"\*(SAF-[A-Z2-9]{6})\*")


@pytest.fixture
async def catalogue(db: Database) -> Catalogue:
    """Two tours with departures relative to today, one of them nearly full."""
    return await add_catalogue(db)


def summary(names: list[str], *, offset: int = 7, email: str = "rudo@example.com") -> str:
    total = Decimal("60.00") * len(names)
    return "\n".join(
        [
            "Please check your booking:",
            "• Tour: Victoria Falls guided tour",
            f"• Date: {long_date(day(offset))}, starting 08:00 at Falls entrance",
            f"• Travellers ({len(names)}): {', '.join(names)}",
            f"• E-mail: {email}",
            f"• Total: USD {total} ({len(names)} × USD 60.00)",
        ]
    )


async def test_a_new_customer_books_a_tour_from_the_menu(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("hi")
    assert chat.options == [
        "Book a tour",
        "My bookings & payments",
        "Upload IDs",
        "Update my details",
        "Talk to a person",
        "Plan a safari",
    ]

    await chat.send(tap="Book a tour")
    assert chat.texts == ["Which tour would you like to book? Prices are per person."]
    # A tour without a short name shows its name cut to WhatsApp's 24 characters; the
    # description always carries the whole name.
    assert chat.options == ["Hwange game drive", "Victoria Falls guided t…"]
    assert descriptions(chat) == [
        f"USD 150.00 pp · next {day(10).day} {day(10):%b} · Hwange game drive",
        f"USD 60.00 pp · next {day(1).day} {day(1):%b} · Victoria Falls guided tour",
    ]

    await chat.send(tap="falls")
    assert chat.texts == ["Which date would you like for the Victoria Falls guided tour?"]
    # Not yesterday, not today, not the full departure in 8 days.
    assert chat.options == [short_date(day(1)), short_date(day(7))]
    assert descriptions(chat) == ["2 seats left", "10 seats left"]

    await chat.send(tap=day(7).isoformat())
    assert chat.texts == [
        f"How many travellers, including you? (10 seats left on {long_date(day(7))})"
    ]
    await chat.send("3")
    assert chat.texts == ["What's your full name, as on your passport or ID? (Traveller 1 of 3)"]
    await chat.send("rudo chikwanha")
    assert chat.texts == ["What's the full name of traveller 2 of 3, as on their passport or ID?"]
    await chat.send("Ana Moyo")
    assert chat.last_text.startswith("What's the full name of traveller 3 of 3")
    await chat.send("Ben Dube")
    assert chat.texts == ["Which e-mail address should we send your booking confirmation to?"]
    await chat.send("rudo@example.com")
    assert chat.texts == [summary(["Rudo Chikwanha", "Ana Moyo", "Ben Dube"])]
    assert chat.options == ["Confirm booking", "Change booking", "Cancel"]

    await chat.send(tap="Confirm booking")
    match = REFERENCE.search(chat.last_text)
    assert match is not None
    reference = match.group(1)
    assert chat.texts == [
        f"🎉 You're booked! Your reference is *{reference}*. The total is USD 180.00. "
        "How would you like to pay?"
    ]
    assert chat.options == ["Omari mobile money", "Bank transfer", "Pay later"]

    await chat.send(tap="Pay later")
    assert chat.texts == [
        f"No problem! Your seats on {long_date(day(7))} are reserved under *{reference}*. "
        "Type *pay* whenever you're ready to pay the USD 180.00, and *upload id* to send "
        "your travellers' IDs."
    ]

    # The database: one booking, its travellers, the seats taken, the customer.
    (booking,) = await all_rows(db, Booking)
    assert (booking.reference, booking.travelers_count) == (reference, 3)
    assert (booking.total_cost, booking.currency) == (Decimal("180.00"), "USD")
    assert booking.status is BookingStatus.PENDING
    assert booking.departure_id == catalogue.departures[("falls", 7)]
    travelers = await all_rows(db, Traveler, Traveler.position)
    assert [t.full_name for t in travelers] == ["Rudo Chikwanha", "Ana Moyo", "Ben Dube"]
    assert await seats_left(db, catalogue.departures[("falls", 7)]) == 7
    contact, customer = await contact_and_customer(db)
    assert customer is not None
    assert (customer.name, customer.email, customer.phone) == (
        "Rudo Chikwanha", "rudo@example.com", f"+{PHONE}",
    )  # fmt: skip
    assert contact.attributes == {"name": "Rudo Chikwanha", "email": "rudo@example.com"}

    # The analytics: one step event per interaction, the names step once per traveller.
    assert await chat.steps() == [
        ("choose_tour", "entered"),
        ("choose_tour", "completed"),
        ("choose_departure", "entered"),
        ("choose_departure", "completed"),
        ("traveler_count", "entered"),
        ("traveler_count", "completed"),
        ("lead_traveler_name", "entered"),
        ("lead_traveler_name", "completed"),
        ("traveler_names", "entered"),
        ("traveler_names", "completed"),
        ("traveler_names", "entered"),
        ("traveler_names", "completed"),
        ("email_address", "entered"),
        ("email_address", "completed"),
        ("review_booking", "entered"),
        ("review_booking", "completed"),
        ("payment_method", "entered"),
        ("payment_method", "completed"),
        ("paying_later", "entered"),
    ]
    events = await chat.events()
    assert [e.output_value for e in events if e.step_name == "traveler_names"][1::2] == [
        "Ana Moyo",
        "Ben Dube",
    ]
    (session,) = await chat.sessions()
    assert (session.flow_name, session.status) == ("booking_flow", SessionStatus.COMPLETED)
    assert session.context_data["booking_reference"] == reference
    # The conversion analytics count: the app's goal "booking", reached in this session.
    (goal,) = await all_rows(db, GoalEvent)
    assert (goal.goal, goal.reference, goal.session_id) == ("booking", reference, session.id)
    assert goal.contact_id == contact.id

    await chat.send("help")
    for line in (
        "• *book*: Book seats on one of our tours",
        "• *pay*: See what's due on your bookings and pay it",
        "• *upload id*: Send your travellers' passports or national IDs",
        "• *my details*: Change the name, e-mail or phone number we have for you",
        "• *support*: talk to a person from our team",
    ):
        assert line in chat.last_text


async def test_bad_answers_are_counted_retries_with_helpful_messages(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("book")
    await chat.send(tap="falls")

    # Dates typed instead of tapped: a past one, one without a departure, then a good one.
    await chat.send(f"{day(-3):%d/%m/%Y}")
    assert chat.texts[0] == (
        f"{long_date(day(-3))} has already passed. Please choose one of the dates listed."
    )
    assert chat.options == [short_date(day(1)), short_date(day(7))]  # asked again
    await chat.send(f"{day(8):%d/%m/%Y}")  # full
    assert chat.texts[0] == (
        f"Sorry, {long_date(day(8))} is fully booked. The nearest dates with seats: "
        f"{short_date(day(1))}, {short_date(day(7))}. Type one of them or choose from the list."
    )
    await chat.send(f"{day(7).day} {day(7):%B %Y}")
    assert chat.last_text.startswith("How many travellers, including you? (10 seats left")

    await chat.send("0")
    assert chat.texts[0] == (
        "0 is too small. Please send a whole number between 1 and 10, for example 1."
    )
    await chat.send("11")
    assert chat.texts[0] == (
        "Sorry, 11 is more than the 10 available. "
        "Please send a whole number between 1 and 10, for example 1."
    )
    await chat.send("two")
    await chat.send("Rudo")
    assert chat.texts[0] == "Please give the full name (first name and surname)."
    await chat.send("Rudo Chikwanha")
    await chat.send("Ana 2")
    assert chat.texts[0].startswith("That doesn't look like a name.")
    await chat.send("Ana Moyo")
    await chat.send("rudo@example")
    assert chat.texts[0] == "“rudo@example” isn't a valid e-mail address, e.g. name@example.com."
    await chat.send("rudo@example.com")
    assert chat.texts == [summary(["Rudo Chikwanha", "Ana Moyo"])]

    assert await count(db, Booking) == 0  # nothing is written before the confirmation
    steps = await chat.steps()
    assert steps[2:] == [
        ("choose_departure", "entered"),
        ("choose_departure", "retry"),
        ("choose_departure", "retry"),
        ("choose_departure", "completed"),
        ("traveler_count", "entered"),
        ("traveler_count", "retry"),
        ("traveler_count", "retry"),
        ("traveler_count", "completed"),
        ("lead_traveler_name", "entered"),
        ("lead_traveler_name", "retry"),
        ("lead_traveler_name", "completed"),
        ("traveler_names", "entered"),
        ("traveler_names", "retry"),
        ("traveler_names", "completed"),
        ("email_address", "entered"),
        ("email_address", "retry"),
        ("email_address", "completed"),
        ("review_booking", "entered"),
    ]
    retries = [e for e in await chat.events() if e.action.value == "retry"]
    assert [e.input_value for e in retries[:4]] == [
        f"{day(-3):%d/%m/%Y}", f"{day(8):%d/%m/%Y}", "0", "11",
    ]  # fmt: skip
    assert [e.retry_count for e in retries[:4]] == [1, 2, 1, 2]
    assert all(e.error_message for e in retries)
    completed = [e for e in await chat.events() if e.step_name == "traveler_count"][-1]
    assert (completed.input_value, completed.output_value) == ("two", "2")
    assert completed.retry_count == 2


async def test_a_returning_customer_is_not_asked_name_or_email(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    async with db.transaction() as session:
        contact = await get_or_create_contact(session, wa_id=PHONE, profile_name="Test User")
        customer = await operations.customer_for_contact(session, contact, name="Rudo Chikwanha")
        customer.email = "rudo@example.com"

    chat = await open_chat(nyala_chat)
    await reach_review(chat, names=["Rudo Chikwanha", "Tatenda Moyo"], email=None, known_name=True)
    assert chat.texts == [summary(["Rudo Chikwanha", "Tatenda Moyo"])]
    await chat.send(tap="Confirm booking")
    await chat.send(tap="Pay later")
    assert (await chat.steps())[6:12] == [
        ("lead_traveler_name", "entered"),
        ("lead_traveler_name", "skipped"),
        ("traveler_names", "entered"),
        ("traveler_names", "completed"),
        ("email_address", "entered"),
        ("email_address", "skipped"),
    ]

    # Travelling alone: the names step is skipped as well.
    await chat.send("book")
    await chat.send(tap="hwange")
    await chat.send(tap=day(10).isoformat())
    await chat.send("1")
    assert chat.last_text.startswith("Please check your booking:")
    assert "• Travellers (1): Rudo Chikwanha" in chat.last_text
    assert "• Total: USD 150.00 (1 × USD 150.00)" in chat.last_text
    assert "• Date: " + long_date(day(10)) + ", starting 06:00 at Main camp gate" in chat.last_text
    latest = (await chat.sessions())[-1].id
    steps = [(e.step_name, e.action.value) for e in await chat.events() if e.session_id == latest]
    assert steps[6:] == [
        ("lead_traveler_name", "entered"),
        ("lead_traveler_name", "skipped"),
        ("traveler_names", "entered"),
        ("traveler_names", "skipped"),
        ("email_address", "entered"),
        ("email_address", "skipped"),
        ("review_booking", "entered"),
    ]


async def test_departures_follow_the_calendar_in_harare(
    nyala_chat: ChatFactory, catalogue: Catalogue
) -> None:
    # 22:30 UTC today is 00:30 tomorrow in Harare: tomorrow's departure has closed,
    # although in UTC it is still a day away.
    late = dt.datetime.combine(day(0), dt.time(22, 30), dt.UTC)
    chat = await open_chat(nyala_chat, clock=Clock(late))
    await chat.send("book")
    await chat.send(tap="falls")
    assert chat.options == [short_date(day(7))]

    # A list shown at 23:50 in Harare, tapped after midnight: that date has closed.
    evening = dt.datetime.combine(day(0), dt.time(23, 50), HARARE).astimezone(dt.UTC)
    clock = Clock(evening)
    other = await open_chat(nyala_chat, phone="263770000002", clock=clock)
    await other.send("book")
    await other.send(tap="falls")
    assert other.options == [short_date(day(1)), short_date(day(7))]
    clock.advance(minutes=20)
    await other.send(tap=day(1).isoformat())
    assert other.texts[0] == (
        f"Sorry, bookings for {long_date(day(1))} have closed. Please choose a later date."
    )
    assert other.options == [short_date(day(7))]  # the list, fresh
    assert (await other.steps())[-1] == ("choose_departure", "retry")


async def test_stale_taps_on_tours_and_departures_are_retries(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("book")

    # A row from an old list, for a tour that is not on sale.
    await tap_stale(chat, "mana", "Mana Pools canoe trail")
    assert chat.texts[0].startswith("That option is no longer available.")

    # The tour stops selling while the customer looks at the list.
    async with db.transaction() as session:
        await session.execute(update(Tour).where(Tour.code == "hwange").values(active=False))
    await chat.send(tap="hwange")
    assert chat.texts[0] == "Sorry, that tour is no longer available. Please choose another one."
    assert chat.options == ["Victoria Falls guided t…"]

    # The departure fills up while the customer looks at the dates.
    await chat.send(tap="falls")
    await take_seats(db, catalogue.departures[("falls", 1)], 2)
    await chat.send(tap=day(1).isoformat())
    assert chat.texts[0] == (
        f"Sorry, {long_date(day(1))} is fully booked. The nearest dates with seats: "
        f"{short_date(day(7))}. Type one of them or choose from the list."
    )
    assert chat.options == [short_date(day(7))]
    await chat.send(tap=day(7).isoformat())
    assert chat.last_text.startswith("How many travellers")

    assert await chat.steps() == [
        ("choose_tour", "entered"),
        ("choose_tour", "retry"),
        ("choose_tour", "retry"),
        ("choose_tour", "completed"),
        ("choose_departure", "entered"),
        ("choose_departure", "retry"),
        ("choose_departure", "completed"),
        ("traveler_count", "entered"),
    ]


async def test_seats_taken_by_someone_else_before_the_confirmation(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    tomorrow = catalogue.departures[("falls", 1)]  # 2 seats left
    ana = await open_chat(nyala_chat, phone="263770000011")
    ben = await open_chat(nyala_chat, phone="263770000022")

    await reach_review(ana, offset=1, names=["Ana Moyo", "Tino Moyo"], email="ana@example.com")
    # Meanwhile Ben books one of the two seats.
    await reach_review(ben, offset=1, names=["Ben Dube"], email="ben@example.com")
    await ben.send(tap="Confirm booking")
    assert ben.last_text.startswith("🎉 You're booked!")
    assert await seats_left(db, tomorrow) == 1

    await ana.send(tap="Confirm booking")
    assert ana.texts[0] == (
        "Sorry, only 1 seat left on that date. Please choose fewer travelers or another date."
    )
    assert ana.last_text.startswith("Please check your booking:")  # asked again
    # The attempt left nothing behind: no booking, no customer, the seat still free.
    bookings = await all_rows(db, Booking)
    assert len(bookings) == 1
    _, customer = await contact_and_customer(db, "263770000011")
    assert customer is None
    assert await seats_left(db, tomorrow) == 1

    # Ana changes the date; the names and e-mail she gave are kept.
    await ana.send(tap="Change booking")
    await ana.send(tap="falls")
    assert descriptions(ana) == ["1 seat left", "10 seats left"]
    await ana.send(tap=day(7).isoformat())
    await ana.send("2")
    assert ana.texts == [summary(["Ana Moyo", "Tino Moyo"], email="ana@example.com")]
    await ana.send(tap="Confirm booking")
    assert ana.last_text.startswith("🎉 You're booked!")
    assert await seats_left(db, catalogue.departures[("falls", 7)]) == 8

    steps = await ana.steps()
    assert steps[13:] == [
        ("review_booking", "retry"),
        ("review_booking", "completed"),
        ("choose_tour", "entered"),
        ("choose_tour", "completed"),
        ("choose_departure", "entered"),
        ("choose_departure", "completed"),
        ("traveler_count", "entered"),
        ("traveler_count", "completed"),
        ("lead_traveler_name", "entered"),
        ("lead_traveler_name", "skipped"),
        ("traveler_names", "entered"),
        ("traveler_names", "skipped"),
        ("email_address", "entered"),
        ("email_address", "skipped"),
        ("review_booking", "entered"),
        ("review_booking", "completed"),
        ("payment_method", "entered"),
    ]
    retry = next(e for e in await ana.events() if e.action.value == "retry")
    assert retry.error_message is not None and "only 1 seat left" in retry.error_message


async def test_cancelling_books_nothing_and_no_tours_is_a_clear_message(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    chat = await open_chat(nyala_chat)
    await reach_review(chat)
    await chat.send(tap="Cancel")
    assert chat.texts == [
        "No problem, I haven't booked anything. Type *book* whenever you're ready."
    ]
    assert await count(db, Booking) == 0
    assert await count(db, Customer) == 0
    assert await count(db, GoalEvent) == 0  # no booking, no conversion
    assert await seats_left(db, catalogue.departures[("falls", 7)]) == 10
    assert (await chat.steps())[-2:] == [
        ("review_booking", "completed"),
        ("booking_cancelled", "entered"),
    ]
    # Cancelled by the customer: its own outcome, not a completed booking (issue 16.6).
    async with db.read() as session:
        stored = (
            await session.execute(
                text("SELECT status, outcome FROM flow_sessions WHERE flow_name = 'booking_flow'")
            )
        ).all()
    assert [tuple(row) for row in stored] == [("completed", "cancelled")]
    report = await get_flow_completion_rate("booking_flow", db=db, include_sandbox=True)
    assert (report["completed_sessions"], report["cancelled_sessions"]) == (0, 1)

    async with db.transaction() as session:
        await session.execute(update(Tour).values(active=False))
    await chat.send("book")
    assert chat.texts == [
        "Sorry, none of our tours has free seats at the moment. Type *plan a safari* and our "
        "planners will put together a trip for you."
    ]
    latest = (await chat.sessions())[-1]
    assert (latest.flow_name, latest.status, latest.outcome) == (
        "booking_flow",
        SessionStatus.COMPLETED,
        "nothing_to_do",
    )
    assert (await chat.conversation()).flow_name is None


async def test_with_no_tours_at_all_book_says_so_and_how_to_add_some(
    nyala_chat: ChatFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16: on an empty database "book" said every tour was sold out."""
    chat = await open_chat(nyala_chat)  # the chat harness is a sandbox
    with caplog.at_level(logging.WARNING, logger="nyala.safari"):
        await chat.send("book")
    assert chat.texts == [
        "There are no tours yet, so there is nothing to book. (Trying Nyala out? "
        "`nyala demo-data` adds four demo tours with departures.) Type *plan a safari* and "
        "our planners will put together a trip for you."
    ]
    assert "there are no tours" in caplog.text  # and the operator's log says what to do


async def test_any_bookable_departure_can_be_typed_not_only_the_ten_listed(
    nyala_chat: ChatFactory, db: Database
) -> None:
    """Issue 16: only the ten listed departures could be booked; "20 Dec" answered there
    was no departure with free seats while it had six."""
    offsets = [*range(1, 25, 2)]  # 12 departures, every other day: two are not listed
    async with db.transaction() as session:
        await add_tour(session, code="falls", departures=tuple((day(d), 8, 6) for d in offsets))
    chat = await open_chat(nyala_chat)
    await chat.send("book")
    await chat.send(tap="falls")
    assert len(chat.options) == 10 and short_date(day(23)) not in chat.options
    # A day between two departures: the nearest ones, whether listed or not.
    await chat.send(f"{day(22).day} {day(22):%b}")
    assert chat.texts[0] == (
        f"There's no departure on {long_date(day(22))}. The nearest dates with seats: "
        f"{short_date(day(19))}, {short_date(day(21))}, {short_date(day(23))}. Type one of "
        "them or choose from the list."
    )
    await chat.send(f"{day(23).day} {day(23):%b}")  # the 12th departure, not listed
    assert chat.last_text.startswith("How many travellers, including you? (6 seats left on")
    assert long_date(day(23)) in chat.last_text


async def test_later_dates_pages_through_every_departure(
    nyala_chat: ChatFactory, db: Database
) -> None:
    offsets = [*range(1, 25, 2)]  # 12 departures: 9 on the first page, then "Later dates"
    async with db.transaction() as session:
        await add_tour(session, code="falls", departures=tuple((day(d), 8, 6) for d in offsets))
    chat = await open_chat(nyala_chat)
    await chat.send("book")
    await chat.send(tap="falls")
    assert chat.options == [*(short_date(day(d)) for d in offsets[:9]), "Later dates"]
    await chat.send(tap="Later dates")
    assert chat.options == [short_date(day(d)) for d in offsets[9:]]  # the rest, no more row
    await chat.send(tap=day(23).isoformat())
    assert chat.last_text.startswith("How many travellers, including you? (6 seats left on")
    assert long_date(day(23)) in chat.last_text
    steps = await chat.steps()
    assert steps.count(("choose_departure", "completed")) == 2  # the page, then the date


async def test_a_long_tour_name_is_whole_in_its_row(nyala_chat: ChatFactory, db: Database) -> None:
    """Issue 16.15: the row's description carried the long name cut ("… Zambezi sunse…");
    the next date gives way when the whole name would not fit WhatsApp's 72 characters."""
    long_name = "Victoria Falls guided tour & Zambezi sunset cruise"
    async with db.transaction() as session:
        tour, _ = await add_tour(
            session, code="cruise", name=long_name, price="1040.00",
            departures=((day(3), 8, 6),),
        )  # fmt: skip
        tour.short_name = "Falls & sunset cruise"
        await add_tour(session, code="falls", departures=((day(2), 8, 6),))
    chat = await open_chat(nyala_chat)
    await chat.send("book")
    assert chat.options == ["Victoria Falls guided t…", "Falls & sunset cruise"]  # by name
    assert descriptions(chat) == [
        f"USD 60.00 pp · next {day(2).day} {day(2):%b} · Victoria Falls guided tour",
        f"USD 1,040.00 pp · {long_name}",
    ]
    assert all(len(d or "") <= ROW_DESCRIPTION_MAX for d in descriptions(chat))
