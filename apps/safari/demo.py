"""Demo data for the safari bot: a realistic catalogue, departures and three bookings.

``nyala demo-data`` (and the first ``nyala chat`` / ``nyala serve`` on a fresh SQLite
database) calls :func:`load_demo_data`, which loads:

* four tours of the fictional operator Savannah Trails Safaris (Victoria Falls, Hwange,
  Mana Pools, Matobo) with everything a pre-tour summary needs;
* their departures for the next :data:`DEPARTURE_DAYS` days (from tomorrow, in the
  business timezone), several a week, capacities 8–16, some nearly full;
* three demo customers with confirmed bookings whose tours start 1, 3 and 7 days from
  today; the one in 7 days belongs to ``263771234567`` (``nyala chat``'s default number).
  Each booking has named travelers (some IDs still missing) and one approved payment
  smaller than its total, so a balance is due.

Idempotency. Demo objects are found by stable keys, never by position: tours by their
``code``, departures by ``(tour, date)``, bookings by ``Booking.notes == "demo:<key>"``
and payments by their booking and bank/cash reference. A second run on the same day
creates nothing and returns the same objects. On a later day a run adds the departures of
the days that came into the window and keeps the existing demo bookings as they are
(same references, their original tour dates, even once those dates have passed, and also
when an operator cancelled them) instead of booking them again: demo data never
duplicates, and objects an operator edited are never overwritten. For bookings 1, 3 and 7
days ahead of a later day, start from a fresh database.

The seats a departure shows as already taken on top of the demo bookings stand for
seats sold by partner agents; they have no booking rows.

All people, guides and phone numbers are fictional (the customers' foreign number is
in Ofcom's drama range), except Zimbabwe's national emergency number 999.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from apps.safari import operations
from apps.safari.models import (
    Booking,
    Customer,
    Departure,
    IdStatus,
    Payment,
    PaymentMethod,
    Tour,
    Traveler,
)
from documents import format_money
from flows.errors import ActionError
from flows.runtime import Runtime
from storage import Contact, Database, NyalaError, get_or_create_contact, lock_name

DEMO_ACTOR = "demo-data"
DEPARTURE_DAYS = 60
NOTES_PREFIX = "demo:"
OPERATOR_LINE = {"name": "Savannah Trails Safaris 24-hour line", "phone": "+263 77 100 2424"}
NATIONAL_EMERGENCY = {
    "name": "Zimbabwe emergency services (police, ambulance, fire)",
    "phone": "999",
}
CANCELLATION_POLICY = (
    "Free cancellation up to 14 days before the tour (full refund). 7 to 13 days before: "
    "50% refund. Less than 7 days before or no-show: no refund, but you may send someone "
    "in your place free of charge. If the park authority or the weather stops the "
    "activity, we move you to another date or refund you in full."
)


class DemoDataError(NyalaError):
    """The demo data cannot be loaded as it is (e.g. a departure it needs is full)."""


@dataclass(frozen=True, slots=True)
class TourContent:
    """One tour of the demo catalogue, with its weekly departure pattern."""

    code: str
    name: str
    short_name: str
    description: str
    start_time: dt.time
    duration_minutes: int
    meeting_point: str
    meeting_address: str
    latitude: float
    longitude: float
    guide_name: str
    guide_phone: str
    price_per_person: Decimal
    packing_list: tuple[str, ...]
    clothing_advice: str
    weather_outlook: str
    park_rules: str
    safety_guidelines: str
    emergency_contacts: tuple[dict[str, str], ...]
    weekdays: frozenset[int]  # Monday is 0
    capacities: tuple[int, ...]

    def new_tour(self) -> Tour:
        """A new :class:`storage.Tour` row with this content."""
        return Tour(
            code=self.code,
            name=self.name,
            short_name=self.short_name,
            description=self.description,
            duration_minutes=self.duration_minutes,
            start_time=self.start_time,
            meeting_point=self.meeting_point,
            meeting_address=self.meeting_address,
            meeting_latitude=self.latitude,
            meeting_longitude=self.longitude,
            guide_name=self.guide_name,
            guide_phone=self.guide_phone,
            price_per_person=self.price_per_person,
            currency="USD",
            packing_list=list(self.packing_list),
            clothing_advice=self.clothing_advice,
            weather_outlook=self.weather_outlook,
            park_rules=self.park_rules,
            safety_guidelines=self.safety_guidelines,
            emergency_contacts=[dict(contact) for contact in self.emergency_contacts],
            cancellation_policy=CANCELLATION_POLICY,
            active=True,
        )


CATALOGUE: tuple[TourContent, ...] = (
    TourContent(
        code="VFA-FALLS-SUNSET",
        name="Victoria Falls guided tour & Zambezi sunset cruise",
        short_name="Victoria Falls & cruise",
        description=(
            "A guide walks you along the rainforest path facing the Falls, from the "
            "Devil's Cataract to Danger Point, telling the story of Mosi-oa-Tunya, 'the "
            "smoke that thunders'. After a short transfer upstream you board a double-deck "
            "boat for a sunset cruise on the Zambezi, with snacks and drinks, looking out "
            "for hippos, crocodiles and elephants on the islands."
        ),
        start_time=dt.time(14, 30),
        duration_minutes=270,
        meeting_point="Victoria Falls Rainforest entrance (Zimbabwe side)",
        meeting_address="Rainforest entrance, Livingstone Way, Victoria Falls, Zimbabwe",
        latitude=-17.92440,
        longitude=25.85670,
        guide_name="Blessing Sibanda",
        guide_phone="+263 77 310 4418",
        price_per_person=Decimal("120.00"),
        packing_list=(
            "Passport (the park entry desk checks it)",
            "Rain jacket or poncho (ponchos are also for hire at the entrance)",
            "Waterproof bag or zip-lock for phone and camera",
            "Sunscreen, sunglasses and a hat",
            "Insect repellent for the cruise",
            "A warm layer for the boat after sunset",
        ),
        clothing_advice=(
            "Quick-drying clothes and sandals or shoes with good grip: the spray soaks the "
            "path from February to July. Neutral colours on the boat; a light jacket for "
            "the evening."
        ),
        weather_outlook=(
            "November to March is hot and humid (20–33 °C) with afternoon thunderstorms; "
            "April to August is dry and mild (8–26 °C) with the heaviest spray; September "
            "and October are hot and dry (up to 36 °C) with the lowest water."
        ),
        park_rules=(
            "Stay on the marked paths and behind the railings; no drones; do not feed the "
            "baboons or monkeys; take all litter with you; life jackets must be worn when "
            "the crew asks."
        ),
        safety_guidelines=(
            "The path is wet and slippery: walk, never run. Keep to the viewpoints, stay "
            "seated while the boat moves and follow the crew's instructions. Tell the guide "
            "about any medical condition before you start."
        ),
        emergency_contacts=(
            OPERATOR_LINE,
            {"name": "Victoria Falls Rainforest (ZimParks) gate", "phone": "+263 83 284 0119"},
            NATIONAL_EMERGENCY,
        ),
        weekdays=frozenset(range(7)),
        capacities=(12, 14, 16),
    ),
    TourContent(
        code="HWG-GAME-DRIVE",
        name="Hwange National Park full-day game drive",
        short_name="Hwange game drive",
        description=(
            "A full day in Zimbabwe's largest national park in an open 4x4 with a "
            "professional guide: the waterholes of the Ngweshla loop, home to some of "
            "Africa's largest elephant herds, buffalo, giraffe, sable antelope and, with "
            "luck, lion, leopard and painted wolves. Picnic lunch at a hide."
        ),
        start_time=dt.time(6, 0),
        duration_minutes=540,
        meeting_point="Hwange Main Camp reception",
        meeting_address=(
            "Main Camp, Hwange National Park (turn-off at Kennedy 1 on the A8 "
            "Bulawayo–Victoria Falls road), Zimbabwe"
        ),
        latitude=-18.73220,
        longitude=26.95560,
        guide_name="Themba Ncube",
        guide_phone="+263 71 845 2290",
        price_per_person=Decimal("165.00"),
        packing_list=(
            "Passport (park entry)",
            "Binoculars (one pair per traveller if you can)",
            "Camera with a zoom lens and spare batteries",
            "Hat, sunglasses and sunscreen",
            "Refillable water bottle (we refill it from the vehicle)",
            "A warm fleece and a scarf for the early morning",
            "Any medication you need during the day",
        ),
        clothing_advice=(
            "Neutral khaki, olive or brown clothes; avoid white and bright colours, and "
            "dark blue or black, which attract tsetse flies. Layers: mornings in the open "
            "vehicle are cold, middays hot."
        ),
        weather_outlook=(
            "Dry season (May to October) is the best game viewing: cold dawns (5–10 °C in "
            "June and July) and warm days, hot in October (up to 38 °C). The rains "
            "(November to April) bring green landscapes, newborn animals and afternoon "
            "storms."
        ),
        park_rules=(
            "Stay in the vehicle except at designated picnic sites and hides; no off-road "
            "driving; speed limit 40 km/h; never feed or call animals; quiet near animals; "
            "no drones; all litter leaves the park with us."
        ),
        safety_guidelines=(
            "Keep arms and cameras inside the vehicle near elephants and predators; do not "
            "stand up when animals are close; follow the guide's instructions at once. "
            "Drink plenty of water and tell the guide if you feel unwell."
        ),
        emergency_contacts=(
            OPERATOR_LINE,
            {"name": "Hwange Main Camp (ZimParks) office", "phone": "+263 81 185 0345"},
            NATIONAL_EMERGENCY,
        ),
        weekdays=frozenset({0, 2, 4, 5}),
        capacities=(8, 10, 12),
    ),
    TourContent(
        code="MNP-CANOE",
        name="Mana Pools canoe safari on the Zambezi",
        short_name="Mana Pools canoe safari",
        description=(
            "Paddle two-person canoes with a licensed canoe guide along the channels and "
            "sandbanks of the Zambezi in Mana Pools, a UNESCO World Heritage Site. Drift "
            "past elephants feeding on the islands, hippo pods and carmine bee-eater "
            "colonies, with a brunch stop on a sandbank. No experience needed."
        ),
        start_time=dt.time(6, 30),
        duration_minutes=480,
        meeting_point="Nyamepi Camp office, Mana Pools National Park",
        meeting_address="Nyamepi Camp, Mana Pools National Park, Hurungwe District, Zimbabwe",
        latitude=-15.73310,
        longitude=29.36060,
        guide_name="Kudzai Mutasa",
        guide_phone="+263 77 264 9107",
        price_per_person=Decimal("260.00"),
        packing_list=(
            "Passport (park entry)",
            "Wide-brimmed hat with a strap, sunglasses with a cord",
            "High-factor sunscreen and lip balm",
            "Dry bag for phone, camera and a light jacket (we lend one if needed)",
            "Sandals or water shoes that stay on your feet",
            "Refillable water bottle",
            "Binoculars",
        ),
        clothing_advice=(
            "Light, long-sleeved shirt and quick-drying trousers or shorts in neutral "
            "colours; you will get splashed. Sandals that strap on, not flip-flops."
        ),
        weather_outlook=(
            "Mana Pools is hot: 25–35 °C from August, above 40 °C in October. Canoeing "
            "runs April to mid-November; in the rains (December to March) the valley "
            "floods and some trips move to the main channel."
        ),
        park_rules=(
            "Canoes keep at least 50 m from hippos and do not land on islands where "
            "animals are feeding; walking only with the guide; no fishing without a "
            "permit; no drones; leave nothing behind."
        ),
        safety_guidelines=(
            "Wear the life jacket at all times on the water; keep canoes in single file "
            "behind the guide; never swim in the Zambezi (crocodiles and hippos); keep "
            "hands out of the water. Tell us before booking if you cannot swim."
        ),
        emergency_contacts=(
            OPERATOR_LINE,
            {"name": "Mana Pools (ZimParks) Nyamepi office", "phone": "+263 77 318 2206"},
            NATIONAL_EMERGENCY,
        ),
        weekdays=frozenset({1, 3, 5}),
        capacities=(8, 10),
    ),
    TourContent(
        code="MTB-RHINO-WALK",
        name="Matobo Hills rhino tracking walk",
        short_name="Matobo rhino walk",
        description=(
            "Track white and black rhino on foot with an armed, licensed walking guide in "
            "the granite hills of Matobo National Park, then visit San rock art at "
            "Nswatugi cave. A morning of footprints, dung middens and, at the end, "
            "standing quietly a safe distance from rhino."
        ),
        start_time=dt.time(7, 0),
        duration_minutes=360,
        meeting_point="Maleme Rest Camp reception, Matobo National Park",
        meeting_address="Maleme Rest Camp, Matobo National Park, 45 km south of Bulawayo",
        latitude=-20.54470,
        longitude=28.51140,
        guide_name="Sipho Dube",
        guide_phone="+263 71 602 3358",
        price_per_person=Decimal("110.00"),
        packing_list=(
            "Passport (park entry)",
            "Comfortable, broken-in walking shoes",
            "Hat, sunglasses and sunscreen",
            "At least 1.5 litres of water per person",
            "A light fleece for the early start",
            "Camera without flash (flash is not allowed at the rock art)",
        ),
        clothing_advice=(
            "Khaki, green or brown clothes that do not rustle; no white, red or bright "
            "colours on a walk. Long trousers protect against grass seeds and thorns."
        ),
        weather_outlook=(
            "Matobo is mild: 20–30 °C by day most of the year; winter mornings (June, "
            "July) can be near freezing. Summer rains (November to March) fall as short "
            "afternoon storms; walks start early to avoid them."
        ),
        park_rules=(
            "Walk in single file behind the guide and never wander off; no talking close "
            "to the rhino; do not touch or photograph the rock art with flash; no drones; "
            "take all litter out of the park."
        ),
        safety_guidelines=(
            "The guide decides how close we go: never approach animals yourself. If a "
            "rhino charges, stand still or step behind a tree as the guide shows you; "
            "never run. Minimum age 12. Tell us about any heart or mobility condition."
        ),
        emergency_contacts=(
            OPERATOR_LINE,
            {"name": "Matobo National Park (ZimParks) office", "phone": "+263 83 830 1417"},
            NATIONAL_EMERGENCY,
        ),
        weekdays=frozenset({1, 4, 6}),
        capacities=(8, 10),
    ),
)


@dataclass(frozen=True, slots=True)
class BookingContent:
    """One demo customer's booking: who, which tour, how many days ahead, what was paid."""

    key: str
    wa_id: str
    customer_name: str
    email: str
    tour_code: str
    days_ahead: int
    travelers: tuple[tuple[str, IdStatus], ...]
    amount: Decimal
    method: PaymentMethod
    payment_reference: str


DEMO_BOOKINGS: tuple[BookingContent, ...] = (
    BookingContent(
        key="falls-in-1-day",
        wa_id="447700900123",
        customer_name="Sarah Mitchell",
        email="sarah.mitchell@example.com",
        tour_code="VFA-FALLS-SUNSET",
        days_ahead=1,
        travelers=(
            ("Sarah Mitchell", IdStatus.VERIFIED),
            ("James Mitchell", IdStatus.MISSING),
        ),
        amount=Decimal("120.00"),
        method=PaymentMethod.BANK_TRANSFER,
        payment_reference="DEMO-FT-240118",
    ),
    BookingContent(
        key="hwange-in-3-days",
        wa_id="263719876543",
        customer_name="Farai Ndlovu",
        email="farai.ndlovu@example.com",
        tour_code="HWG-GAME-DRIVE",
        days_ahead=3,
        travelers=(
            ("Farai Ndlovu", IdStatus.VERIFIED),
            ("Chipo Ndlovu", IdStatus.VERIFIED),
            ("Tatenda Ndlovu", IdStatus.MISSING),
        ),
        amount=Decimal("200.00"),
        method=PaymentMethod.CASH,
        payment_reference="DEMO-CASH-0031",
    ),
    BookingContent(
        key="mana-pools-in-7-days",
        wa_id="263771234567",
        customer_name="Tendai Moyo",
        email="tendai.moyo@example.com",
        tour_code="MNP-CANOE",
        days_ahead=7,
        travelers=(
            ("Tendai Moyo", IdStatus.MISSING),
            ("Rumbidzai Moyo", IdStatus.MISSING),
        ),
        amount=Decimal("260.00"),
        method=PaymentMethod.BANK_TRANSFER,
        payment_reference="DEMO-FT-240207",
    ),
)


@dataclass(frozen=True, slots=True)
class DemoTour:
    """A demo tour as loaded."""

    code: str
    name: str
    price_per_person: Decimal
    currency: str
    upcoming_departures: int
    last_departure: dt.date | None


@dataclass(frozen=True, slots=True)
class DemoBooking:
    """A demo booking as it stands now."""

    key: str
    reference: str
    whatsapp: str
    customer: str
    tour: str
    tour_code: str
    tour_date: dt.date
    travelers: int
    status: str
    total: Decimal
    balance_due: Decimal
    currency: str
    payment_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DemoPayment:
    """A demo payment as it stands now."""

    id: int
    booking_reference: str
    amount: Decimal
    currency: str
    method: str
    status: str


@dataclass(frozen=True, slots=True)
class DemoCreated:
    """How many objects this run created (all zero when everything was there)."""

    tours: int = 0
    departures: int = 0
    bookings: int = 0
    payments: int = 0

    @property
    def anything(self) -> bool:
        """Whether this run created anything at all."""
        return any((self.tours, self.departures, self.bookings, self.payments))


@dataclass(frozen=True, slots=True)
class DemoData:
    """The demo objects after a load, and what the load created."""

    today: dt.date
    timezone: str
    tours: tuple[DemoTour, ...]
    bookings: tuple[DemoBooking, ...]
    payments: tuple[DemoPayment, ...]
    created: DemoCreated = field(default_factory=DemoCreated)

    def to_json(self) -> dict[str, Any]:
        """The demo objects as JSON-ready data (amounts as ``"120.00"`` strings).

        What the load created is left out, so two runs on one day give equal JSON.
        """
        return {
            "today": self.today.isoformat(),
            "timezone": self.timezone,
            "tours": [
                {
                    "code": tour.code,
                    "name": tour.name,
                    "price_per_person": _decimal(tour.price_per_person),
                    "currency": tour.currency,
                    "upcoming_departures": tour.upcoming_departures,
                }
                for tour in self.tours
            ],
            "bookings": [
                {
                    "reference": booking.reference,
                    "whatsapp": booking.whatsapp,
                    "customer": booking.customer,
                    "tour": booking.tour,
                    "tour_code": booking.tour_code,
                    "tour_date": booking.tour_date.isoformat(),
                    "travelers": booking.travelers,
                    "status": booking.status,
                    "total": _decimal(booking.total),
                    "balance_due": _decimal(booking.balance_due),
                    "currency": booking.currency,
                    "payment_ids": list(booking.payment_ids),
                }
                for booking in self.bookings
            ],
            "payments": [
                {
                    "id": payment.id,
                    "booking_reference": payment.booking_reference,
                    "amount": _decimal(payment.amount),
                    "currency": payment.currency,
                    "method": payment.method,
                    "status": payment.status,
                }
                for payment in self.payments
            ],
        }


def _decimal(amount: Decimal) -> str:
    """``"120.00"``: an amount for machines (JSON), beside its own ``currency`` field."""
    return str(amount.quantize(Decimal("0.01")))


def seats_for(content: TourContent, day: dt.date) -> tuple[int, int]:
    """A departure's capacity and seats left, the same for a tour and date on every run.

    About one departure in five is nearly full (one or two seats left); the others have
    up to half their seats taken.
    """
    n = day.toordinal() + len(content.code)
    capacity = content.capacities[n % len(content.capacities)]
    taken = capacity - 1 - n % 2 if n % 5 == 0 else (n * 3) % (capacity // 2 + 1)
    return capacity, capacity - taken


async def load_demo_data(db: Database, *, tz: dt.tzinfo, today: dt.date | None = None) -> DemoData:
    """Load the demo catalogue, departures, customers, bookings and payments.

    Idempotent (see the module docstring): what exists is found by its stable key and
    kept as it is; only what is missing is created, all in one transaction.

    Args:
        db: The database (migrated).
        tz: The business timezone (the app's).
        today: The business day to load relative to; default today in ``tz``.

    Returns:
        The demo objects as they stand after the load, and what the load created.

    Raises:
        DemoDataError: a departure a new demo booking needs has too few seats left.
    """
    today = today or dt.datetime.now(tz).date()
    async with db.transaction() as session:
        await lock_name(session, "nyala:demo-data")  # concurrent loads run one by one
        tours, tours_created = await _tours(session)
        existing = set(
            await session.scalars(
                select(Booking.notes).where(
                    Booking.notes.in_([NOTES_PREFIX + spec.key for spec in DEMO_BOOKINGS])
                )
            )
        )
        needed = {  # (tour code, date) -> seats the new demo bookings take
            (spec.tour_code, today + dt.timedelta(days=spec.days_ahead)): len(spec.travelers)
            for spec in DEMO_BOOKINGS
            if NOTES_PREFIX + spec.key not in existing
        }
        departures_created = await _departures(session, tours, today, needed)
        bookings_created = payments_created = 0
        for spec in DEMO_BOOKINGS:
            if NOTES_PREFIX + spec.key in existing:
                continue
            await _book(session, spec, tours[spec.tour_code], today)
            bookings_created += 1
            payments_created += 1
        created = DemoCreated(
            tours=tours_created,
            departures=departures_created,
            bookings=bookings_created,
            payments=payments_created,
        )
        return await _result(session, tours, today, tz, created)


async def _tours(session: AsyncSession) -> tuple[dict[str, Tour], int]:
    codes = [content.code for content in CATALOGUE]
    tours = {t.code: t for t in await session.scalars(select(Tour).where(Tour.code.in_(codes)))}
    created = 0
    for content in CATALOGUE:
        if content.code not in tours:
            tours[content.code] = content.new_tour()
            session.add(tours[content.code])
            created += 1
        elif tours[content.code].short_name is None:  # loaded before tours had one
            tours[content.code].short_name = content.short_name
    await session.flush()
    return tours, created


async def _departures(
    session: AsyncSession,
    tours: dict[str, Tour],
    today: dt.date,
    needed: dict[tuple[str, dt.date], int],
) -> int:
    created = 0
    window = [today + dt.timedelta(days=n) for n in range(1, DEPARTURE_DAYS + 1)]
    for content in CATALOGUE:
        tour = tours[content.code]
        wanted = {day for day in window if tour.active and day.weekday() in content.weekdays}
        wanted |= {day for code, day in needed if code == content.code}
        have = set(
            await session.scalars(
                select(Departure.date).where(
                    Departure.tour_id == tour.id, Departure.date.in_(wanted)
                )
            )
        )
        for day in sorted(wanted - have):
            capacity, seats_left = seats_for(content, day)
            booked = needed.get((content.code, day), 0)
            if booked:  # leave the demo booking room, and a few seats for the chat
                seats_left = max(seats_left, min(capacity, booked + 2))
            session.add(
                Departure(tour_id=tour.id, date=day, capacity=capacity, seats_left=seats_left)
            )
            created += 1
    await session.flush()
    return created


async def _book(session: AsyncSession, spec: BookingContent, tour: Tour, today: dt.date) -> None:
    contact = await get_or_create_contact(session, wa_id=spec.wa_id)
    if not contact.profile_name:
        contact.profile_name = spec.customer_name
    customer = await session.scalar(select(Customer).where(Customer.contact_id == contact.id))
    if customer is None:
        customer = await operations.customer_for_contact(session, contact, name=spec.customer_name)
        customer.email = spec.email
    day = today + dt.timedelta(days=spec.days_ahead)
    departure_id = await session.scalar(
        select(Departure.id).where(Departure.tour_id == tour.id, Departure.date == day)
    )
    assert departure_id is not None  # _departures made it
    try:
        booking = await operations.create_booking(
            session,
            customer=customer,
            departure_id=departure_id,
            traveler_names=[name for name, _ in spec.travelers],
        )
    except ActionError as exc:
        raise DemoDataError(
            f"cannot book the demo booking {spec.key!r} on {tour.code} {day}: {exc}"
        ) from exc
    booking.notes = NOTES_PREFIX + spec.key
    for position, (_, id_status) in enumerate(spec.travelers, 1):
        if id_status is not IdStatus.MISSING:  # checked in person at the office
            await session.execute(
                update(Traveler)
                .where(Traveler.booking_id == booking.id, Traveler.position == position)
                .values(id_status=id_status)
            )
    await operations.record_payment(
        session,
        booking.id,
        amount=spec.amount,
        method=spec.method,
        actor=DEMO_ACTOR,
        reference=spec.payment_reference,
    )


async def _result(
    session: AsyncSession,
    tours: dict[str, Tour],
    today: dt.date,
    tz: dt.tzinfo,
    created: DemoCreated,
) -> DemoData:
    upcoming = {
        tour_id: (count, last)
        for tour_id, count, last in await session.execute(
            select(Departure.tour_id, func.count(), func.max(Departure.date))
            .where(Departure.date > today)
            .group_by(Departure.tour_id)
        )
    }
    demo_tours = tuple(
        DemoTour(
            code=tour.code,
            name=tour.name,
            price_per_person=tour.price_per_person,
            currency=tour.currency,
            upcoming_departures=upcoming.get(tour.id, (0, None))[0],
            last_departure=upcoming.get(tour.id, (0, None))[1],
        )
        for tour in (tours[content.code] for content in CATALOGUE)
    )
    bookings: list[DemoBooking] = []
    payments: list[DemoPayment] = []
    for spec in DEMO_BOOKINGS:
        found = (
            await session.execute(
                select(Booking, Departure.date, Tour, Customer.name, Contact.wa_id)
                .join(Departure, Departure.id == Booking.departure_id)
                .join(Tour, Tour.id == Booking.tour_id)
                .join(Customer, Customer.id == Booking.customer_id)
                .outerjoin(Contact, Contact.id == Customer.contact_id)
                .where(Booking.notes == NOTES_PREFIX + spec.key)
                .order_by(Booking.id)
                .limit(1)
            )
        ).first()
        if found is None:
            continue
        booking, day, tour, customer_name, wa_id = found
        demo_payments = list(
            await session.scalars(
                select(Payment)
                .where(
                    Payment.booking_id == booking.id,
                    Payment.provider_reference == spec.payment_reference,
                )
                .order_by(Payment.id)
            )
        )
        balance = await operations.balance(session, booking)
        bookings.append(
            DemoBooking(
                key=spec.key,
                reference=booking.reference,
                whatsapp=wa_id or spec.wa_id,
                customer=customer_name,
                tour=tour.name,
                tour_code=tour.code,
                tour_date=day,
                travelers=booking.travelers_count,
                status=booking.status.value,
                total=booking.total_cost,
                balance_due=balance.due,
                currency=booking.currency,
                payment_ids=tuple(payment.id for payment in demo_payments),
            )
        )
        payments.extend(
            DemoPayment(
                id=payment.id,
                booking_reference=booking.reference,
                amount=payment.amount,
                currency=payment.currency,
                method=payment.method.value,
                status=payment.status.value,
            )
            for payment in demo_payments
        )
    return DemoData(
        today=today,
        timezone=str(tz),
        tours=demo_tours,
        bookings=tuple(bookings),
        payments=tuple(payments),
        created=created,
    )


def describe(data: DemoData) -> list[str]:
    """The demo data as lines for people (``nyala demo-bookings`` without ``--json``)."""
    lines = [f"Demo data for {data.today.isoformat()} ({data.timezone}):", "tours:"]
    for tour in data.tours:
        until = f", until {tour.last_departure.isoformat()}" if tour.last_departure else ""
        lines.append(
            f"  {tour.code}  {tour.name}  {format_money(tour.price_per_person, tour.currency)}"
            f" per person, {tour.upcoming_departures} upcoming departures{until}"
        )
    lines.append("bookings:")
    for booking in data.bookings:
        paid = ", ".join(f"payment {pid}" for pid in booking.payment_ids) or "no payment"
        lines.append(
            f"  {booking.reference}  +{booking.whatsapp} ({booking.customer})  {booking.tour}"
            f" on {booking.tour_date.isoformat()}, {booking.travelers} travellers,"
            f" {booking.status}; total {format_money(booking.total, booking.currency)},"
            f" due {format_money(booking.balance_due, booking.currency)} ({paid})"
        )
    created = data.created
    lines.append(
        f"created {created.tours} tours, {created.departures} departures, "
        f"{created.bookings} bookings, {created.payments} payments"
        if created.anything
        else "nothing new: the demo data was already loaded"
    )
    return lines


async def load_demo(runtime: Runtime) -> str:
    """``App(demo_data=...)``: load the demo data in the app's timezone; one line saying
    what the database holds (``4 tours, 3 bookings``). ``nyala demo-bookings`` lists it all."""
    data = await load_demo_data(runtime.db, tz=runtime.app.timezone)
    held = f"{len(data.tours)} tours, {len(data.bookings)} bookings"
    if data.created.anything:
        return held
    return f"{held} (nothing new: the demo data was already loaded; nyala demo-bookings shows it)"
