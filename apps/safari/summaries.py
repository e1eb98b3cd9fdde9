"""Pre-tour summaries, ID reminders and the *summary* intent of the safari bot.

The content comes from :mod:`apps.safari.documents.summaries` (data, then text); this
module turns it into WhatsApp messages and queues them:

* :func:`due_summary_bookings` / :func:`due_id_reminder_bookings` pick the bookings;
* :func:`deliver` queues one booking's messages in ONE transaction together with its
  :class:`storage.Notification` row, inserted first: its unique ``(booking_id, kind,
  key)`` makes a second or concurrent run fail on insert and skip the booking, so a
  customer never gets the same summary or reminder twice;
* every queued row carries ``fallback``, the approved template of ``templates.yaml``,
  which the outbox sends instead when the customer's 24-hour window is closed;
* :func:`send_summary_on_request` answers *send my summary* in the chat with the full
  summary of the customer's next booking (on demand, no notification record), and
  :func:`summary_on_tap` the quick-reply buttons of the summary templates (the app
  registers both as intents).

Dates are the app's: every function takes the business timezone and the documents
service (:class:`~apps.safari.documents.SafariDocuments`) of the running app.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari.common import linked_customer
from apps.safari.documents.itinerary import store_itinerary
from apps.safari.documents.service import TEMPLATES_FILE, SafariDocuments
from apps.safari.documents.summaries import (
    SummaryData,
    id_reminder_text,
    load_many_summary_data,
    load_summary_data,
    pack_messages,
    quick_actions,
    summary_sections,
    summary_template_key,
    template_values,
)
from apps.safari.models import (
    ID_REMINDER,
    TOUR_SUMMARY,
    Booking,
    BookingStatus,
    Customer,
    Departure,
    IdStatus,
    Notification,
    Tour,
    Traveler,
)
from flows import FlowContext
from flows.app import IntentHandler
from flows.messages import (
    Buttons,
    Document,
    ListMenu,
    LocationPin,
    Option,
    Reply,
    Template,
    Text,
    reply_kind,
)
from flows.outreach import Delivery, configured_template, in_window, queue_outreach
from storage import Contact, Database, utcnow

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
    "summary_on_tap",
    "summary_replies",
]

log = logging.getLogger("nyala.safari.summaries")


class Outcome(enum.StrEnum):
    """What happened to one booking in a run."""

    QUEUED = "queued"  # the content, inside the customer's 24-hour window
    TEMPLATE = "template"  # the approved template; the content follows the customer's tap
    SKIPPED = "skipped"  # already sent (the notification exists)
    NO_WHATSAPP = "no_whatsapp"  # the customer has no WhatsApp contact: nothing to send
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
    messages: tuple[str, ...]  # "text", "location", "pdf", "list"; "template" alone
    already_sent: bool
    whatsapp: bool = True  # False: the customer has no WhatsApp contact, nothing is sent


# --- messages ---------------------------------------------------------------------------


def fallback_template(key: str, data: SummaryData) -> Template:
    """The approved template configured under ``key`` in ``templates.yaml``."""
    return configured_template(TEMPLATES_FILE, key, template_values(data))


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


def _today(now: dt.datetime, tz: dt.tzinfo) -> dt.date:
    return now.astimezone(tz).date()


async def due_summary_bookings(
    session: AsyncSession, days: int, *, now: dt.datetime, tz: dt.tzinfo
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
    session: AsyncSession, hours: int, *, now: dt.datetime, tz: dt.tzinfo
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


def _with_itinerary(kind: str, amount: int) -> bool:
    """The full summary (7 days, or any timing but the 3- and 1-day checks) carries the PDF."""
    return kind != ID_REMINDER and amount not in (3, 1)


async def _itinerary_document(
    session: AsyncSession, data: SummaryData, documents: SafariDocuments, now: dt.datetime
) -> Document | None:
    """The booking's PDF itinerary, rendered and stored in a savepoint; ``None`` (logged)
    if it cannot be made: the summary's text matters more than its attachment."""
    try:
        async with session.begin_nested():
            file = await store_itinerary(session, data, documents, now=now)
    except Exception:
        log.exception("no itinerary PDF for booking %s", data.reference)
        return None
    caption = f"📄 Your itinerary for {data.tour_name} on {data.tour_date:%d %b %Y}."
    return Document(file.id, file.filename, caption)


def _with_document(replies: list[Reply], document: Document | None) -> list[Reply]:
    """``replies`` with the document before the quick actions (the last list), if any."""
    if document is None:
        return replies
    if replies and isinstance(replies[-1], ListMenu):
        return [*replies[:-1], document, replies[-1]]
    return [*replies, document]


async def plan(
    db: Database,
    booking_ids: list[int],
    *,
    kind: str,
    key: str,
    amount: int,
    documents: SafariDocuments,
    now: dt.datetime | None = None,
) -> list[Planned]:
    """What each booking would get, read only (``--dry-run``): exactly what :func:`deliver`
    would queue (the template alone when the customer's 24-hour window is closed, nothing
    for a customer without WhatsApp), rendering nothing.

    Args:
        db: the database.
        booking_ids: the due bookings.
        kind: ``tour_summary`` or ``id_reminder``.
        key: the notification key (``7d``, ``48h``).
        amount: the days (summaries) or hours (reminders) before the tour.
        documents: the app's timezone and branding.
        now: the time of the run (default: now).
    """
    when = now or utcnow()
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
        windows = await _last_inbound(session, booking_ids)
        loaded = await load_many_summary_data(
            session, booking_ids, tz=documents.tz, branding=documents.branding()
        )
        for booking_id in booking_ids:
            data = loaded[booking_id]
            if data.contact_id is None:
                messages: tuple[str, ...] = ()
            elif not in_window(windows.get(booking_id), when):
                messages = ("template",)
            else:
                replies, _template = _replies(data, kind, amount)
                kinds = [reply_kind(r) for r in replies]
                if _with_itinerary(kind, amount):
                    kinds.insert(len(kinds) - 1 if kinds[-1] == "list" else len(kinds), "pdf")
                messages = tuple(kinds)
            planned.append(
                Planned(
                    booking_id=booking_id,
                    reference=data.reference,
                    phone=data.customer_phone or "-",
                    tour=data.tour_name,
                    date=data.tour_date,
                    when=key,
                    messages=messages,
                    already_sent=booking_id in sent,
                    whatsapp=data.contact_id is not None,
                )
            )
    return planned


async def _last_inbound(session: AsyncSession, booking_ids: list[int]) -> dict[int, dt.datetime]:
    """When each booking's customer last wrote on WhatsApp (absent: never)."""
    rows = await session.execute(
        select(Booking.id, Contact.last_inbound_at)
        .join(Customer, Customer.id == Booking.customer_id)
        .join(Contact, Contact.id == Customer.contact_id)
        .where(Booking.id.in_(booking_ids), Contact.last_inbound_at.is_not(None))
    )
    return {booking_id: last for booking_id, last in rows if last is not None}


async def deliver(
    db: Database,
    booking_id: int,
    *,
    kind: str,
    key: str,
    amount: int,
    sandbox: bool,
    documents: SafariDocuments,
    now: dt.datetime | None = None,
) -> Outcome:
    """Queue one booking's summary or reminder with its notification, in one transaction.

    The notification row is inserted (and flushed) first: if it exists, the insert fails
    and nothing is queued (``SKIPPED``); on PostgreSQL a concurrent run waits on the
    unique index until this transaction ends, then fails the same way. Inside the
    customer's 24-hour window the messages are queued (the full summary with its PDF
    itinerary); outside it, the approved template alone, whose button asks for them
    (:mod:`flows.outreach`).

    Args:
        db: the database.
        booking_id: the booking.
        kind: ``tour_summary`` or ``id_reminder``.
        key: the notification key (``7d``, ``48h``).
        amount: the days (summaries) or hours (reminders) before the tour.
        sandbox: store the rows as ``sandbox`` (never sent) instead of ``queued``.
        documents: the app's renderer, timezone and branding.
        now: the time of the run (default: now).

    Returns:
        ``QUEUED``, ``TEMPLATE`` (window closed), ``SKIPPED`` (already sent),
        ``NO_WHATSAPP`` (nothing written: a later run, after the customer wrote, sends
        it) or ``FAILED`` (logged).
    """
    when = now or utcnow()
    try:
        async with db.transaction() as session:
            session.add(Notification(booking_id=booking_id, kind=kind, key=key, created_at=when))
            await session.flush()
            data = await load_summary_data(
                session, booking_id, tz=documents.tz, branding=documents.branding()
            )
            if data.contact_id is None:
                raise _NoWhatsAppError
            replies, template_key = _replies(data, kind, amount)
            template = fallback_template(template_key, data)
            last = await session.scalar(
                select(Contact.last_inbound_at).where(Contact.id == data.contact_id)
            )
            if _with_itinerary(kind, amount) and in_window(last, when):
                document = await _itinerary_document(session, data, documents, when)
                replies = _with_document(replies, document)
            delivery = await queue_outreach(
                session, data.contact_id, replies, template=template, now=when, sandbox=sandbox
            )
    except IntegrityError:
        return Outcome.SKIPPED
    except _NoWhatsAppError:
        log.warning("%s %s for booking %s: the customer has no WhatsApp", kind, key, booking_id)
        return Outcome.NO_WHATSAPP
    except Exception:
        log.exception("%s %s for booking %s failed", kind, key, booking_id)
        return Outcome.FAILED
    return Outcome.QUEUED if delivery is Delivery.DIRECT else Outcome.TEMPLATE


class _NoWhatsAppError(Exception):
    """The booking's customer has no WhatsApp contact (rolls the notification back)."""


async def send_all(
    db: Database,
    booking_ids: list[int],
    *,
    kind: str,
    key: str,
    amount: int,
    sandbox: bool,
    documents: SafariDocuments,
    now: dt.datetime | None = None,
) -> dict[Outcome, int]:
    """:func:`deliver` each booking in turn; returns how many ended how."""
    counts = dict.fromkeys(Outcome, 0)
    for booking_id in booking_ids:
        outcome = await deliver(
            db, booking_id, kind=kind, key=key, amount=amount, sandbox=sandbox,
            documents=documents, now=now,
        )  # fmt: skip
        counts[outcome] += 1
    return counts


# --- the chat -----------------------------------------------------------------------------


async def _next_booking(ctx: FlowContext) -> int | None:
    """The contact's next upcoming confirmed or pending booking."""
    customer = await linked_customer(ctx)
    if customer is None:
        return None
    booking_id: int | None = await ctx.session.scalar(
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
    return booking_id


async def _send_next_summary(ctx: FlowContext, days: int | None) -> None:
    """Reply with the summary of the contact's next booking: for ``days`` (7, 3, 1: what
    the template the customer tapped promised), or the full one (``None``, on request)."""
    booking_id = await _next_booking(ctx)
    if booking_id is None:
        ctx.reply(
            "You have no upcoming tour booked, so there is no summary to send. "
            "Type *book* to book a tour, or *menu* for anything else."
        )
        return
    documents = ctx.services.get(SafariDocuments)
    data = await load_summary_data(
        ctx.session, booking_id, tz=documents.tz, branding=documents.branding()
    )
    full = days is None
    timing = (data.tour_date - ctx.today).days if days is None else days
    replies = summary_replies(data, timing, full=full)
    if full or _with_itinerary(TOUR_SUMMARY, timing):
        document = await _itinerary_document(ctx.session, data, documents, ctx.now)
        replies = _with_document(replies, document)
    for reply in replies:
        ctx.reply(reply)


async def send_summary_on_request(ctx: FlowContext) -> None:
    """Reply with the full summary (and PDF itinerary) of the contact's next booking."""
    await _send_next_summary(ctx, None)


def summary_on_tap(days: int) -> IntentHandler:
    """The handler of a summary template's quick-reply button: the ``days`` summary."""

    async def handler(ctx: FlowContext) -> None:
        await _send_next_summary(ctx, days)

    handler.__name__ = handler.__qualname__ = f"send_summary_{days}d"
    return handler
