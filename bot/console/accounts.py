"""Operator accounts: create, change password, disable, and the first-run admin."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console.passwords import hash_password, random_password
from storage import AuditEntry, ConflictError, Database, NotFoundError, NyalaError, utcnow
from storage.operators import ConsoleSession, Operator, OperatorRole

USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{1,63}")
FIRST_ADMIN = "admin"


class BadUsernameError(NyalaError):
    """A username that is not allowed."""


@dataclass(frozen=True, slots=True)
class FirstAdmin:
    """The admin created on a first run, with its password (shown once, never stored)."""

    username: str
    password: str


def normalize_username(username: str) -> str:
    """Lower-case and check a username.

    Raises:
        BadUsernameError: not 2-64 characters of ``a-z 0-9 . _ @ -`` starting with a
            letter or digit.
    """
    name = username.strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise BadUsernameError(
            f"bad username {username!r}: use 2-64 characters a-z, 0-9, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def audit(
    session: AsyncSession, actor: str, action: str, target: str, details: str | None = None
) -> None:
    """Write one row of the audit log in the caller's transaction."""
    session.add(
        AuditEntry(
            at=utcnow(),
            actor=actor[:120],
            action=action[:80],
            target=target[:200],
            details=details,
        )
    )


async def create_operator(
    db: Database, username: str, password: str, role: OperatorRole, *, actor: str
) -> Operator:
    """Create an operator account (audited).

    Raises:
        BadUsernameError: the username is not allowed.
        WeakPasswordError: the password is too short or too long.
        ConflictError: the username is taken.
    """
    name = normalize_username(username)
    hashed = await hash_password(password)
    try:
        async with db.transaction() as session:
            operator = Operator(username=name, password_hash=hashed, role=role, active=True)
            session.add(operator)
            await session.flush()
            audit(session, actor, "create_operator", f"operator {name}", f"role {role.value}")
    except IntegrityError as exc:
        raise ConflictError(f"operator {name!r} already exists") from exc
    return operator


async def set_password(db: Database, username: str, password: str, *, actor: str) -> None:
    """Change an operator's password and end all their console sessions (audited).

    Raises:
        NotFoundError: there is no such operator.
        WeakPasswordError: the password is too short or too long.
    """
    name = normalize_username(username)
    hashed = await hash_password(password)
    async with db.transaction() as session:
        operator = await session.scalar(select(Operator).where(Operator.username == name))
        if operator is None:
            raise NotFoundError(f"no operator {name!r}")
        operator.password_hash = hashed
        operator.password_changed_at = utcnow()
        await session.execute(
            delete(ConsoleSession).where(ConsoleSession.operator_id == operator.id)
        )
        audit(session, actor, "set_password", f"operator {name}")


async def set_active(db: Database, username: str, *, active: bool, actor: str) -> None:
    """Enable or disable an operator; disabling ends their sessions (audited).

    Raises:
        NotFoundError: there is no such operator.
    """
    name = normalize_username(username)
    async with db.transaction() as session:
        operator = await session.scalar(select(Operator).where(Operator.username == name))
        if operator is None:
            raise NotFoundError(f"no operator {name!r}")
        operator.active = active
        if not active:
            await session.execute(
                delete(ConsoleSession).where(ConsoleSession.operator_id == operator.id)
            )
        audit(
            session, actor, "enable_operator" if active else "disable_operator", f"operator {name}"
        )


async def list_operators(db: Database) -> list[Operator]:
    """Every operator, by username."""
    async with db.read() as session:
        return list(await session.scalars(select(Operator).order_by(Operator.username)))


async def ensure_first_admin(db: Database) -> FirstAdmin | None:
    """On a database without operators, create ``admin`` with a random password.

    Returns the account (its password is to be shown once to the person starting the
    server, never logged), or ``None`` when operators exist. Two processes starting at
    once create one admin: the loser's insert hits the unique username and it returns
    ``None``.
    """
    async with db.read() as session:
        if await session.scalar(select(func.count()).select_from(Operator)):
            return None
    password = random_password()
    try:
        await create_operator(db, FIRST_ADMIN, password, OperatorRole.ADMIN, actor="nyala serve")
    except ConflictError:
        return None
    return FirstAdmin(FIRST_ADMIN, password)


async def mark_logged_in(session: AsyncSession, operator_id: int) -> None:
    """Remember when an operator last logged in."""
    await session.execute(
        update(Operator).where(Operator.id == operator_id).values(last_login_at=utcnow())
    )


def first_admin_notice(first: FirstAdmin, console_url: str) -> str:
    """What ``nyala serve`` prints (once, to the terminal, never to a log) for a new admin."""
    return (
        f"console: no operators yet, so I created one. Open {console_url} and log in as "
        f"{first.username!r} with password {first.password!r}\n"
        f"console: this password is shown only now; change it with "
        f"'nyala operator password {first.username}'"
    )
