"""The ledger: what a batch of turns writes, buffered and written together.

A turn changes ORM rows (conversation, flow session, contact, inbound message), which the
session flushes once at the end (on PostgreSQL a new flow session's id is taken
beforehand, see :meth:`Ledger.flow_session_id`, so nothing needs a flush before then), and
produces step events and reply rows, which the ledger keeps as plain rows and inserts
with one multi-row statement each. A batch of N contacts' turns therefore costs the same
few statements as one turn: the rows, not the round trips, grow with N.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.tracking import insert_events
from flows.messages import Reply, Template, reply_kind, reply_to_payload
from storage import FlowSession, IdBlock, OutboundMessage, OutboundStatus

_OUTBOUND = cast(Table, OutboundMessage.__table__)
_FLOW_SESSIONS = cast(Table, FlowSession.__table__)


class Ledger:
    """Step-event and reply rows of one or more turns, written by :meth:`write`.

    Args:
        turns: how many turns write to it (a flow session id is taken for each turn
            at once, the first time one is needed).
    """

    def __init__(self, turns: int = 1) -> None:
        self.events: list[dict[str, Any]] = []
        self.outbound: list[dict[str, Any]] = []
        self._session_ids = IdBlock(_FLOW_SESSIONS, block=turns)

    async def flow_session_id(self, session: AsyncSession) -> int | None:
        """The id for a new flow session: its row, its conversation's reference to it and
        its step events are then written together at the end, with no flush per turn
        (``None`` on SQLite: flush the new row to have the database give it one)."""
        return await self._session_ids.take(session)

    def __len__(self) -> int:
        return len(self.events) + len(self.outbound)

    def replies(
        self,
        contact_id: int,
        inbound_id: int | None,
        replies: Sequence[Reply],
        *,
        now: dt.datetime,
        sandbox: bool,
        fallbacks: Mapping[int, Template] | None = None,
    ) -> None:
        """Buffer ``replies`` as outbound rows, in order; ``sandbox`` rows are stored and
        never sent, the others are queued for the outbox. ``fallbacks`` maps a reply's
        ``id()`` to the template sent instead if the 24-hour window closed meanwhile."""
        status = OutboundStatus.SANDBOX if sandbox else OutboundStatus.QUEUED
        for reply in replies:
            fallback = (fallbacks or {}).get(id(reply))
            self.outbound.append(
                {
                    "contact_id": contact_id,
                    "inbound_id": inbound_id,
                    "kind": reply_kind(reply),
                    "payload": reply_to_payload(reply),
                    "status": status,
                    "created_at": now,
                    "next_attempt_at": None if sandbox else now,
                    "fallback": reply_to_payload(fallback) if fallback is not None else None,
                }
            )

    async def write(self, session: AsyncSession) -> None:
        """Flush the session's ORM changes, then insert the buffered rows (events refer
        to flow sessions the flush may create) and forget them."""
        await session.flush()
        events, self.events = self.events, []
        outbound, self.outbound = self.outbound, []
        await insert_events(session, events)
        if outbound:
            await session.execute(insert(_OUTBOUND), outbound)
