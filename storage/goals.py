"""Conversion goals reached: what an app counts as success (a sale, a reservation).

An app declares its goals (``App(goals=[Goal("reservation")])``) and an action records
one with ``ctx.reach_goal(...)``, in the transaction of the message that reached it. The
row names the flow session it happened in, so analytics count conversions per flow
without ever reading the app's own tables.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UTCDateTime, utcnow
from storage.contacts import Contact
from storage.flow_sessions import FlowSession
from storage.types import BigIntId


class GoalEvent(Base):
    """One goal reached by a contact, in a flow session when there was one."""

    __tablename__ = "goal_events"
    __table_args__ = (
        Index(None, "session_id", "goal"),
        Index(None, "goal", "at"),
        # Any goal reached since a time: the sessions that converted, in the reports.
        Index(None, "at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    goal: Mapped[str] = mapped_column(String(60))
    contact_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey(Contact.id, ondelete="CASCADE"), index=True
    )
    session_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey(FlowSession.id, ondelete="SET NULL")
    )
    # What the app reached it with, e.g. an order number (for drill-downs).
    reference: Mapped[str | None] = mapped_column(String(120))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
