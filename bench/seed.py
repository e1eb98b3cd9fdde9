"""Bulk data for the benchmarks: bookings with paid payments (the safari app's tables),
stored conversations (the framework's).

Rows go in with Core multi-row inserts (or ``generate_series`` for the millions), never
through the application, so seeding stays out of every timed figure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import asyncpg
from sqlalchemy import Table, insert

from apps.safari.models import (
    Booking,
    BookingStatus,
    Customer,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Traveler,
)
from storage import Contact, Database, utcnow
from tests.apps.safari.catalogue import add_tour

_CHUNK = 2_000


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


@dataclass(frozen=True, slots=True)
class SeededBookings:
    """What :func:`bookings` stored."""

    booking_ids: list[int]
    payment_ids: list[int]
    departure_date: dt.date


async def _insert(db: Database, model: type[Any], rows: list[dict[str, Any]]) -> list[int]:
    table = _table(model)
    ids: list[int] = []
    async with db.transaction() as session:
        for start in range(0, len(rows), _CHUNK):
            result = await session.execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True),
                rows[start : start + _CHUNK],
            )
            ids.extend(int(i) for i in result.scalars())
    return ids


async def bookings(
    db: Database, count: int, *, tag: str, departure: dt.date, last_inbound_ago: dt.timedelta
) -> SeededBookings:
    """``count`` confirmed bookings of one departure, each with a WhatsApp customer, two
    travellers and one confirmed (paid) Omari payment."""
    now = utcnow()
    async with db.transaction() as session:
        tour, [dep] = await add_tour(
            session,
            code=f"bench-{tag}",
            name="Bench tour",
            departures=((departure, count * 2, 0),),
        )
        tour_id, departure_id = tour.id, dep.id
    wrote = now - last_inbound_ago
    contact_ids = await _insert(
        db,
        Contact,
        [
            {"wa_id": f"2638{tag}{i:06d}", "profile_name": f"Guest {i}", "attributes": {},
             "last_inbound_at": wrote}
            for i in range(count)
        ],
    )  # fmt: skip
    customer_ids = await _insert(
        db,
        Customer,
        [
            {"contact_id": c, "name": f"Guest {i} Moyo", "phone": f"+2638{tag}{i:06d}"}
            for i, c in enumerate(contact_ids)
        ],
    )
    booking_ids = await _insert(
        db,
        Booking,
        [
            {"reference": f"B{tag}{i:07d}"[:20], "customer_id": c, "tour_id": tour_id,
             "departure_id": departure_id, "travelers_count": 2,
             "total_cost": Decimal("120.00"), "currency": "USD",
             "status": BookingStatus.CONFIRMED}
            for i, c in enumerate(customer_ids)
        ],
    )  # fmt: skip
    await _insert(
        db,
        Traveler,
        [
            {"booking_id": b, "position": p, "full_name": f"Traveller {p} of {b}"}
            for b in booking_ids
            for p in (1, 2)
        ],
    )
    payment_ids = await _insert(
        db,
        Payment,
        [
            {"booking_id": b, "amount": Decimal("120.00"), "currency": "USD",
             "method": PaymentMethod.OMARI, "status": PaymentStatus.CONFIRMED,
             "provider_reference": f"OM-{tag}-{b}", "paid_at": now}
            for b in booking_ids
        ],
    )  # fmt: skip
    return SeededBookings(booking_ids, payment_ids, departure)


async def conversations(conn: asyncpg.Connection, count: int, *, prefix: str) -> None:
    """``count`` (at most a million) contacts ``<prefix><6 digits>``, each with a stored
    conversation resting in the café's order flow (a flow session and two step events
    each), in a few ``INSERT ... SELECT``."""
    now = dt.datetime.now(dt.UTC)
    async with conn.transaction():
        first = await conn.fetchval("SELECT coalesce(max(id), 0) FROM contacts")
        await conn.execute(
            """
            INSERT INTO contacts (wa_id, profile_name, attributes, created_at, updated_at,
                                  last_inbound_at)
            SELECT $1 || lpad(g::text, 6, '0'), 'Stored ' || g, '{}', $2, $2, $2
            FROM generate_series(0, $3 - 1) AS g
            """,
            prefix,
            now,
            count,
        )
        await conn.execute(
            """
            INSERT INTO flow_sessions (contact_id, flow_name, flow_version, started_at, status,
                                       context_data, last_activity_at, current_step)
            SELECT id, 'order_flow', 'seed', $2, 'active', '{}', $2, 'ask_size'
            FROM contacts WHERE id > $1
            """,
            first,
            now,
        )
        await conn.execute(
            """
            INSERT INTO conversations (contact_id, flow_name, flow_version, state, data,
                                       flow_session_id, retry_count, created_at, updated_at,
                                       step_entered_at, last_activity_at)
            SELECT s.contact_id, 'order_flow', 'seed', 'ask_size', '{"name": "Ada"}', s.id, 0,
                   $2, $2, $2, $2
            FROM flow_sessions s WHERE s.contact_id > $1
            """,
            first,
            now,
        )
        await conn.execute(
            """
            INSERT INTO flow_step_events (session_id, step_name, action, timestamp, retry_count,
                                          flow_name, flow_version, session_started_at)
            SELECT s.id, step, 'entered', $2, 0, s.flow_name, s.flow_version, s.started_at
            FROM flow_sessions s, unnest(ARRAY['ask_name', 'ask_size']) AS step
            WHERE s.contact_id > $1
            """,
            first,
            now,
        )
    await conn.execute("ANALYZE")
