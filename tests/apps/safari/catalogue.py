"""Catalogue rows for the safari tests, built with the storage models."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari.models import Departure, Tour
from storage import Contact, get_or_create_contact


async def add_tour(
    session: AsyncSession,
    *,
    code: str = "falls",
    name: str = "Victoria Falls guided tour",
    price: str = "60.00",
    departures: tuple[tuple[dt.date, int, int], ...] = (),
) -> tuple[Tour, list[Departure]]:
    """A tour with departures given as ``(date, capacity, seats_left)``."""
    tour = Tour(
        code=code, name=name, description="Walk the rainforest trail along the falls.",
        duration_minutes=150, start_time=dt.time(8, 0), meeting_point="Falls entrance",
        meeting_address="Livingstone Way, Victoria Falls", meeting_latitude=-17.9243,
        meeting_longitude=25.8572, guide_name="Tendai Moyo", guide_phone="+263771000111",
        price_per_person=Decimal(price), currency="USD", packing_list=["raincoat"],
        emergency_contacts=[{"name": "Park office", "phone": "+263832844000"}],
    )  # fmt: skip
    session.add(tour)
    await session.flush()
    rows = [
        Departure(tour_id=tour.id, date=day, capacity=capacity, seats_left=left)
        for day, capacity, left in departures
    ]
    session.add_all(rows)
    await session.flush()
    return tour, rows


async def add_contact(session: AsyncSession, wa_id: str = "263770000321") -> Contact:
    """A WhatsApp contact."""
    return await get_or_create_contact(session, wa_id=wa_id, profile_name="Rudo")
