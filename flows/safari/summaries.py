"""Pre-tour summaries, ID reminders and the *summary* intent of the safari bot.

The content comes from :mod:`documents.summaries` (data, then text); this module turns
it into WhatsApp messages and queues them:

* :func:`due_summary_bookings` / :func:`due_id_reminder_bookings` pick the bookings;
* :func:`deliver` queues one booking's messages in ONE transaction together with its
  :class:`storage.Notification` row, inserted first: its unique ``(booking_id, kind,
  key)`` makes a second or concurrent run fail on insert and skip the booking, so a
  customer never gets the same summary or reminder twice;
* every queued row carries ``fallback``, the approved template of ``templates.yaml``,
  which the outbox sends instead when the customer's 24-hour window is closed;
* the ``summary`` intent answers *send my summary* in the chat with the full summary of
  the customer's next booking (on demand, no notification record).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from documents.summaries import (
    SummaryData,
    id_reminder_text,
    load_summary_data,
    load_template_specs,
    pack_messages,
    quick_actions,
    summary_sections,
    summary_template_key,
    template_parameters,
    template_text,
)
from flows import FlowContext
from flows.messages import (
    Buttons,
    ListMenu,
    LocationPin,
    Option,
    Reply,
    Template,
    Text,
    reply_kind,
    reply_to_payload,
)
from flows.safari import app
from flows.safari.common import linked_customer
from storage import (
    ID_REMINDER,
    Booking,
    BookingStatus,
    Database,
    Departure,
    IdStatus,
    Notification,
    OutboundMessage,
    OutboundStatus,
    Tour,
    Traveler,
    utcnow,
)

__all__ = [
    "Outcome",
    "Planned",
    "deliver",
    "due_id_reminder_bookings",
    "due_summary_bookings",
    "fallback_template",
    "id_reminder_replies",
    "plan",
    "send_summary_on_request",
    "summary_replies",
]

log = logging.getLogger("nyala.summaries")
BUSINESS_TZ = ZoneInfo("Africa/Harare")


class Outcome(enum.StrEnum):
    """What happened to one booking in a run."""

    QUEUED = "queued"
    SKIPPED = "skipped"  # already sent (the notification exists)
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Planned:
    """What one booking would get (for ``--dry-run``)."""

    booking_id: int
    reference: str
    phone: str
    tour: str
    date: dt.date
    when: str  # "7d" or "48h"
    messages: tuple[str, ...]  # "text", "location", "list"...
    already_sent: bool


# --- messages ---------------------------------------------------------------------------


def fallback_template(key: str, data: SummaryData) -> Template:
    """The approved template configured under ``key`` in ``templates.yaml``."""
    spec = load_template_specs()[key]
    return Template(
        spec.name,
        spec.language,
        template_parameters(spec, data),
        fallback=template_text(spec, data),
    )


def _pin(data: SummaryData) -> list[Reply]:
    if data.latitude is None or data.longitude is None:
        return []
    address = data.meeting_address or None
    return [LocationPin(data.latitude, data.longitude, data.meeting_point, address)]


def _actions(data: SummaryData, days: int, *, full: bool) -> list[Reply]:
    actions = quick_actions(data, days, full=full)
    if not actions:
        return []
    options = tuple(Option(f"flow:{a.flow}", a.title, a.description) for a in actions)
    return [
        ListMenu(
            "⚡ Quick actions: tap *Actions* to pay, update your details, upload IDs or "
            "talk to our team.",
            options,
            button="Actions",
            section_title="Quick actions",
        )
    ]


def summary_replies(data: SummaryData, days: int, *, full: bool = False) -> list[Reply]:
    """The summary's messages: texts (each under 4096 characters), the meeting point's
    pin after the first text, then the quick actions (none the day before)."""
    texts: list[Reply] = [
        Text(body) for body in pack_messages(summary_sections(data, days, full=full))
    ]
    if days == 3 and not full:
        return [*texts, *_actions(data, days, full=full)]
    return [*texts[:1], *_pin(data), *texts[1:], *_actions(data, days, full=full)]


def id_reminder_replies(data: SummaryData) -> list[Reply]:
    """The ID reminder: who is missing, with an *Upload IDs* button (and support)."""
    options = (
        Option("flow:id_upload_flow", "Upload IDs"),
        Option("flow:support_flow", "Talk to a person"),
    )
    return [Buttons(id_reminder_text(data), options)]


# --- choosing bookings ------------------------------------------------------------------


def _today(now: dt.datetime, tz: ZoneInfo) -> dt.date:
    return now.astimezone(tz).date()


async def due_summary_bookings(
    session: AsyncSession, days: int, *, now: dt.datetime, tz: ZoneInfo = BUSINESS_TZ
) -> list[int]:
    """Confirmed bookings whose departure is exactly ``days`` days away (in ``tz``)."""
    day = _today(now, tz) + dt.timedelta(days=days)
    ids = await session.scalars(
        select(Booking.id)
        .join(Departure, Departure.id == Booking.departure_id)
        .where(Booking.status == BookingStatus.CONFIRMED, Departure.date == day)
        .order_by(Booking.id)
    )
    return list(ids)


async def due_id_reminder_bookings(
    session: AsyncSession, hours: int, *, now: dt.datetime, tz: ZoneInfo = BUSINESS_TZ
) -> list[int]:
    """Confirmed bookings with a traveller's ID missing whose tour starts within ``hours``.

    The tour starts at the departure's date and the tour's start time, local in ``tz``.
    """
    today = _today(now, tz)
    last = (now + dt.timedelta(hours=hours)).astimezone(tz).date()
    missing = (
        select(Traveler.id)
        .where(Traveler.booking_id == Booking.id, Traveler.id_status == IdStatus.MISSING)
        .exists()
    )
    rows = await session.execute(
        select(Booking.id, Departure.date, Tour.start_time)
        .join(Departure, Departure.id == Booking.departure_id)
        .join(Tour, Tour.id == Booking.tour_id)
        .where(
            Booking.status == BookingStatus.CONFIRMED,
            Departure.date >= today,
            Departure.date <= last,
            missing,
        )
        .order_by(Booking.id)
    )
    end = now + dt.timedelta(hours=hours)
    return [
        booking_id
        for booking_id, day, start in rows
        if now < dt.datetime.combine(day, start, tz) <= end
    ]


# --- planning and delivering --------------------------------------------------------------


def _replies(data: SummaryData, kind: str, amount: int) -> tuple[list[Reply], str]:
    if kind == ID_REMINDER:
        return id_reminder_replies(data), "id_reminder"
    return summary_replies(data, amount), summary_template_key(amount)


async def plan(
    db: Database,
    booking_ids: list[int],
    *,
    kind: str,
    key: str,
    amount: int,
    tz: ZoneInfo = BUSINESS_TZ,
) -> list[Planned]:
    """What each booking would get, read only (``--dry-run``).

    Args:
        db: the database.
        booking_ids: the due bookings.
        kind: ``tour_summary`` or ``id_reminder``.
        key: the notification key (``7d``, ``48h``).
        amount: the days (summaries) or hours (reminders) before the tour.
        tz: the business timezone.
    """
    planned = []
    async with db.read() as session:
        sent = set(
            await session.scalars(
                select(Notification.booking_id).where(
                    Notification.kind == kind,
                    Notification.key == key,
                    Notification.booking_id.in_(booking_ids),
                )
            )
        )
        for booking_id in booking_ids:
            data = await load_summary_data(session, booking_id, tz=tz)
            replies, _template = _replies(data, kind, amount)
            planned.append(
                Planned(
                    booking_id=booking_id,
                    reference=data.reference,
                    phone=data.customer_phone or "-",
                    tour=data.tour_name,
                    date=data.tour_date,
                    when=key,
                    messages=tuple(reply_kind(r) for r in replies),
                    already_sent=booking_id in sent,
                )
            )
    return planned


async def deliver(
    db: Database,
    booking_id: int,
    *,
    kind: str,
    key: str,
    amount: int,
    sandbox: bool,
    now: dt.datetime | None = None,
    tz: ZoneInfo = BUSINESS_TZ,
) -> Outcome:
    """Queue one booking's summary or reminder with its notification, in one transaction.

    The notification row is inserted (and flushed) first: if it exists, the insert fails
    and nothing is queued (``SKIPPED``); on PostgreSQL a concurrent run waits on the
    unique index until this transaction ends, then fails the same way.

    Args:
        db: the database.
        booking_id: the booking.
        kind: ``tour_summary`` or ``id_reminder``.
        key: the notification key (``7d``, ``48h``).
        amount: the days (summaries) or hours (reminders) before the tour.
        sandbox: store the rows as ``sandbox`` (never sent) instead of ``queued``.
        now: the time of the run (default: now).
        tz: the business timezone.

    Returns:
        ``QUEUED``, ``SKIPPED`` (already sent) or ``FAILED`` (logged; e.g. the customer
        has no WhatsApp contact).
    """
    when = now or utcnow()
    try:
        async with db.transaction() as session:
            session.add(Notification(booking_id=booking_id, kind=kind, key=key, created_at=when))
            await session.flush()
            data = await load_summary_data(session, booking_id, tz=tz)
            if data.contact_id is None:
                raise LookupError(f"booking {data.reference}: the customer has no WhatsApp")
            replies, template_key = _replies(data, kind, amount)
            fallback = reply_to_payload(fallback_template(template_key, data))
            for reply in replies:
                session.add(
                    OutboundMessage(
                        contact_id=data.contact_id,
                        inbound_id=None,
                        kind=reply_kind(reply),
                        payload=reply_to_payload(reply),
                        status=OutboundStatus.SANDBOX if sandbox else OutboundStatus.QUEUED,
                        created_at=when,
                        next_attempt_at=None if sandbox else when,
                        fallback=fallback,
                    )
                )
    except IntegrityError:
        return Outcome.SKIPPED
    except Exception:
        log.exception("%s %s for booking %s failed", kind, key, booking_id)
        return Outcome.FAILED
    return Outcome.QUEUED


async def send_all(
    db: Database,
    booking_ids: list[int],
    *,
    kind: str,
    key: str,
    amount: int,
    sandbox: bool,
    now: dt.datetime | None = None,
    tz: ZoneInfo = BUSINESS_TZ,
) -> dict[Outcome, int]:
    """:func:`deliver` each booking in turn; returns how many ended how."""
    counts = dict.fromkeys(Outcome, 0)
    for booking_id in booking_ids:
        outcome = await deliver(
            db, booking_id, kind=kind, key=key, amount=amount, sandbox=sandbox, now=now, tz=tz
        )
        counts[outcome] += 1
    return counts


# --- the chat -----------------------------------------------------------------------------


async def send_summary_on_request(ctx: FlowContext) -> None:
    """Reply with the full summary of the contact's next upcoming booking (or say none)."""
    customer = await linked_customer(ctx)
    booking_id = None
    if customer is not None:
        booking_id = await ctx.session.scalar(
            select(Booking.id)
            .join(Departure, Departure.id == Booking.departure_id)
            .where(
                Booking.customer_id == customer.id,
                Booking.status.in_((BookingStatus.CONFIRMED, BookingStatus.PENDING)),
                Departure.date >= ctx.today,
            )
            .order_by(Departure.date, Booking.id)
            .limit(1)
        )
    if booking_id is None:
        ctx.reply(
            "You have no upcoming tour booked, so there is no summary to send. "
            "Type *book* to book a tour, or *menu* for anything else."
        )
        return
    data = await load_summary_data(ctx.session, booking_id, tz=ctx.app.timezone)
    days = (data.tour_date - ctx.today).days
    for reply in summary_replies(data, days, full=True):
        ctx.reply(reply)


app.intent(
    "summary",
    ["summary", "my summary", "tour summary", "send my summary"],
    handler=send_summary_on_request,
    description="get the summary of your next tour",
)
