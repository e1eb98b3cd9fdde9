"""A restaurant's WhatsApp bot: table bookings, feedback, opening hours and directions.

It is written with Nyala's public API only, like any business's bot: an :class:`App`,
the actions, queries, conditions and validators its flow files name, one flow written as a
Python class, two app-level intents, and what the app brings beside its flows: its own
``reservations`` table and migration branch, a console page, a CLI command, a conversion
goal and demo data. Run it with::

    nyala --app examples/restaurant chat
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.exc import IntegrityError
from statemachine import State

from flows import (
    Accepted,
    ActionError,
    App,
    Expect,
    Flow,
    FlowContext,
    LocationPin,
    Option,
    Rejected,
    Step,
    UserMessage,
    ValidationContext,
)
from flows.runtime import Runtime

from .cli import reservations_command
from .console import reservations_page
from .demo import load_demo
from .models import FLOOR, FloorPlan, Reservation, RestaurantBase, free_tables

HERE = Path(__file__).parent

# What a validator factory returns: a check of one message.
Check = Callable[[UserMessage, ValidationContext], Accepted | Rejected]

app = App(
    "Msasa Grill",
    flows_dir=HERE / "flows",
    greeting="Welcome to Msasa Grill 🍽️ What can I do for you?",
    help_text="I'm the Msasa Grill assistant. I can book you a table and take your feedback.",
    timezone="Africa/Harare",
    default_region="ZW",
    tables=RestaurantBase.metadata,
    migrations=HERE / "migrations",
    goals=["reservation"],
    copy={"flow.done": "All done! Type *menu* for anything else, or *book* for a table."},
    console=[reservations_page],
    commands=[reservations_command],
    demo_data=load_demo,
)


@app.lifespan
async def floor_plan(runtime: Runtime) -> AsyncIterator[None]:
    """Provide the floor plan when the app starts (a service: ``ctx.services``)."""
    runtime.services.provide(FloorPlan, FLOOR)
    yield


# The restaurant ------------------------------------------------------------------------

BOOKING_HORIZON_DAYS = 60
LUNCH = ("12:00", "13:30")
DINNER = ("18:00", "19:30")
# Monday is 0. Closed on Mondays, lunch only on Sundays.
SITTINGS: dict[int, tuple[str, ...]] = {
    0: (),
    1: LUNCH + DINNER,
    2: LUNCH + DINNER,
    3: LUNCH + DINNER,
    4: LUNCH + DINNER,
    5: LUNCH + DINNER,
    6: LUNCH,
}
OPENING_HOURS = (
    "Our opening hours:\n"
    "• Tuesday to Saturday: lunch 12:00-15:00, dinner 18:00-22:00\n"
    "• Sunday: lunch 12:00-15:00\n"
    "• Monday: closed"
)
_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I look-alikes


def _remembered(ctx: FlowContext) -> dict[str, Any]:
    return dict(ctx.contact.attributes or {})


def _remember(ctx: FlowContext, **facts: Any) -> None:
    # Assign a new dict: SQLAlchemy does not see changes made inside a JSON value.
    ctx.contact.attributes = {**_remembered(ctx), **facts}


def _booking_day(ctx: FlowContext) -> dt.date:
    return dt.date.fromisoformat(ctx.data["booking_date"])


async def _open_sittings(ctx: FlowContext, day: dt.date, party: int) -> list[tuple[str, int]]:
    """The sittings of ``day`` not yet started, each with its free tables for ``party``."""
    floor = ctx.services.get(FloorPlan)
    local_now = ctx.now.astimezone(ctx.app.timezone)
    found = []
    for time in SITTINGS[day.weekday()]:
        if day == local_now.date() and time <= f"{local_now:%H:%M}":
            continue  # that sitting has started
        tables = await free_tables(ctx.session, floor, day, time, party)
        if tables:
            found.append((time, len(tables)))
    return found


# Conditions: guards that flow files name in skip_if, if and unless ----------------------


@app.condition()
def name_known(ctx: FlowContext) -> bool:
    """Whether a returning customer already told us their name."""
    return bool(_remembered(ctx).get("name"))


@app.condition()
def phone_known(ctx: FlowContext) -> bool:
    """Whether we have the guest's number from an earlier booking."""
    return bool(_remembered(ctx).get("phone"))


@app.condition()
def email_known(ctx: FlowContext) -> bool:
    """Whether we have the guest's e-mail address from an earlier booking."""
    return bool(_remembered(ctx).get("email"))


@app.condition()
def details_given(ctx: FlowContext) -> bool:
    """Whether the guest got as far as the review (and is changing the time)."""
    return "contact_method" in ctx.data


@app.condition()
def large_party(ctx: FlowContext) -> bool:
    """Groups of seven or more eat from the set menu."""
    return int(ctx.data["party_size"]) >= 7


@app.condition()
def set_menu_accepted(ctx: FlowContext) -> bool:
    """Whether the group said yes to the set menu."""
    return ctx.data.get("set_menu") is True


# Queries: values for {templates} and rows for choices: {from: ...} ---------------------


@app.query()
def guest(ctx: FlowContext) -> str:
    """The guest's first name, for friendly messages."""
    name = ctx.data.get("guest_name") or _remembered(ctx).get("name") or ctx.contact.profile_name
    return str(name).split(" ")[0] if name else "there"


@app.query()
def last_booking_date(ctx: FlowContext) -> str:
    """The last day we take bookings for (the date step's ``max``)."""
    return (ctx.today + dt.timedelta(days=BOOKING_HORIZON_DAYS)).isoformat()


@app.query()
def when(ctx: FlowContext) -> str:
    """The chosen date, readable: ``Friday 5 April``."""
    day = _booking_day(ctx)
    return f"{day:%A} {day.day} {day:%B}"


@app.query()
async def open_slots(ctx: FlowContext) -> list[Option]:
    """The sittings of the chosen day with a free table for the party."""
    rows: list[Option] = []
    for time, free in await _open_sittings(ctx, _booking_day(ctx), int(ctx.data["party_size"])):
        meal = "Lunch" if time in LUNCH else "Dinner"
        rows.append(Option(time, f"{time} {meal}", f"{free} table{'s' if free > 1 else ''} free"))
    return rows


@app.query()
def booking_summary(ctx: FlowContext) -> str:
    """The booking as the guest confirms it."""
    data = ctx.data
    if data.get("contact_method") == "phone":
        reach = f"Phone: {data['phone']}"
    else:
        reach = f"E-mail: {data['email']}"
    lines = [
        "Please check your booking:",
        f"• {data['party_size']} people, {when(ctx)} at {data['time_slot']}",
        f"• Name: {data.get('guest_name') or _remembered(ctx).get('name', '')}",
        f"• {reach}",
    ]
    if data.get("set_menu"):
        lines.append("• Set menu for the group")
    if data.get("requests"):
        lines.append(f"• Requests: {data['requests']}")
    return "\n".join(lines)


# Validators: what expect: names besides the built-in ones ------------------------------

_NOTHING = {"none", "no", "nothing", "nope", "n/a", "-", "no thanks"}


@app.validator()
def optional_note(*, max_length: int = 300) -> Check:
    """Free text, or "none": saved as the text, or as an empty string."""

    def check(message: UserMessage, _ctx: ValidationContext) -> Accepted | Rejected:
        text = (message.text or "").strip()
        if message.kind not in ("text", "reply") or not text:
            return Rejected("Please type your request, or *none*.")
        if text.casefold().strip(".!") in _NOTHING:
            return Accepted("", "none")
        if len(text) > max_length:
            return Rejected(f"Please keep it under {max_length} characters.")
        return Accepted(text, text)

    return check


# Actions: what do: and enter: run ---------------------------------------------------------


@app.action()
def load_profile(ctx: FlowContext) -> None:
    """Start a booking with the contact details we remember from earlier bookings."""
    remembered = _remembered(ctx)
    for key in ("phone", "email"):
        if remembered.get(key):
            ctx.data[key] = remembered[key]


@app.action()
def check_open_day(ctx: FlowContext) -> None:
    """A business rule on the date: an ActionError makes the guest answer again."""
    day = _booking_day(ctx)
    if not SITTINGS[day.weekday()]:
        raise ActionError(f"Sorry, we're closed on {day:%A}s. Which other day would suit you?")


@app.action()
def remember_name(ctx: FlowContext) -> None:
    """Keep the name for next time (the next booking skips asking it)."""
    _remember(ctx, name=ctx.data["guest_name"])


@app.action()
async def reserve_table(ctx: FlowContext) -> None:
    """Reserve the smallest free table that seats the party at the chosen sitting.

    The unique index on the table and sitting decides between two guests who confirm at
    the same moment: the loser's insert fails, the next free table is tried, and when
    none is left the guest hears which times are still free (an ActionError: a retry).
    """
    data = ctx.data
    day, time, party = _booking_day(ctx), str(data["time_slot"]), int(data["party_size"])
    reference = "MG-" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(6))
    floor = ctx.services.get(FloorPlan)
    for table in await free_tables(ctx.session, floor, day, time, party):
        reservation = Reservation(
            reference=reference,
            contact_id=ctx.contact.id,
            table_code=table.code,
            day=day,
            sitting=time,
            party_size=party,
            guest_name=str(data.get("guest_name") or _remembered(ctx).get("name", "")),
            phone=data.get("phone") if data.get("contact_method") == "phone" else None,
            email=data.get("email") if data.get("contact_method") == "email" else None,
            set_menu=bool(data.get("set_menu")),
            requests=str(data.get("requests", "")),
            created_at=ctx.now,
        )
        try:
            async with ctx.session.begin_nested():
                ctx.session.add(reservation)
        except IntegrityError:
            continue  # another guest took this table a moment ago
        break
    else:
        raise ActionError(await _taken_message(ctx, day, time, party))
    await ctx.reach_goal("reservation", reference=reference)
    _remember(ctx, **{k: data[k] for k in ("phone", "email") if data.get(k)})
    data["reference"] = reference  # the final step's {reference}


async def _taken_message(ctx: FlowContext, day: dt.date, time: str, party: int) -> str:
    """What the guest hears when the last table for the party went while they typed."""
    others = [t for t, _free in await _open_sittings(ctx, day, party) if t != time]
    taken = f"Sorry, the last table for {party} at {time} on {when(ctx)} has just been taken."
    if not others:
        return f"{taken} That day is now full: tap *Cancel booking* and book another day."
    return f"{taken} Still free that day: {', '.join(others)}. Tap *Change time* to pick one."


# A flow written in Python instead of a flow file -----------------------------------------


class FeedbackFlow(Flow):
    """Rate your last visit."""

    flow_name = "feedback"
    description = "Tell us how your meal was"
    triggers = ("feedback", "rate us", "review")
    timeout = dt.timedelta(hours=2)

    awaiting_rating = State(initial=True)
    awaiting_comment = State()
    thanked = State(final=True)

    # One event, 'answer', carries every accepted reply; guards pick the branch.
    answer = (
        awaiting_rating.to(awaiting_comment, cond="disappointed")
        | awaiting_rating.to(thanked, on="store_feedback")
        | awaiting_comment.to(thanked, on="store_feedback")
    )

    steps: ClassVar[dict[str, Step]] = {
        "awaiting_rating": Step(
            name="awaiting_rating",
            ask="How was your meal, {guest}? Pick a rating.",
            list_button="Rate",
            choices=(
                Option("1", "★ Poor"),
                Option("2", "★★ Fair"),
                Option("3", "★★★ Good"),
                Option("4", "★★★★ Very good"),
                Option("5", "★★★★★ Excellent"),
            ),
            save="rating",
        ),
        "awaiting_comment": Step(
            name="awaiting_comment",
            ask="Sorry it wasn't better. What should we improve?",
            expect=Expect("text", {"min_length": 3, "max_length": 500}),
            save="comment",
        ),
        "thanked": Step(name="thanked", say=("Thank you for your feedback, {guest}! 🙏",)),
    }

    def disappointed(self, value: str) -> bool:
        """Ratings of three or less ask what to improve."""
        return int(value) <= 3

    def store_feedback(self) -> None:
        """Keep the rating (and comment) with the contact."""
        ctx = self.ctx
        entry = {"rating": int(ctx.data["rating"]), "at": ctx.now.isoformat()}
        if ctx.data.get("comment"):
            entry["comment"] = ctx.data["comment"]
        _remember(ctx, feedback=[*_remembered(ctx).get("feedback", []), entry])


app.add_flow(FeedbackFlow)


# App-level intents and the main menu -----------------------------------------------------


def opening_hours(ctx: FlowContext) -> None:
    """Answer "opening hours" from anywhere in a conversation."""
    ctx.reply(OPENING_HOURS)


def directions(ctx: FlowContext) -> None:
    """Send the restaurant's location."""
    ctx.reply(
        LocationPin(-17.7840, 31.0530, name="Msasa Grill", address="12 Borrowdale Rd, Harare")
    )


app.intent(
    "hours",
    ["opening hours", "hours", "when are you open", "are you open"],
    handler=opening_hours,
    description="our opening hours",
)
app.intent(
    "directions",
    ["where are you", "address", "directions"],
    handler=directions,
    description="how to find us",
)
# The booking flow is listed by its file's 'menu:'; these rows follow it.
app.add_menu_item("Rate your visit", flow="feedback", description="Tell us how it was")
app.add_menu_item("Opening hours", intent="hours", description="When we're open")
