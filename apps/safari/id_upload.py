"""``id_upload_flow.yaml``'s callables: one ID document per traveller still missing one.

The flow asks for the first traveller (by position) whose ID is missing or was rejected,
records the upload on that :class:`storage.Traveler`, and loops back to the same step
until none is missing.
"""

from __future__ import annotations

from sqlalchemy import func, select

from apps.safari import app
from apps.safari.common import open_booking, open_bookings, plural, stored_file_id
from apps.safari.models import Booking, IdStatus, Traveler
from flows import ActionError, FlowContext, Option

NEEDS_ID = (IdStatus.MISSING, IdStatus.REJECTED)


async def _missing_ids(ctx: FlowContext, booking: Booking) -> list[Traveler]:
    rows = await ctx.session.scalars(
        select(Traveler)
        .where(Traveler.booking_id == booking.id, Traveler.id_status.in_(NEEDS_ID))
        .order_by(Traveler.position)
    )
    return list(rows)


async def _bookings_missing_ids(ctx: FlowContext) -> list[tuple[str, str, int]]:
    """``(reference, label, travellers without an ID)`` of the contact's open bookings."""
    result = []
    for view in await open_bookings(ctx):
        missing = len(await _missing_ids(ctx, view.booking))
        if missing:
            result.append((view.booking.reference, view.row_label, missing))
    return result


# choose_booking ---------------------------------------------------------------------------


@app.query()
async def bookings_missing_ids(ctx: FlowContext) -> list[Option]:
    """The contact's upcoming bookings with travellers whose ID we still need."""
    return [
        Option(reference, reference, f"{plural(missing, 'ID')} to send · {label}")
        for reference, label, missing in (await _bookings_missing_ids(ctx))[:10]
    ]


@app.query()
async def no_ids_missing(ctx: FlowContext) -> str:
    """What to say when no booking needs an ID."""
    if not await open_bookings(ctx):
        return "You don't have any upcoming bookings with us. Type *book* to book a tour."
    return "We have the IDs of all your travellers, thank you! Type *menu* for anything else."


@app.action()
async def preselect_id_booking(ctx: FlowContext) -> None:
    """Choose the booking without asking: the one the flow was started with (when it is
    the contact's), or the only booking that needs IDs."""
    if await open_booking(ctx, ctx.data.get("booking_reference")) is not None:
        return
    ctx.data.pop("booking_reference", None)
    candidates = await _bookings_missing_ids(ctx)
    if len(candidates) == 1:
        ctx.data["booking_reference"] = candidates[0][0]


# traveler_id --------------------------------------------------------------------------------


async def _booking(ctx: FlowContext) -> Booking:
    found = await open_booking(ctx, ctx.data.get("booking_reference"))
    if found is None:
        raise ActionError(
            "Sorry, that booking is no longer open. Type *upload id* to start again."
        )
    return found.booking


@app.action()
async def next_traveler_without_id(ctx: FlowContext) -> None:
    """Put the next traveller who needs an ID into the data (or none when all are in)."""
    found = await open_booking(ctx, ctx.data.get("booking_reference"))
    missing = await _missing_ids(ctx, found.booking) if found is not None else []
    if not missing or found is None:
        for key in ("traveler_id", "traveler_name", "traveler_position"):
            ctx.data.pop(key, None)
        return
    traveler = missing[0]
    ctx.data.update(
        traveler_id=traveler.id,
        traveler_name=traveler.full_name,
        traveler_position=traveler.position,
        travelers_total=found.booking.travelers_count,
    )


@app.condition()
def all_ids_received(ctx: FlowContext) -> bool:
    """Whether no traveller of the booking needs an ID any more."""
    return "traveler_id" not in ctx.data


@app.condition()
async def more_ids_missing(ctx: FlowContext) -> bool:
    """Whether another traveller needs an ID after the one being answered.

    Guards run before the step's actions, so the current traveller still counts as missing.
    """
    booking = await _booking(ctx)
    others = await ctx.session.scalar(
        select(func.count())
        .select_from(Traveler)
        .where(
            Traveler.booking_id == booking.id,
            Traveler.id_status.in_(NEEDS_ID),
            Traveler.id != ctx.data.get("traveler_id"),
        )
    )
    return bool(others)


@app.action()
async def record_traveler_id(ctx: FlowContext) -> None:
    """Record the uploaded ID on the traveller: received, with its media and file.

    Raises:
        ActionError: the traveller is no longer on one of the contact's open bookings.
    """
    booking = await _booking(ctx)
    traveler = await ctx.session.get(Traveler, ctx.data.get("traveler_id"))
    if traveler is None or traveler.booking_id != booking.id:
        raise ActionError(
            "Sorry, I lost track of that traveller. Type *upload id* to start again."
        )
    media_id = str(ctx.data["id_document"]["id"])
    traveler.id_status = IdStatus.RECEIVED
    traveler.id_media_id = media_id
    traveler.id_file_id = await stored_file_id(ctx, media_id)
    traveler.id_uploaded_at = ctx.now
    ctx.reply(f"Thanks, I've got the ID of {traveler.full_name}.")
