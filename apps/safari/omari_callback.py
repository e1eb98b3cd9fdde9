"""``POST /payments/omari/callback``: Omari's signed word that a payment succeeded or failed.

Checked in this order, answering with a JSON ``{"error": {"code", "message"}}`` and
storing nothing when a check fails:

1. ``OMARI_CALLBACK_SECRET`` unset → 503 (signature checking cannot be switched off);
2. body over 64 KiB → 413;
3. ``X-Omari-Signature: sha256=<hex>`` (HMAC-SHA256 of the raw body with the shared
   secret, compared in constant time): missing → 401, wrong → 403;
4. not a JSON object with ``event_id``, ``reference``, ``merchant_reference``,
   ``amount``, ``currency``, ``status`` (``success``/``failed``), ``timestamp`` → 400;
5. ``timestamp`` (unix seconds) older than 10 minutes or over 2 minutes ahead → 400 (the
   replay window: a captured callback cannot be replayed later);
6. then :func:`apps.safari.omari.apply_provider_event` in one transaction: no such Omari
   payment → 404; reference, amount or currency differ (or the payment cannot take this
   outcome) → 409; applied → 200; an event id seen before → 200, changing nothing.

Omari delivers each attempt re-signed with its own timestamp, so its retries pass step 5.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from aiohttp import web

from apps.safari.omari import (
    CALLBACK_PATH,
    EventStatus,
    PaymentConflictError,
    PaymentEvent,
    ReceiptHooks,
    UnknownPaymentError,
    apply_provider_event,
)
from bot.web import Route, runtime_of
from storage import Database

__all__ = [
    "MAX_AGE",
    "MAX_BODY_BYTES",
    "MAX_SKEW",
    "SIGNATURE_HEADER",
    "CallbackError",
    "OmariCallback",
    "callback_route",
    "parse_event",
    "signature",
]

log = logging.getLogger("nyala.payments")

SIGNATURE_HEADER: Final = "X-Omari-Signature"
MAX_BODY_BYTES: Final = 64 * 1024
MAX_AGE: Final = dt.timedelta(minutes=10)
MAX_SKEW: Final = dt.timedelta(minutes=2)
MAX_AMOUNT: Final = Decimal(10) ** 12  # payments.amount is NUMERIC(14, 2)


def signature(secret: str, body: bytes) -> str:
    """The ``X-Omari-Signature`` value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class CallbackError(ValueError):
    """A signed callback body that is not a valid Omari event (the message says why)."""


def _text(document: dict[str, Any], key: str, *, limit: int = 120) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CallbackError(f"{key} must be a non-empty string")
    if len(value) > limit:
        raise CallbackError(f"{key} is longer than {limit} characters")
    return value.strip()


def _amount(value: object) -> Decimal:
    # Money never passes through float: JSON numbers are parsed as Decimal.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise CallbackError('amount must be a decimal string such as "120.00"')
    try:
        amount = Decimal(str(value).strip())
        exact = amount.is_finite() and 0 < amount < MAX_AMOUNT and amount == round(amount, 2)
    except InvalidOperation:
        exact = False
    if not exact:
        raise CallbackError(f"amount {value!r} is not a positive amount with at most 2 decimals")
    return amount


def _payment_id(merchant_reference: str) -> int:
    """Our payment id; 0 (no payment has it) when the reference is not one of our ids."""
    if merchant_reference.isascii() and merchant_reference.isdigit():
        number = int(merchant_reference)
        if number < 2**63:
            return number
    return 0


def parse_event(document: object) -> PaymentEvent:
    """Read Omari's callback body.

    Args:
        document: the parsed JSON (numbers as :class:`~decimal.Decimal`).

    Returns:
        The event; ``payment_id`` is 0 when ``merchant_reference`` is not one of our
        payment ids (no payment has it, so applying it answers "unknown payment").

    Raises:
        CallbackError: a field is missing or malformed.
    """
    if not isinstance(document, dict):
        raise CallbackError("the body must be a JSON object")
    status = document.get("status")
    # A list or an object is unhashable: test membership in a tuple, never a set.
    if not isinstance(status, str) or status not in tuple(s.value for s in EventStatus):
        raise CallbackError('status must be "success" or "failed"')
    merchant_reference = _text(document, "merchant_reference")
    currency = _text(document, "currency", limit=3).upper()
    if len(currency) != 3 or not currency.isalpha():
        raise CallbackError('currency must be an ISO 4217 code such as "USD"')
    timestamp = document.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | Decimal):
        raise CallbackError("timestamp must be unix seconds")
    try:
        occurred_at = dt.datetime.fromtimestamp(float(timestamp), dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise CallbackError("timestamp is out of range") from None
    reason = document.get("reason")
    return PaymentEvent(
        event_id=_text(document, "event_id"),
        provider_reference=_text(document, "reference"),
        payment_id=_payment_id(merchant_reference),
        amount=_amount(document.get("amount")),
        currency=currency,
        status=EventStatus(status),
        reason=reason[:500] if isinstance(reason, str) else None,
        occurred_at=occurred_at,
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class OmariCallback:
    """The handler of ``POST /payments/omari/callback``.

    Args:
        db: the database.
        secret: the shared secret (``None``: every callback answers 503).
        sandbox: store customer messages as ``sandbox`` rows (no WhatsApp sender).
        hooks: what a confirmation triggers (the receipt).
        on_replies: called when messages were queued (wakes the sender).
        clock: unix time now (tests move it).
    """

    def __init__(
        self,
        db: Database,
        *,
        secret: str | None,
        sandbox: bool,
        hooks: ReceiptHooks | None = None,
        on_replies: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self._secret = secret
        self.sandbox = sandbox
        self.hooks = hooks
        self.on_replies = on_replies
        self.clock = clock

    def __repr__(self) -> str:
        return f"OmariCallback(sandbox={self.sandbox}, secret={'set' if self._secret else None})"

    async def receive(self, request: web.Request) -> web.Response:
        """Authenticate, check and apply one callback (see the module's docstring)."""
        if self._secret is None:
            return _error(
                503, "unavailable", "OMARI_CALLBACK_SECRET is not set: cannot check signatures"
            )
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _error(413, "too_large", "the body is over 64 KiB")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", "the body is over 64 KiB")
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "too_large", "the body is over 64 KiB")
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            log.warning("omari callback without %s refused", SIGNATURE_HEADER)
            return _error(401, "unauthenticated", f"{SIGNATURE_HEADER} is missing")
        if not hmac.compare_digest(
            header.strip().lower().encode(), signature(self._secret, body).encode()
        ):
            log.warning("omari callback with a wrong signature refused")
            return _error(403, "forbidden", f"{SIGNATURE_HEADER} does not match the body")
        try:
            event = parse_event(json.loads(body.decode("utf-8"), parse_float=Decimal))
        # CallbackError is a ValueError; RecursionError: JSON nested deeper than Python goes.
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, CallbackError) else "the body is not JSON"
            log.warning("omari callback refused: %s", reason)
            return _error(400, "invalid", reason)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        if event.occurred_at < now - MAX_AGE or event.occurred_at > now + MAX_SKEW:
            log.warning("omari event %s outside the replay window refused", event.event_id)
            return _error(
                400, "stale", "timestamp is outside the accepted window (-10 min, +2 min)"
            )
        try:
            outcome = await apply_provider_event(
                self.db, event, sandbox=self.sandbox, hooks=self.hooks
            )
        except UnknownPaymentError as exc:
            log.warning("omari event %s: %s", event.event_id, exc)
            return _error(404, "unknown_payment", "no payment has this merchant_reference")
        except PaymentConflictError as exc:
            log.warning("omari event %s refused: %s", event.event_id, exc)
            return _error(409, "conflict", str(exc))
        except Exception:  # e.g. the database is down: Omari delivers the event again later
            log.exception("omari event %s could not be applied", event.event_id)
            return _error(500, "internal", "the event could not be applied; retry later")
        if outcome.queued and self.on_replies is not None:
            self.on_replies()
        return web.json_response(
            {
                "status": "ok",
                "outcome": outcome.kind.value,
                "payment": str(outcome.payment_id),
                "booking": outcome.booking_reference,
            }
        )


async def _receive(request: web.Request) -> web.StreamResponse:
    return await runtime_of(request).services.get(OmariCallback).receive(request)


callback_route = Route("POST", CALLBACK_PATH, _receive, name="omari_callback")
"""``POST /payments/omari/callback`` (the app's route; its handler is the running app's
:class:`OmariCallback` service)."""
