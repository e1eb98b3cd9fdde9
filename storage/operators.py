"""Operator accounts of the console, their login sessions and login attempts.

Passwords are stored only as hashes (the console hashes them); a login session is kept
as the SHA-256 of its cookie token, so a leaked database row cannot be replayed as a
cookie. Everything lives in the database, so any number of server processes share
sessions and the login rate limit.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, UTCDateTime, utcnow
from storage.conversations import Conversation
from storage.flow_sessions import FlowSession
from storage.types import BigIntId, str_enum


class OperatorRole(enum.StrEnum):
    """What an operator may do, each role including the ones below it."""

    VIEWER = "viewer"  # reads everything
    AGENT = "agent"  # also answers customers and hands conversations back to the bot
    ADMIN = "admin"  # also manages operators and whatever an app keeps for admins

    @property
    def rank(self) -> int:
        """Viewer 0, agent 1, admin 2."""
        return list(OperatorRole).index(self)

    def allows(self, needed: OperatorRole) -> bool:
        """Whether this role may do what ``needed`` may do."""
        return self.rank >= needed.rank


class Operator(Base):
    """A member of staff who logs in to the console."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[OperatorRole] = mapped_column(str_enum(OperatorRole, "operator_role"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ConsoleSession(Base):
    """A logged-in browser: the hash of its cookie token and its CSRF token."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index(None, "expires_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    operator: Mapped[Operator] = relationship(lazy="raise")


class LoginAttempt(Base):
    """One login attempt, for the rate limit (per address and per username)."""

    __tablename__ = "console_login_attempts"
    __table_args__ = (Index(None, "ip", "at"), Index(None, "username", "at"))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    success: Mapped[bool] = mapped_column(Boolean, default=False)


# Indexes the console's lists need on tables of other modules (created by migration
# 0008): the newest flow sessions first; the sessions of a flow that stopped at a step
# (the funnel's click-through), newest first; and the conversations waiting for a person
# (a partial index: a handful of rows among every contact's conversation).
Index(None, FlowSession.started_at)
Index(None, FlowSession.flow_name, FlowSession.current_step, FlowSession.started_at)
_waiting = Conversation.handed_off_at.is_not(None)
Index(
    None,
    Conversation.handed_off_at,
    postgresql_where=_waiting,
    sqlite_where=_waiting,
)
