"""Operator passwords: rules, argon2id hashes, and random first-run passwords.

Hashing is deliberately slow (that is the point of argon2), so it runs in a thread and
never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from storage import NyalaError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256

# argon2-cffi's defaults follow RFC 9106's low-memory profile (argon2id).
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the username is unknown, so a wrong name takes as long as a wrong
    password. Made on first use, not at import: every ``nyala`` command imports this
    module and most never check a password."""
    return _HASHER.hash("not-a-real-password-but-same-cost")


class WeakPasswordError(NyalaError):
    """A password that does not meet the rules."""


def check_password(password: str) -> None:
    """Refuse passwords that are too short or too long.

    Raises:
        WeakPasswordError: with a one-line reason.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters "
            f"(it has {len(password)})"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


async def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (after :func:`check_password`)."""
    check_password(password)
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        dummy = _dummy_hash()  # made by the first check of any name: no timing tell
        return _HASHER.verify(stored or dummy, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (``None``: an unknown user, always false,
    in the same time as a real check)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    return await asyncio.to_thread(_verify, stored, password)


def needs_rehash(stored: str) -> bool:
    """Whether a hash was made with weaker parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def random_password() -> str:
    """A random password for a first-run admin: 20 URL-safe characters (120 bits)."""
    return secrets.token_urlsafe(15)
