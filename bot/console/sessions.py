"""Console login sessions and the login rate limit, kept in the database.

The cookie holds a random token; the database keeps only its SHA-256, the operator, a
CSRF token and when the session expires (sliding, with an absolute cap). Failed logins
are counted per client address and per username over a window, in the database, so the
limit holds across every server process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update

from bot.console.accounts import audit, mark_logged_in
from bot.console.passwords import hash_password, needs_rehash, verify_password
from storage import Database, utcnow
from storage.operators import ConsoleSession, LoginAttempt, Operator, OperatorRole

IDLE_TIMEOUT = dt.timedelta(hours=8)
MAX_AGE = dt.timedelta(days=7)
TOUCH_EVERY = dt.timedelta(minutes=1)  # how stale last_seen_at may get (fewer writes)
RATE_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME = 5
MAX_FAILURES_PER_ADDRESS = 20


@dataclass(frozen=True, slots=True)
class Current:
    """The logged-in operator of a request."""

    operator_id: int
    username: str
    role: OperatorRole
    session_id: int
    csrf_token: str

    def can(self, role: OperatorRole) -> bool:
        """Whether the operator's role includes ``role``."""
        return self.role.allows(role)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The outcome of a login attempt: a cookie token, or why not."""

    token: str | None = None
    limited: bool = False


def token_hash(token: str) -> str:
    """The stored form of a cookie token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def _too_many_failures(db: Database, username: str, ip: str, now: dt.datetime) -> bool:
    since = now - RATE_WINDOW
    async with db.read() as session:
        by_name = await session.scalar(
            select(func.count()).where(
                LoginAttempt.username == username,
                LoginAttempt.at >= since,
                LoginAttempt.success.is_(False),
            )
        )
        by_ip = await session.scalar(
            select(func.count()).where(
                LoginAttempt.ip == ip, LoginAttempt.at >= since, LoginAttempt.success.is_(False)
            )
        )
    return (by_name or 0) >= MAX_FAILURES_PER_USERNAME or (by_ip or 0) >= MAX_FAILURES_PER_ADDRESS


async def log_in(
    db: Database, username: str, password: str, *, ip: str, user_agent: str | None
) -> LoginResult:
    """Check a username and password and open a session (audited either way).

    Rate limited: after too many failures for the username or from the address within
    :data:`RATE_WINDOW`, every attempt is refused without checking the password.
    """
    name = username.strip().lower()[:64]
    now = utcnow()
    if await _too_many_failures(db, name, ip, now):
        async with db.transaction() as session:
            audit(session, name or "?", "login_limited", f"address {ip}")
        return LoginResult(limited=True)
    async with db.read() as session:
        operator = await session.scalar(select(Operator).where(Operator.username == name))
    stored = operator.password_hash if operator is not None and operator.active else None
    ok = await verify_password(stored, password)
    async with db.transaction() as session:
        session.add(LoginAttempt(at=now, username=name, ip=ip[:64], success=ok))
        if not ok or operator is None:
            audit(session, name or "?", "login_failed", f"address {ip}")
            return LoginResult()
        token = secrets.token_urlsafe(32)
        session.add(
            ConsoleSession(
                token_hash=token_hash(token),
                operator_id=operator.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                expires_at=now + IDLE_TIMEOUT,
                ip=ip[:64],
                user_agent=(user_agent or "")[:300] or None,
            )
        )
        await mark_logged_in(session, operator.id)
        audit(session, operator.username, "login", f"address {ip}")
        # Old sessions and attempts go as new ones come: the tables stay small.
        await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        await session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - RATE_WINDOW * 4))
    if needs_rehash(operator.password_hash):
        rehashed = await hash_password(password)
        async with db.transaction() as session:
            await session.execute(
                update(Operator).where(Operator.id == operator.id).values(password_hash=rehashed)
            )
    return LoginResult(token=token)


async def current(db: Database, token: str) -> Current | None:
    """The operator of a cookie token, or ``None`` (unknown, expired or disabled)."""
    if not token or len(token) > 100:
        return None
    now = utcnow()
    async with db.read() as session:
        row = (
            await session.execute(
                select(ConsoleSession, Operator.username, Operator.role, Operator.active)
                .join(Operator, Operator.id == ConsoleSession.operator_id)
                .where(ConsoleSession.token_hash == token_hash(token))
            )
        ).first()
    if row is None:
        return None
    found, username, role, active = row
    if not active or found.expires_at <= now or found.created_at + MAX_AGE <= now:
        return None
    if now - found.last_seen_at >= TOUCH_EVERY:
        async with db.transaction() as session:
            await session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.id == found.id)
                .values(
                    last_seen_at=now,
                    expires_at=min(now + IDLE_TIMEOUT, found.created_at + MAX_AGE),
                )
            )
    return Current(found.operator_id, username, role, found.id, found.csrf_token)


async def log_out(db: Database, me: Current) -> None:
    """End a session (audited)."""
    async with db.transaction() as session:
        await session.execute(delete(ConsoleSession).where(ConsoleSession.id == me.session_id))
        audit(session, me.username, "logout", f"session {me.session_id}")
