"""Mark sessions idle past their flow's timeout as ``abandoned``."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from sqlalchemy import select

from storage import Conversation, Database, FlowSession, SessionStatus, lock_contact, utcnow

log = logging.getLogger("nyala.analytics")

DEFAULT_TIMEOUT = dt.timedelta(minutes=30)


async def abandon_idle_sessions(
    db: Database,
    timeouts: Mapping[str, dt.timedelta],
    *,
    default: dt.timedelta = DEFAULT_TIMEOUT,
    now: dt.datetime | None = None,
    batch: int = 500,
) -> int:
    """Abandon every active session idle longer than its flow's timeout.

    The session keeps ``current_step`` (where the user dropped off). Each session is ended
    under its contact's lock, so a message being processed for that contact at the same
    moment either sees the session still active or not at all. Returns how many sessions
    were abandoned.
    """
    now = now or utcnow()
    shortest = min([default, *timeouts.values()])
    async with db.read() as session:
        candidates = (
            await session.execute(
                select(FlowSession.id, FlowSession.contact_id, FlowSession.flow_name)
                .where(
                    FlowSession.status == SessionStatus.ACTIVE,
                    FlowSession.last_activity_at < now - shortest,
                )
                .order_by(FlowSession.id)
                .limit(batch)
            )
        ).all()
    count = 0
    for session_id, contact_id, flow_name in candidates:
        timeout = timeouts.get(flow_name, default)
        async with db.transaction() as session:
            await lock_contact(session, contact_id)
            row = await session.get(FlowSession, session_id, populate_existing=True)
            if (
                row is None
                or row.status is not SessionStatus.ACTIVE
                or row.last_activity_at >= now - timeout
            ):
                continue
            # A record for operators in whole minutes, the unit flow files set timeouts in
            # (texts for customers are formatted by documents.formatting).
            minutes = timeout // dt.timedelta(minutes=1)
            row.mark_ended(
                SessionStatus.ABANDONED,
                reason=f"timed out after {minutes} min without a reply",
                at=now,
            )
            conversation = await session.get(Conversation, contact_id)
            if conversation is not None and conversation.flow_session_id == session_id:
                conversation.clear_flow()
            count += 1
    if count:
        log.info("abandoned %d idle sessions", count)
    return count
