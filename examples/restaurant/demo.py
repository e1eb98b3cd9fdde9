"""Demo data: a few reservations on the next open days (``nyala demo-data``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from flows.runtime import Runtime
from storage import utcnow

from .models import Reservation

# (days from today, sitting, table, guests, name, phone)
_DEMO = (
    (1, "19:30", "T3", 4, "Rudo Chikwanha", "+263772123456"),
    (1, "19:30", "T5", 6, "Farai Moyo", "+263773000111"),
    (1, "12:00", "T1", 2, "Ana Dube", "+263774000222"),
    (2, "18:00", "T6", 9, "Harare Book Club", "+263775000333"),
)


def _open_day(day: dt.date, ahead: int) -> dt.date:
    """The ``ahead``-th day after ``day`` on which dinner is served (not Sun or Mon)."""
    found = 0
    while found < ahead:
        day += dt.timedelta(days=1)
        if day.weekday() not in (0, 6):
            found += 1
    return day


async def load_demo(runtime: Runtime) -> str:
    """Add the demo reservations that are missing (idempotent); say what is there."""
    today = runtime.app.today(utcnow())
    added = 0
    async with runtime.db.transaction() as session:
        for n, (ahead, sitting, table, guests, name, phone) in enumerate(_DEMO, start=1):
            reference = f"MG-DEMO{n:02d}"
            known = select(Reservation.id).where(Reservation.reference == reference)
            if await session.scalar(known) is not None:
                continue
            session.add(
                Reservation(
                    reference=reference,
                    table_code=table,
                    day=_open_day(today, ahead),
                    sitting=sitting,
                    party_size=guests,
                    guest_name=name,
                    phone=phone,
                    set_menu=guests >= 7,
                )
            )
            added += 1
    first = _open_day(today, 1)
    return (
        f"{len(_DEMO)} demo reservations ({added} new); "
        f"see them with: nyala --app examples/restaurant reservations --day {first}"
    )
