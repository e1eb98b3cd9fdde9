"""Delivery statuses from the webhook applied to outbound rows (never backwards)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.whatsapp.errors import error_text
from bot.whatsapp.payloads import StatusError, StatusUpdate
from storage import IgnoredUpdate, OutboundMessage, OutboundStatus, lock_name, lock_names

# Delivery statuses only move forward (a late "delivered" never undoes "read").
_RANK = {
    OutboundStatus.QUEUED: 0,
    OutboundStatus.SENT: 1,
    OutboundStatus.DELIVERED: 2,
    OutboundStatus.READ: 3,
}
_STATUS = {
    "sent": OutboundStatus.SENT,
    "delivered": OutboundStatus.DELIVERED,
    "read": OutboundStatus.READ,
    "played": OutboundStatus.READ,
    "failed": OutboundStatus.FAILED,
}


async def apply_status(session: AsyncSession, status: StatusUpdate, now: dt.datetime) -> bool:
    """Apply one delivery status to its outbound row; returns whether the row was known.

    Statuses never move backwards; a ``failed`` 131047 of a message with a template
    fallback requeues it as that template.
    """
    target = _STATUS.get(status.status)
    # Serialised with the sender recording this wamid (apply_early_statuses): a status
    # that overtakes the record is either seen here or left for the sender, never lost.
    await lock_name(session, f"wamid:{status.wa_message_id}")
    row = await session.scalar(
        select(OutboundMessage).where(OutboundMessage.wa_message_id == status.wa_message_id)
    )
    if row is None or target is None:
        # A status can overtake the sender's own record of the wamid: keep it, so the
        # sender applies it once it has stored the id (see apply_early_statuses).
        session.add(
            IgnoredUpdate(
                received_at=now,
                what=early_status_key(status.wa_message_id)
                if row is None
                else f"status {status.status!r} of {status.wa_message_id}"[:200],
                reason="unknown message" if row is None else "unknown status",
                payload=_status_payload(status) if row is None else None,
            )
        )
        return False
    current = row.status
    if target is OutboundStatus.FAILED:
        if current in (OutboundStatus.DELIVERED, OutboundStatus.READ, OutboundStatus.FAILED):
            return True  # a failure after delivery is stale news
        error = status.errors[0] if status.errors else None
        if error is not None and error.code == 131047 and row.fallback and row.kind != "template":
            # The window had closed after all: send the action's template instead.
            row.kind = "template"
            row.payload = dict(row.fallback)
            row.status = OutboundStatus.QUEUED
            row.wa_message_id = None
            row.next_attempt_at = now
            row.last_error = "131047 outside the 24-hour window: resent as its template"
            row.error_code = 131047
            return True
        row.status = OutboundStatus.FAILED
        row.error_code = error.code if error else None
        row.last_error = (
            error_text(
                code=error.code, title=error.title, message=error.message, details=error.details
            )
            if error
            else "failed (no reason given)"
        )
        row.status_at = status.timestamp or now
        return True
    if current is OutboundStatus.FAILED or _RANK.get(current, 0) >= _RANK[target]:
        return True  # duplicate or out of order: never move backwards
    row.status = target
    row.status_at = status.timestamp or now
    return True


def early_status_key(wamid: str) -> str:
    """The ``ignored_updates.what`` of a status that arrived before its message's id."""
    return f"early status of {wamid}"[:200]


def _status_payload(status: StatusUpdate) -> dict[str, object]:
    return {
        "id": status.wa_message_id,
        "status": status.status,
        "timestamp": status.timestamp.isoformat() if status.timestamp else None,
        "errors": [
            {"code": e.code, "title": e.title, "message": e.message, "details": e.details}
            for e in status.errors
        ],
    }


async def apply_early_statuses(session: AsyncSession, wamid: str, now: dt.datetime) -> int:
    """Apply statuses that arrived before ``wamid`` was recorded; returns how many.

    Call it in the transaction that records ``wamid``.
    """
    return await apply_early_statuses_of(session, [wamid], now)


async def apply_early_statuses_of(
    session: AsyncSession, wamids: list[str], now: dt.datetime
) -> int:
    """:func:`apply_early_statuses` for many message ids: their locks and one query."""
    if not wamids:
        return 0
    await lock_names(session, [f"wamid:{wamid}" for wamid in wamids])
    keys = {early_status_key(wamid): wamid for wamid in wamids}
    early = (
        await session.scalars(
            select(IgnoredUpdate)
            .where(IgnoredUpdate.what.in_(list(keys)))
            .order_by(IgnoredUpdate.id)
        )
    ).all()
    for row in early:
        wamid = keys[row.what]
        data = row.payload or {}
        stamp = data.get("timestamp")
        update = StatusUpdate(
            wa_message_id=wamid,
            status=str(data.get("status")),
            timestamp=dt.datetime.fromisoformat(stamp) if isinstance(stamp, str) else None,
            recipient_id=None,
            recipient_user_id=None,
            biz_opaque_callback_data=None,
            errors=tuple(
                StatusError(
                    code=e.get("code"),
                    title=e.get("title"),
                    message=e.get("message"),
                    details=e.get("details"),
                )
                for e in data.get("errors") or []
            ),
        )
        await apply_status(session, update, now)
        await session.delete(row)
    return len(early)
