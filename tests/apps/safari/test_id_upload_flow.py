"""Conversation tests of id_upload_flow: one ID document per traveller still missing one.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from apps.safari.common import short_date
from apps.safari.models import Booking, IdStatus, Traveler
from flows.messages import Media
from flows.testing import ChatFactory
from storage import Database, SessionStatus
from tests.apps.safari.chat_helpers import (
    START,
    Catalogue,
    add_catalogue,
    day,
    descriptions,
    open_chat,
    seed_booking,
    stored_media,
)

ASK = (
    "Please send the ID of {name} ({position} of {total}): a photo or PDF of their passport "
    "or national ID, up to 10 MB."
)


def ask(name: str, position: int, total: int = 3) -> str:
    return ASK.format(name=name, position=position, total=total)


@pytest.fixture
async def catalogue(db: Database) -> Catalogue:
    """Two tours with departures relative to today, one of them nearly full."""
    return await add_catalogue(db)


async def travelers(db: Database, reference: str) -> list[Traveler]:
    """The booking's travellers, in order."""
    async with db.read() as session:
        rows = await session.scalars(
            select(Traveler)
            .join(Booking, Booking.id == Traveler.booking_id)
            .where(Booking.reference == reference)
            .order_by(Traveler.position)
        )
        return list(rows)


async def test_an_id_for_every_traveller_with_wrong_files_refused(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    reference = await seed_booking(db)
    chat = await open_chat(nyala_chat)
    await chat.send("upload id")  # one booking: no need to choose
    assert chat.texts == [ask("Rudo Chikwanha", 1)]

    await chat.send(kind="sticker", media=Media(id="wa-sticker", mime_type="image/webp"))
    assert chat.texts[0] == "Please send the file as a photo or document (JPEG, PDF, PNG)."
    huge = Media(id="wa-huge", mime_type="image/jpeg", filename="id.jpg", size=12 * 1024 * 1024)
    await chat.send(kind="image", media=huge)
    assert chat.texts == ["That file is too large; the limit is 10 MB.", ask("Rudo Chikwanha", 1)]
    assert {t.id_status for t in await travelers(db, reference)} == {IdStatus.MISSING}

    photo = await stored_media(db)
    await chat.send(kind="image", media=photo)
    assert chat.texts == ["Thanks, I've got the ID of Rudo Chikwanha.", ask("Ana Moyo", 2)]

    await chat.send(media=Media(id="wa-gif", mime_type="image/gif", filename="id.gif"))
    assert chat.texts[0] == (
        "That file type (image/gif) isn't accepted. Please send JPEG, PDF, PNG."
    )
    # A WhatsApp media id: kept, to be downloaded later (no stored file yet).
    await chat.send(media=Media(id="1056789012345", mime_type="application/pdf", filename="a.pdf"))
    assert chat.texts == ["Thanks, I've got the ID of Ana Moyo.", ask("Ben Dube", 3)]

    pdf = await stored_media(db, "ben.pdf", "application/pdf")
    await chat.send(media=pdf)
    assert chat.texts == [
        "Thanks, I've got the ID of Ben Dube.",
        f"Thank you! We have the IDs of all travellers on *{reference}*. Our team will check "
        "them before your trip. Type *menu* for anything else.",
    ]

    rudo, ana, ben = await travelers(db, reference)
    assert {t.id_status for t in (rudo, ana, ben)} == {IdStatus.RECEIVED}
    assert (rudo.id_media_id, rudo.id_file_id) == (photo.id, int(photo.id.split(":")[1]))
    assert (ana.id_media_id, ana.id_file_id) == ("1056789012345", None)
    assert (ben.id_media_id, ben.id_file_id) == (pdf.id, int(pdf.id.split(":")[1]))
    assert {t.id_uploaded_at for t in (rudo, ana, ben)} == {START}

    assert await chat.steps() == [
        ("choose_booking", "entered"),
        ("choose_booking", "skipped"),
        ("traveler_id", "entered"),
        ("traveler_id", "retry"),
        ("traveler_id", "retry"),
        ("traveler_id", "completed"),
        ("traveler_id", "entered"),
        ("traveler_id", "retry"),
        ("traveler_id", "completed"),
        ("traveler_id", "entered"),
        ("traveler_id", "completed"),
        ("ids_received", "entered"),
    ]
    outputs = [e.output_value for e in await chat.events() if e.action.value == "completed"]
    assert outputs == ["[image] passport.jpg", "[document] a.pdf", "[document] ben.pdf"]
    (session,) = await chat.sessions()
    assert session.status is SessionStatus.COMPLETED


async def test_choosing_a_booking_and_only_missing_or_rejected_ids_are_asked(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    week = await seed_booking(
        db, id_statuses=(IdStatus.RECEIVED, IdStatus.REJECTED, IdStatus.MISSING)
    )
    await seed_booking(db, tour="hwange", offset=10, names=["Rudo Chikwanha"],
                       id_statuses=(IdStatus.VERIFIED,))  # fmt: skip
    tomorrow = await seed_booking(db, offset=1, names=["Rudo Chikwanha", "Tino Moyo"])
    chat = await open_chat(nyala_chat)
    await chat.send("ids")
    assert chat.texts == ["Which booking would you like to send IDs for?"]
    assert chat.options == [tomorrow, week]  # not the booking whose ID is verified
    assert descriptions(chat) == [
        f"2 IDs to send · {short_date(day(1))} · Victoria Falls guided tour",
        f"2 IDs to send · {short_date(day(7))} · Victoria Falls guided tour",
    ]

    await chat.send(tap=week)
    assert chat.texts == [ask("Ana Moyo", 2)]  # rejected: asked again
    await chat.send(media=await stored_media(db, "ana.pdf", "application/pdf"))
    assert chat.last_text == ask("Ben Dube", 3)
    await chat.send(kind="image", media=await stored_media(db))
    assert chat.last_text.startswith(f"Thank you! We have the IDs of all travellers on *{week}*")

    assert [t.id_status for t in await travelers(db, week)] == [IdStatus.RECEIVED] * 3
    assert [t.id_status for t in await travelers(db, tomorrow)] == [IdStatus.MISSING] * 2
    assert (await chat.steps())[:4] == [
        ("choose_booking", "entered"),
        ("choose_booking", "completed"),
        ("traveler_id", "entered"),
        ("traveler_id", "completed"),
    ]


async def test_started_for_a_booking_and_when_nothing_is_missing(
    nyala_chat: ChatFactory, db: Database, catalogue: Catalogue
) -> None:
    chat = await open_chat(nyala_chat)
    await chat.send("upload id")
    assert chat.texts == [
        "You don't have any upcoming bookings with us. Type *book* to book a tour."
    ]

    complete = await seed_booking(db, names=["Rudo Chikwanha"], id_statuses=(IdStatus.RECEIVED,))
    await chat.send("upload id")
    assert chat.texts == [
        "We have the IDs of all your travellers, thank you! Type *menu* for anything else."
    ]
    assert [(s.status, s.outcome) for s in await chat.sessions()] == [
        (SessionStatus.COMPLETED, "nothing_to_do")
    ] * 2

    # Started for a booking (e.g. from a reminder's quick reply): no list, even with two
    # bookings that need IDs; for a booking with every ID in, straight to the end.
    first = await seed_booking(db, offset=1, names=["Rudo Chikwanha", "Tino Moyo"])
    await seed_booking(db, tour="hwange", offset=10, names=["Rudo Chikwanha"])
    replies = await chat.engine.start_flow(
        chat.contact, "id_upload_flow", {"booking_reference": first}
    )
    chat.replies = replies
    assert chat.texts == [ask("Rudo Chikwanha", 1, total=2)]

    chat.replies = await chat.engine.start_flow(
        chat.contact, "id_upload_flow", {"booking_reference": complete}
    )
    assert chat.texts[0].startswith(
        f"Thank you! We have the IDs of all travellers on *{complete}*"
    )
    assert (await chat.steps())[2:] == [  # the first two: lists with nothing to show
        ("choose_booking", "entered"),
        ("choose_booking", "skipped"),
        ("traveler_id", "entered"),
        ("choose_booking", "entered"),
        ("choose_booking", "skipped"),
        ("traveler_id", "entered"),
        ("traveler_id", "skipped"),
        ("ids_received", "entered"),
    ]
