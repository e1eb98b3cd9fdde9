"""``booking_flow.yaml``'s callables: choose a tour and a date, name the travellers, book.

Seats are taken by :func:`apps.safari.operations.create_booking` (one conditional
UPDATE), so two customers confirming the last seats at the same moment cannot both get
them: the second one hears why and chooses again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import ColumnElement, func, select

from apps.safari import app, operations
from apps.safari.common import long_date, plural, remember, short_date
from apps.safari.models import Departure, Tour
from documents import format_money
from flows import Accepted, ActionError, FlowContext, Option, Rejected, UserMessage
from flows import ValidationContext as Context
from flows.messages import ROW_DESCRIPTION_MAX
from flows.validators import choice, date

Check = Callable[[UserMessage, Context], Accepted | Rejected]

MAX_ROWS = 10  # a WhatsApp list holds ten rows
log = logging.getLogger("nyala.safari")


def _bookable(today: dt.date) -> tuple[ColumnElement[bool], ...]:
    """Where-clauses of a departure that can still be booked: after today, seats left."""
    return (Departure.date > today, Departure.seats_left > 0)


# choose_tour ------------------------------------------------------------------------------


@app.query()
async def no_tours_on_sale(ctx: FlowContext) -> str:
    """Why the tour list is empty: no tour at all yet (a new installation: says how to
    add some when it is a sandbox), or every tour sold out or stopped selling."""
    if await ctx.session.scalar(select(Tour.id).limit(1)) is not None:
        return "Sorry, none of our tours has free seats at the moment."
    log.warning("a customer asked to book, but there are no tours: add some (nyala demo-data)")
    if ctx.sandbox:
        return (
            "There are no tours yet, so there is nothing to book. (Trying Nyala out? "
            "`nyala demo-data` adds four demo tours with departures.)"
        )
    return "Sorry, we have no tours open for booking yet."


@app.query()
async def tours_on_sale(ctx: FlowContext) -> list[Option]:
    """Active tours with at least one bookable departure, with their price per person."""
    first = (
        select(Departure.tour_id, func.min(Departure.date).label("first_date"))
        .where(*_bookable(ctx.today))
        .group_by(Departure.tour_id)
        .subquery()
    )
    rows = await ctx.session.execute(
        select(Tour, first.c.first_date)
        .join(first, first.c.tour_id == Tour.id)
        .where(Tour.active.is_(True))
        .order_by(Tour.name)
        .limit(MAX_ROWS)
    )
    # The short name as the title, the full one in the description (after what a
    # customer compares first: the price and the next date).
    return [
        Option(tour.code, tour.short_name or tour.name, _tour_row(tour, first_date))
        for tour, first_date in rows
    ]


def _tour_row(tour: Tour, first_date: dt.date) -> str:
    """A tour's row description: the price, the next date and the whole name; without
    the date when the name would be cut (the next step lists the dates anyway)."""
    price = f"{format_money(tour.price_per_person, tour.currency)} pp"
    full = f"{price} · next {first_date.day} {first_date:%b} · {tour.name}"
    return full if len(full) <= ROW_DESCRIPTION_MAX else f"{price} · {tour.name}"


@app.action()
async def check_tour(ctx: FlowContext) -> None:
    """Keep the chosen tour, unless it stopped selling since the list was shown.

    Raises:
        ActionError: the tour is unknown, inactive or has no bookable departure left.
    """
    tour = await ctx.session.scalar(select(Tour).where(Tour.code == str(ctx.data["tour"])))
    if tour is None or not tour.active:
        raise ActionError("Sorry, that tour is no longer available. Please choose another one.")
    open_dates = await ctx.session.scalar(
        select(func.count())
        .select_from(Departure)
        .where(Departure.tour_id == tour.id, *_bookable(ctx.today))
    )
    if not open_dates:
        raise ActionError(f"Sorry, {tour.name} has just sold out. Please choose another tour.")
    ctx.data.update(tour_id=tour.id, tour_name=tour.name)


# choose_departure ----------------------------------------------------------------------


LATER = "later:"  # the id prefix of the "Later dates" row: later:<last date shown>


@app.query()
async def upcoming_departures(ctx: FlowContext) -> list[Option]:
    """The chosen tour's departures after today (in Harare) that still have seats, a page
    at a time: when there are more than a list holds, the last row is "Later dates"."""
    query = select(Departure).where(
        Departure.tour_id == ctx.data["tour_id"], *_bookable(ctx.today)
    )
    if after := ctx.data.get("departures_after"):
        query = query.where(Departure.date > dt.date.fromisoformat(str(after)))
    departures = list(
        await ctx.session.scalars(query.order_by(Departure.date).limit(MAX_ROWS + 1))
    )
    more = len(departures) > MAX_ROWS
    shown = departures[: MAX_ROWS - 1] if more else departures
    options = [
        Option(d.date.isoformat(), short_date(d.date), f"{plural(d.seats_left, 'seat')} left")
        for d in shown
    ]
    if more:
        last = shown[-1].date
        options.append(
            Option(f"{LATER}{last.isoformat()}", "Later dates", f"after {short_date(last)}")
        )
    return options


@app.condition()
def wants_later_dates(ctx: FlowContext) -> bool:
    """Whether the answer was the "Later dates" row (the list is shown again, further on)."""
    return str(ctx.data.get("departure_date", "")).startswith(LATER)


@app.validator()
def departure_date() -> Check:
    """A departure: tapped, its number, or any date typed (``14/03``, ``20 Dec``).

    A typed date is not limited to the ten listed: any future date is accepted here and
    :func:`check_departure` looks it up, answering with the nearest dates that have seats
    when that day has none. A date that has passed is refused at once.
    """
    listed = choice()
    typed_date = date()

    def check(message: UserMessage, ctx: Context) -> Accepted | Rejected:
        picked = listed(message, ctx)
        text = (message.text or "").strip()
        if isinstance(picked, Accepted) or message.kind != "text" or text.isdigit():
            return picked
        parsed = typed_date(message, ctx)
        if isinstance(parsed, Rejected):
            return picked
        day = dt.date.fromisoformat(parsed.value)
        if day <= ctx.today:
            return Rejected(
                f"{long_date(day)} has already passed. Please choose one of the dates listed."
                if day < ctx.today
                else "Bookings for today have closed. Please choose a later date."
            )
        for option in ctx.options:
            if option.id == day.isoformat():
                return Accepted(option.id, option.title)
        return Accepted(day.isoformat(), short_date(day))

    return check


async def _nearest_text(ctx: FlowContext, day: dt.date) -> str:
    nearest = await nearest_dates(ctx, day)
    if not nearest:
        return "No other date has seats left; type *book* to choose another tour."
    return (
        f"The nearest dates with seats: {', '.join(short_date(d) for d in nearest)}. "
        "Type one of them or choose from the list."
    )


async def nearest_dates(ctx: FlowContext, day: dt.date, count: int = 3) -> list[dt.date]:
    """The ``count`` bookable departure dates of the chosen tour nearest to ``day``."""
    bookable = (Departure.tour_id == ctx.data["tour_id"], *_bookable(ctx.today))
    before = await ctx.session.scalars(
        select(Departure.date)
        .where(*bookable, Departure.date < day)
        .order_by(Departure.date.desc())
        .limit(count)
    )
    after = await ctx.session.scalars(
        select(Departure.date)
        .where(*bookable, Departure.date > day)
        .order_by(Departure.date)
        .limit(count)
    )
    found = [*before, *after]
    found.sort(key=lambda d: (abs((d - day).days), d))
    return sorted(found[:count])


@app.action()
async def check_departure(ctx: FlowContext) -> None:
    """Keep the chosen departure and its seats left (the traveller count's maximum).

    Raises:
        ActionError: the date has passed (a list shown yesterday) or it has just filled up.
    """
    chosen = str(ctx.data["departure_date"])
    if chosen.startswith(LATER):  # the next page of dates (see wants_later_dates)
        ctx.data["departures_after"] = chosen.removeprefix(LATER)
        del ctx.data["departure_date"]
        return
    day = dt.date.fromisoformat(chosen)
    departure = await ctx.session.scalar(
        select(Departure).where(Departure.tour_id == ctx.data["tour_id"], Departure.date == day)
    )
    if departure is None:
        raise ActionError(
            f"There's no departure on {long_date(day)}. {await _nearest_text(ctx, day)}"
        )
    if day <= ctx.today:
        raise ActionError(
            f"Sorry, bookings for {long_date(day)} have closed. Please choose a later date."
        )
    if departure.seats_left < 1:
        raise ActionError(
            f"Sorry, {long_date(day)} is fully booked. {await _nearest_text(ctx, day)}"
        )
    ctx.data.pop("departures_after", None)
    ctx.data.update(
        departure_id=departure.id,
        departure_label=long_date(day),
        seats_left=departure.seats_left,
        seats_available=plural(departure.seats_left, "seat"),
    )


# travellers ------------------------------------------------------------------------------


def _names(ctx: FlowContext) -> list[str]:
    return [str(n) for n in ctx.data.get("traveler_names") or []]


@app.action()
def fit_traveler_list(ctx: FlowContext) -> None:
    """Start the travellers' names: keep names already given (after *change*), at most one
    per traveller, and put the customer first when we know their name."""
    names = _names(ctx)[: int(ctx.data["traveler_count"])]
    if not names and ctx.data.get("name"):
        names = [str(ctx.data["name"])]
    ctx.data["traveler_names"] = names


@app.action()
def add_traveler_name(ctx: FlowContext) -> None:
    """Append the accepted name to the travellers' names."""
    ctx.data["traveler_names"] = [*_names(ctx), str(ctx.value)]


@app.condition()
def all_travelers_named(ctx: FlowContext) -> bool:
    """Whether there is a name for every traveller."""
    return len(_names(ctx)) >= int(ctx.data["traveler_count"])


@app.condition()
def more_travelers_to_name(ctx: FlowContext) -> bool:
    """Whether another name is needed after the one being answered.

    Guards run before the step's actions, so the answer is not in the list yet.
    """
    return len(_names(ctx)) + 1 < int(ctx.data["traveler_count"])


@app.query()
def next_traveler_number(ctx: FlowContext) -> int:
    """The number of the traveller whose name is asked next."""
    return len(_names(ctx)) + 1


# review_booking ------------------------------------------------------------------------


@app.query()
async def booking_summary(ctx: FlowContext) -> str:
    """The booking as the customer confirms it."""
    data = ctx.data
    tour = await ctx.session.get(Tour, data["tour_id"])
    assert tour is not None
    names = _names(ctx)
    total = (tour.price_per_person * len(names)).quantize(Decimal("0.01"))
    price = format_money(tour.price_per_person, tour.currency)
    return "\n".join(
        [
            "Please check your booking:",
            f"• Tour: {tour.name}",
            f"• Date: {data['departure_label']}, starting {tour.start_time:%H:%M}"
            f" at {tour.meeting_point}",
            f"• Travellers ({len(names)}): {', '.join(names)}",
            f"• E-mail: {data.get('email', '')}",
            f"• Total: {format_money(total, tour.currency)} ({len(names)} × {price})",
        ]
    )


@app.action("create_booking")
async def book_seats(ctx: FlowContext) -> None:
    """Book the seats through the service layer, for the customer behind this contact.

    Raises:
        ActionError: the tour stopped selling, the date has passed, or someone else took
            the seats in the meantime (from :func:`operations.create_booking`).
    """
    data = ctx.data
    names = _names(ctx)
    if not names or len(names) != int(data["traveler_count"]):
        raise ActionError("Sorry, I lost track of the names. Tap *Change booking* to go again.")
    tour = await ctx.session.get(Tour, data["tour_id"])
    if tour is None or not tour.active:
        raise ActionError(
            "Sorry, that tour is no longer available. Tap *Change booking* to choose another."
        )
    if dt.date.fromisoformat(str(data["departure_date"])) <= ctx.today:
        raise ActionError(
            f"Sorry, bookings for {data['departure_label']} have closed. "
            "Tap *Change booking* to choose a later date."
        )
    customer = await operations.customer_for_contact(ctx.session, ctx.contact, name=names[0])
    if data.get("email"):
        customer.email = str(data["email"])
    booking = await operations.create_booking(
        ctx.session,
        customer=customer,
        departure_id=int(data["departure_id"]),
        traveler_names=names,
    )
    remember(ctx, name=names[0], **({"email": data["email"]} if data.get("email") else {}))
    data["booking_reference"] = booking.reference
    await ctx.reach_goal("booking", reference=booking.reference)


# payment_method ------------------------------------------------------------------------


@app.action()
def continue_to_payment(ctx: FlowContext) -> None:
    """Carry on in ``payment_flow`` with this booking and the chosen way to pay."""
    ctx.start_flow(
        "payment_flow", booking_reference=ctx.data["booking_reference"], method=ctx.value
    )
