"""Conversation state: which flow a contact is in, at which step, with what data."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, TimestampMixin, UTCDateTime
from storage.types import BigIntId, JSONDoc

if TYPE_CHECKING:
    from storage.flow_sessions import FlowSession


class Conversation(TimestampMixin, Base):
    """The persisted conversation of one contact; restored for every message.

    Nothing about a conversation lives only in process memory: a restart or another
    server process continues it from this row.
    """

    __tablename__ = "conversations"

    contact_id: Mapped[int] = mapped_column(
        BigIntId,
        ForeignKey("contacts.id", ondelete="CASCADE"),
        primary_key=True,
    )
    flow_name: Mapped[str | None] = mapped_column(String(100))
    flow_version: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    flow_session_id: Mapped[int | None] = mapped_column(
        BigIntId,
        ForeignKey("flow_sessions.id", ondelete="SET NULL"),
    )
    # Never loaded or set (the id is): declared so that a flush inserts a new flow session
    # before the conversation that refers to it (the engine gives new sessions their id
    # beforehand and flushes a whole batch at once).
    flow_session: Mapped[FlowSession | None] = relationship(
        lazy="raise", foreign_keys=[flow_session_id]
    )
    step_entered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    last_activity_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Set while a human has the conversation: the bot stays quiet until released.
    handed_off_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    handoff_reason: Mapped[str | None] = mapped_column(Text)

    def clear_flow(self) -> None:
        """Forget the active flow (the session row keeps the history)."""
        self.flow_name = None
        self.flow_version = None
        self.state = None
        self.data = {}
        self.flow_session_id = None
        self.step_entered_at = None
        self.retry_count = 0
