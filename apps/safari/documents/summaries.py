"""Pre-tour summaries and ID reminders: data assembled from storage, then text sections.

As every document (see :mod:`apps.safari.documents.receipts`), in two steps:

1. :class:`SummaryData`, a frozen dataclass of plain values, is assembled from storage
   (:func:`load_summary_data`): the tour, the booking and its balance, the travellers
   and their ID status, the weather outlook (:mod:`~apps.safari.documents.weather`,
   typical weather by default, never presented as a forecast) and the clothing advice
   derived from it.
2. Pure functions turn it into WhatsApp-sized text: :func:`summary_sections` by the number
   of days before the tour (7: the full summary; 3: a final check of what is missing;
   1: last-minute details), :func:`id_reminder_text`, and :func:`pack_messages`, which
   joins sections into messages under WhatsApp's 4096 characters.

The approved templates sent instead when the customer's 24-hour window is closed are
configured in ``templates.yaml`` (:func:`flows.outreach.load_template_specs`); the app
wraps the text in messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final
from urllib.parse import quote_plus

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari.documents.weather import (
    WeatherOutlook,
    WeatherProvider,
    clothing_advice,
    default_provider,
)
from apps.safari.models import (
    PAID_STATUSES,
    Booking,
    Customer,
    Departure,
    IdStatus,
    Payment,
    Tour,
    Traveler,
)
from documents import Branding, format_duration, format_money
from storage import NotFoundError

__all__ = [
    "TEXT_LIMIT",
    "QuickAction",
    "SummaryData",
    "TravelerInfo",
    "id_reminder_text",
    "load_many_summary_data",
    "load_summary_data",
    "maps_url",
    "pack_messages",
    "quick_actions",
    "summary_sections",
    "summary_template_key",
    "template_values",
]

TEXT_LIMIT: Final = 4096  # WhatsApp's limit on a text message body
SUMMARY_DAYS: Final = (7, 3, 1)


@dataclass(frozen=True, slots=True)
class TravelerInfo:
    """A traveller's name and ID document status (``missing``, ``received``...)."""

    name: str
    id_status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryData:
    """Everything a tour summary or ID reminder says, as plain values.

    Attributes:
        booking_id: the booking's id.
        reference: ``SAF-7K3QX2``.
        contact_id: the customer's WhatsApp contact, if any.
        customer_name: the customer's full name.
        first_name: the first word of it, to greet them.
        customer_phone: their phone number, if known.
        tour_name: the tour.
        description: what the tour is.
        tour_date: the departure date.
        start_time: local start time (business timezone).
        starts_at: the start as an aware datetime in the business timezone.
        duration_minutes: how long the tour lasts.
        meeting_point: where to meet.
        meeting_address: its address.
        latitude: the meeting point's latitude, if known.
        longitude: the meeting point's longitude, if known.
        guide_name: the guide, if assigned.
        guide_phone: the guide's phone number.
        travelers: the travellers in booking order.
        currency: ISO 4217 code of the amounts.
        total_cost: the booking's total.
        paid: approved and confirmed payments.
        balance_due: what is still due (never negative).
        packing_list: what to bring.
        weather: the weather outlook.
        clothing: what to wear, derived from the weather (and the tour's own advice).
        park_rules: the park's rules.
        safety: safety guidelines.
        emergency_contacts: ``(name, phone)`` pairs.
        cancellation_policy: the cancellation policy.
        company_name: the business's name.
        company_phone: the business's phone number.
    """

    booking_id: int
    reference: str
    contact_id: int | None
    customer_name: str
    first_name: str
    customer_phone: str | None
    tour_name: str
    description: str
    tour_date: dt.date
    start_time: dt.time
    starts_at: dt.datetime
    duration_minutes: int
    meeting_point: str
    meeting_address: str
    latitude: float | None
    longitude: float | None
    guide_name: str
    guide_phone: str
    travelers: tuple[TravelerInfo, ...]
    currency: str
    total_cost: Decimal
    paid: Decimal
    balance_due: Decimal
    packing_list: tuple[str, ...]
    weather: WeatherOutlook
    clothing: str
    park_rules: str
    safety: str
    emergency_contacts: tuple[tuple[str, str], ...]
    cancellation_policy: str
    company_name: str
    company_phone: str

    @property
    def missing_ids(self) -> tuple[str, ...]:
        """Names of the travellers whose ID document is missing (or was rejected)."""
        return tuple(
            t.name
            for t in self.travelers
            if t.id_status in (IdStatus.MISSING.value, IdStatus.REJECTED.value)
        )

    @property
    def payment_status(self) -> str:
        """``Fully paid``, ``Partly paid (USD 50.00 of USD 120.00)`` or ``Not paid yet``."""
        if self.balance_due <= 0:
            return "Fully paid"
        if self.paid > 0:
            return (
                f"Partly paid ({format_money(self.paid, self.currency)} of "
                f"{format_money(self.total_cost, self.currency)})"
            )
        return "Not paid yet"

    @property
    def map_link(self) -> str:
        """A Google Maps link to the meeting point."""
        return maps_url(self.latitude, self.longitude, self.meeting_point, self.meeting_address)


@dataclass(frozen=True, slots=True)
class QuickAction:
    """A row of the quick-actions list: the flow it starts, its title and description."""

    flow: str
    title: str
    description: str


def maps_url(latitude: float | None, longitude: float | None, *names: str) -> str:
    """A Google Maps search link: by coordinates when known, else by name and address."""
    if latitude is not None and longitude is not None:
        query = f"{latitude:.6f},{longitude:.6f}"
    else:
        query = ", ".join(n for n in names if n)
    return f"https://www.google.com/maps/search/?api=1&query={quote_plus(query)}"


def _date(day: dt.date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _first_name(name: str) -> str:
    words = name.split()
    return words[0] if words else "there"


async def load_summary_data(
    session: AsyncSession,
    booking_id: int,
    *,
    tz: dt.tzinfo,
    branding: Branding,
    weather: WeatherProvider | None = None,
) -> SummaryData:
    """Assemble a booking's summary data from storage.

    Args:
        session: a transaction.
        booking_id: the booking.
        tz: the business timezone (the app's; tour times are local times in it).
        branding: the business's name and phone number, printed in the summary.
        weather: the weather provider (default: the shipped climate table).

    Raises:
        NotFoundError: there is no such booking.
    """
    found = await load_many_summary_data(
        session, [booking_id], tz=tz, branding=branding, weather=weather
    )
    if booking_id not in found:
        raise NotFoundError(f"no booking {booking_id}")
    return found[booking_id]


BATCH: Final = 500  # bookings per query in load_many_summary_data


async def load_many_summary_data(
    session: AsyncSession,
    booking_ids: Sequence[int],
    *,
    tz: dt.tzinfo,
    branding: Branding,
    weather: WeatherProvider | None = None,
) -> dict[int, SummaryData]:
    """The summary data of many bookings, three queries per :data:`BATCH` bookings.

    Bookings that do not exist are left out of the result.
    """
    provider = weather or default_provider()
    result: dict[int, SummaryData] = {}
    for at in range(0, len(booking_ids), BATCH):
        ids = list(booking_ids[at : at + BATCH])
        rows = (
            await session.execute(
                select(Booking, Customer, Tour, Departure)
                .join(Customer, Customer.id == Booking.customer_id)
                .join(Tour, Tour.id == Booking.tour_id)
                .join(Departure, Departure.id == Booking.departure_id)
                .where(Booking.id.in_(ids))
            )
        ).all()
        travelers: dict[int, list[TravelerInfo]] = {i: [] for i in ids}
        for traveler in await session.scalars(
            select(Traveler)
            .where(Traveler.booking_id.in_(ids))
            .order_by(Traveler.booking_id, Traveler.position)
        ):
            travelers[traveler.booking_id].append(
                TravelerInfo(traveler.full_name, str(traveler.id_status.value))
            )
        sums = await session.execute(
            select(Payment.booking_id, func.sum(Payment.amount))
            .where(Payment.booking_id.in_(ids), Payment.status.in_(PAID_STATUSES))
            .group_by(Payment.booking_id)
        )
        # (not dict(result): a Result has keys(), the column names, so dict() misreads it)
        paid_sums: dict[int, Decimal] = {row[0]: row[1] for row in sums}
        for booking, customer, tour, departure in rows:
            paid = Decimal(paid_sums.get(booking.id) or 0).quantize(Decimal("0.01"))
            result[booking.id] = _summary_data(
                booking, customer, tour, departure,
                travelers=travelers[booking.id], paid=paid, tz=tz, provider=provider,
                branding=branding,
            )  # fmt: skip
    return result


def _summary_data(
    booking: Booking,
    customer: Customer,
    tour: Tour,
    departure: Departure,
    *,
    travelers: Sequence[TravelerInfo],
    paid: Decimal,
    tz: dt.tzinfo,
    provider: WeatherProvider,
    branding: Branding,
) -> SummaryData:
    # The tour's own location: its coordinates when known, else its name before its
    # meeting point before its address (an address may name a road to another town).
    place = "\n".join((tour.name, tour.meeting_point, tour.meeting_address))
    coordinates = (
        (tour.meeting_latitude, tour.meeting_longitude)
        if tour.meeting_latitude is not None and tour.meeting_longitude is not None
        else None
    )
    outlook = provider.outlook(place, departure.date, coordinates=coordinates)
    clothing = clothing_advice(outlook)
    if tour.clothing_advice:
        clothing += " " + tour.clothing_advice
    return SummaryData(
        booking_id=booking.id,
        reference=booking.reference,
        contact_id=customer.contact_id,
        customer_name=customer.name,
        first_name=_first_name(customer.name),
        customer_phone=customer.phone,
        tour_name=tour.name,
        description=tour.description,
        tour_date=departure.date,
        start_time=tour.start_time,
        starts_at=dt.datetime.combine(departure.date, tour.start_time, tz),
        duration_minutes=tour.duration_minutes,
        meeting_point=tour.meeting_point,
        meeting_address=tour.meeting_address,
        latitude=tour.meeting_latitude,
        longitude=tour.meeting_longitude,
        guide_name=tour.guide_name,
        guide_phone=tour.guide_phone,
        travelers=tuple(travelers),
        currency=booking.currency,
        total_cost=booking.total_cost,
        paid=paid,
        balance_due=max(booking.total_cost - paid, Decimal("0.00")),
        packing_list=tuple(tour.packing_list or ()),
        weather=outlook,
        clothing=clothing,
        park_rules=tour.park_rules,
        safety=tour.safety_guidelines,
        emergency_contacts=tuple(
            (str(c.get("name", "")), str(c.get("phone", ""))) for c in tour.emergency_contacts
        ),
        cancellation_policy=tour.cancellation_policy,
        company_name=branding.company_name,
        company_phone=branding.phone or "",
    )


# --- text ---------------------------------------------------------------------------------


def _guide(data: SummaryData) -> str:
    if not data.guide_name:
        return "👤 Guide: to be confirmed (we'll send their name and number)"
    phone = f", {data.guide_phone}" if data.guide_phone else ""
    return f"👤 Guide: {data.guide_name}{phone}"


def _meeting(data: SummaryData) -> list[str]:
    lines = [f"📍 Meeting point: {data.meeting_point}"]
    if data.meeting_address:
        lines.append(f"    {data.meeting_address}")
    lines.append(f"    Map: {data.map_link}")
    return lines


def _tour_details(data: SummaryData, heading: str) -> str:
    lines = [heading, "", f"*🦁 {data.tour_name}*"]
    if data.description:
        lines.append(data.description)
    lines += [
        "",
        f"📅 Date: {_date(data.tour_date)}",
        f"🕗 Time: {data.start_time:%H:%M} (please arrive 15 minutes early)",
        f"⏱️ Duration: {format_duration(data.duration_minutes * 60)}",
        *_meeting(data),
        _guide(data),
    ]
    return "\n".join(lines)


def _booking_info(data: SummaryData) -> str:
    lines = ["*🧾 Your booking*", f"Reference: {data.reference}", "Travellers:"]
    for traveler in data.travelers:
        mark = "✅ ID received" if traveler.name not in data.missing_ids else "⚠️ ID missing"
        lines.append(f"• {traveler.name} ({mark})")
    lines.append(f"Payment status: {data.payment_status}")
    lines.append(f"Balance due: {format_money(data.balance_due, data.currency)}")
    return "\n".join(lines)


def _preparation(data: SummaryData) -> str:
    lines = ["*🎒 Preparation*", "Packing list:"]
    items = data.packing_list or ("water bottle", "sunscreen", "hat", "camera")
    lines += [f"• {item}" for item in items]
    lines += ["", f"🌤️ {data.weather.text()}", "", f"👕 Clothing: {data.clothing}"]
    return "\n".join(lines)


def _contacts(data: SummaryData) -> list[str]:
    lines = [f"• {name}: {phone}" for name, phone in data.emergency_contacts if name or phone]
    if data.company_phone and all(data.company_phone != p for _n, p in data.emergency_contacts):
        lines.append(f"• {data.company_name}: {data.company_phone}")
    return lines


def _important(data: SummaryData) -> str:
    lines = ["*⚠️ Important information*"]
    if data.park_rules:
        lines += ["Park rules:", data.park_rules]
    if data.safety:
        lines += ["Safety:", data.safety]
    lines.append("Emergency contacts:")
    lines += _contacts(data) or ["• our team, by replying here"]
    if data.cancellation_policy:
        lines += ["Cancellation policy:", data.cancellation_policy]
    return "\n".join(lines)


def _missing(data: SummaryData) -> list[str]:
    items = []
    if data.balance_due > 0:
        items.append(f"💳 Balance due: {format_money(data.balance_due, data.currency)}")
    if data.missing_ids:
        items.append("🪪 Traveller IDs missing: " + ", ".join(data.missing_ids))
    if not data.customer_phone:
        items.append("📇 Your contact details: please add a phone number")
    return items


def summary_sections(data: SummaryData, days: int, *, full: bool = False) -> list[str]:
    """The summary's text sections for ``days`` before the tour.

    Args:
        data: the booking's data.
        days: 7 (or any other number): the full summary; 3: a final check of what is
            still missing; 1: last-minute details.

    Returns:
        Sections in order; :func:`pack_messages` fits them into messages.
    """
    name = data.first_name
    if days == 1 and not full:
        lines = [
            f"Hi {name}! 🌅 Your *{data.tour_name}* is tomorrow, {_date(data.tour_date)}.",
            "",
            f"🕗 Meet at {data.start_time:%H:%M} (please be there 15 minutes early)",
            *_meeting(data),
            "",
            f"🌤️ {data.weather.text()}",
            f"👕 {data.clothing}",
            "",
            _guide(data),
        ]
        missing = _missing(data)
        if missing:
            lines += ["", "Still open:", *missing]
        lines += ["", f"Booking {data.reference}. Have a wonderful safari! 🦒"]
        return ["\n".join(lines)]
    if days == 3 and not full:
        lines = [
            f"Hi {name}! Your *{data.tour_name}* on {_date(data.tour_date)} is {days} days "
            f"away. A final check of booking {data.reference}:",
            "",
        ]
        missing = _missing(data)
        if missing:
            lines += ["Still missing:", *missing, "", "Use the options below to sort it out."]
        else:
            lines.append("✅ Everything is in order: fully paid and all IDs received.")
        lines += ["", f"📅 {_date(data.tour_date)} at {data.start_time:%H:%M}"]
        lines += _meeting(data)
        return ["\n".join(lines)]
    when = {0: "today", 1: "tomorrow"}.get(days, f"in {days} days")
    heading = f"Hi {name}! 🌍 Here is the summary of your upcoming safari ({when})."
    return [
        _tour_details(data, heading),
        _booking_info(data),
        _preparation(data),
        _important(data),
    ]


def id_reminder_text(data: SummaryData) -> str:
    """A reminder listing the travellers whose ID document is still missing."""
    starts = f"{_date(data.tour_date)} at {data.start_time:%H:%M}"
    lines = [
        f"Hi {data.first_name}, your *{data.tour_name}* starts {starts} and we still need "
        f"an ID document (passport or national ID) for:",
        *[f"• {name}" for name in data.missing_ids],
        "",
        f"Booking {data.reference}. Tap *Upload IDs* to send a photo of each, right here.",
    ]
    return "\n".join(lines)


def quick_actions(data: SummaryData, days: int, *, full: bool = False) -> list[QuickAction]:
    """The quick actions to offer: all four in the full summary, what is needed at 3 days."""
    pay = QuickAction(
        "payment_flow",
        "Pay balance",
        f"{format_money(data.balance_due, data.currency)} due"
        if data.balance_due > 0
        else "Fully paid: see your payments",
    )
    details = QuickAction("update_details_flow", "Update details", "Name, e-mail or phone")
    ids = QuickAction(
        "id_upload_flow",
        "Upload IDs",
        f"{len(data.missing_ids)} missing" if data.missing_ids else "All received",
    )
    support = QuickAction("support_flow", "Contact support", "A person from our team replies")
    if days == 3 and not full:
        needed = []
        if data.balance_due > 0:
            needed.append(pay)
        if data.missing_ids:
            needed.append(ids)
        if not data.customer_phone:
            needed.append(details)
        return [*needed, support]
    if days == 1 and not full:
        return []
    return [pay, details, ids, support]


def _split_long(section: str, limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for raw in section.split("\n"):
        line = raw
        while len(line) > limit:
            chunks += [current] if current else []
            current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


def pack_messages(sections: Iterable[str], limit: int = TEXT_LIMIT) -> list[str]:
    """Join sections (blank line between) into as few messages as fit under ``limit``.

    A section longer than the limit is split at line breaks (a line longer than the limit
    is cut into pieces).
    """
    messages: list[str] = []
    current = ""
    for section in sections:
        for chunk in _split_long(section.strip(), limit):
            candidate = f"{current}\n\n{chunk}" if current else chunk
            if len(candidate) > limit:
                messages.append(current)
                current = chunk
            else:
                current = candidate
    if current:
        messages.append(current)
    return [m for m in messages if m.strip()]


# --- fallback templates -------------------------------------------------------------------


def template_values(data: SummaryData) -> dict[str, str]:
    """The values a summary or reminder template may use, by name."""
    return {
        "first_name": data.first_name,
        "customer_name": data.customer_name,
        "tour_name": data.tour_name,
        "tour_date": _date(data.tour_date),
        "tour_time": f"{data.start_time:%H:%M}",
        "reference": data.reference,
        "missing_ids": ", ".join(data.missing_ids),
    }


def summary_template_key(days: int) -> str:
    """``tour_summary_7d`` for the configured days, else the generic ``tour_summary``."""
    return f"tour_summary_{days}d" if days in SUMMARY_DAYS else "tour_summary"
