"""Console login sessions and the login rate limit, kept in the database.

The cookie holds a random token; the database keeps only its SHA-256, the operator, a
CSRF token and when the session expires (sliding, with an absolute cap). Failed logins
are counted per (username, address), per address and per username over a window, in the
database and under a lock, so the limit is exact across concurrent requests and every
server process.
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
MAX_FAILURES_PER_PAIR = 5  # one username from one address
MAX_FAILURES_PER_ADDRESS = 20  # any usernames from one address
MAX_FAILURES_PER_USERNAME = 50  # one username from every address together


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
    retry_after: float = 0.0  # seconds, when limited


def token_hash(token: str) -> str:
    """The stored form of a cookie token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _lock_key(kind: str, value: str) -> int:
    """A signed 64-bit advisory lock key for one limit (PostgreSQL)."""
    digest = hashlib.sha256(f"nyala.login.{kind}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _reserve(db: Database, username: str, ip: str) -> tuple[int | None, float]:
    """Count this attempt against the limits, atomically, before the password is checked.

    In one write transaction that holds the username's and the address's lock (SQLite:
    ``BEGIN IMMEDIATE``, one writer at a time; PostgreSQL: transaction-scoped advisory
    locks, taken in a fixed order), the failures in the window are counted and, if every
    limit allows one more, the attempt is written as a failure (turned into a success
    once the password checks). So N parallel guesses from any number of processes check
    exactly the limit's worth of passwords. Returns ``(attempt id, 0)``, or ``(None,
    seconds until the oldest counted failure ages out)`` when a limit is reached.

    The attempt's time is read once the locks are held, so attempts are written in the
    order they were counted and the wait never exceeds :data:`RATE_WINDOW` (a time read
    before waiting for the lock could be older than a failure counted meanwhile).
    """
    limits = (
        (MAX_FAILURES_PER_PAIR, (LoginAttempt.username == username, LoginAttempt.ip == ip)),
        (MAX_FAILURES_PER_ADDRESS, (LoginAttempt.ip == ip,)),
        (MAX_FAILURES_PER_USERNAME, (LoginAttempt.username == username,)),
    )
    async with db.transaction() as session:
        if db.is_postgresql:
            for key in sorted({_lock_key("user", username), _lock_key("ip", ip)}):
                await session.execute(select(func.pg_advisory_xact_lock(key)))
        else:
            await session.connection()  # BEGIN IMMEDIATE: SQLite's write lock, held
        now = utcnow()
        failed = (LoginAttempt.at >= now - RATE_WINDOW, LoginAttempt.success.is_(False))
        for limit, where in limits:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(LoginAttempt.at)).where(*where, *failed)
                )
            ).one()
            if (count or 0) >= limit:
                wait = (oldest + RATE_WINDOW - now).total_seconds() if oldest else 1.0
                return None, min(max(1.0, wait), RATE_WINDOW.total_seconds())
        attempt = LoginAttempt(at=now, username=username, ip=ip, success=False)
        session.add(attempt)
        await session.flush()
        return attempt.id, 0.0


async def log_in(
    db: Database, username: str, password: str, *, ip: str, user_agent: str | None
) -> LoginResult:
    """Check a username and password and open a session (audited either way).

    Rate limited (see :func:`_reserve`): after :data:`MAX_FAILURES_PER_PAIR` failures
    for the username from one address, :data:`MAX_FAILURES_PER_ADDRESS` from the
    address, or :data:`MAX_FAILURES_PER_USERNAME` for the username from anywhere
    (enough addresses that one cannot lock the operator out from another) within
    :data:`RATE_WINDOW`, every attempt is refused without checking the password.
    """
    name = username.strip().lower()[:64]
    ip = ip[:64]
    now = utcnow()
    attempt_id, wait = await _reserve(db, name, ip)
    if attempt_id is None:
        async with db.transaction() as session:
            audit(session, name or "?", "login_limited", f"address {ip}")
        return LoginResult(limited=True, retry_after=wait)
    async with db.read() as session:
        operator = await session.scalar(select(Operator).where(Operator.username == name))
    stored = operator.password_hash if operator is not None and operator.active else None
    ok = await verify_password(stored, password)
    async with db.transaction() as session:
        if not ok or operator is None:
            audit(session, name or "?", "login_failed", f"address {ip}")
            return LoginResult()
        await session.execute(
            update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(success=True)
        )
        token = secrets.token_urlsafe(32)
        session.add(
            ConsoleSession(
                token_hash=token_hash(token),
                operator_id=operator.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                expires_at=now + IDLE_TIMEOUT,
                ip=ip,
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
