"""The WhatsApp webhook: Meta's verification handshake and signed notifications.

``POST /webhook`` checks ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the app
secret, constant-time compare) before anything else: missing → 401, wrong → 403, nothing
stored. Syntactically malformed JSON → 400. Anything well-formed and signed → 200 after
the messages are stored durably, including updates Nyala does not act on (recorded and
ignored, so Meta does not retry them for a week). Processing starts after the commit.

Concurrent requests share transactions (group commit, :class:`bot.whatsapp.inbox.GroupCommit`):
each is still answered only after its own rows are committed, but one commit serves
many requests, so the acknowledgement rate is not bounded by the commit rate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from aiohttp import web

from bot.metrics import Metrics
from bot.whatsapp.inbox import GroupCommit
from bot.whatsapp.payloads import parse_webhook
from bot.whatsapp.processing import Kicker
from storage import Database

log = logging.getLogger("nyala.webhook")

SIGNATURE_HEADER = "X-Hub-Signature-256"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class Webhook:
    """The webhook's handlers.

    Args:
        db: the database.
        inbox: processes stored messages.
        metrics: where to count.
        app_secret: the Meta app secret (``None``: POST answers 503).
        verify_token: the token typed into Meta's dashboard (``None``: GET answers 403).
        mark_read: queue a read receipt for each new message (live mode only).
        own_connection: store through a PostgreSQL connection of the webhook's own, so
            acknowledging never waits behind processing and the outbox for a pooled
            connection (:class:`GroupCommit`); call :meth:`close` at shutdown.
    """

    def __init__(
        self,
        db: Database,
        inbox: Kicker,
        metrics: Metrics,
        *,
        app_secret: str | None,
        verify_token: str | None,
        mark_read: bool,
        own_connection: bool = False,
    ) -> None:
        self.db = db
        self.inbox = inbox
        self.metrics = metrics
        self._secret = app_secret
        self._verify_token = verify_token
        self.mark_read = mark_read
        self.group = GroupCommit(
            db,
            mark_read=mark_read,
            metrics=metrics,
            own_connection=own_connection,
            announce=inbox.announce_on,
        )

    async def close(self) -> None:
        """Finish storing, and close the webhook's own connection (if it has one)."""
        await self.group.close()

    async def verify(self, request: web.Request) -> web.Response:
        """``GET /webhook``: echo ``hub.challenge`` when ``hub.verify_token`` matches."""
        query = request.query
        token = query.get("hub.verify_token", "")
        challenge = query.get("hub.challenge", "")
        if (
            self._verify_token
            and query.get("hub.mode") == "subscribe"
            and challenge
            and hmac.compare_digest(token.encode(), self._verify_token.encode())
        ):
            return web.Response(text=challenge, content_type="text/plain")
        return web.Response(status=403, text="Forbidden")

    async def receive(self, request: web.Request) -> web.Response:
        """``POST /webhook``: verify, store, acknowledge, then process."""
        started = time.perf_counter()
        with self.inbox.acknowledging():
            response = await self._receive(request)
        self.metrics.webhook_requests.labels(status=str(response.status)).inc()
        self.metrics.webhook_latency.observe(time.perf_counter() - started)
        return response

    async def _receive(self, request: web.Request) -> web.Response:
        if self._secret is None:
            return web.Response(
                status=503, text="WHATSAPP_APP_SECRET is not set: signatures cannot be checked"
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            log.warning("webhook body over the size limit refused")
            return web.Response(status=413, text="Payload Too Large")
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            log.warning("webhook without %s refused", SIGNATURE_HEADER)
            return web.Response(status=401, text="Missing signature")
        if not hmac.compare_digest(
            header.strip().encode(), signature(self._secret, body).encode()
        ):
            log.warning("webhook with a wrong signature refused")
            return web.Response(status=403, text="Invalid signature")
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            log.warning("webhook body is not JSON (%d bytes)", len(body))
            return web.Response(status=400, text="Malformed JSON")
        except RecursionError:  # nested deeper than Python's recursion limit
            log.warning("webhook JSON nested too deeply (%d bytes)", len(body))
            return web.Response(status=400, text="Malformed JSON: nested too deeply")
        batch = parse_webhook(document)
        stored = await self.group.store(batch)
        self.metrics.inbound_stored.inc(stored.new_messages)
        self.metrics.inbound_duplicates.inc(stored.duplicates)
        self.metrics.ignored_updates.inc(stored.ignored)
        for status in batch.statuses:
            self.metrics.statuses.labels(status=status.status).inc()
        for reported in batch.reported:
            code = reported.error.code
            self.metrics.webhook_errors.labels(
                code=str(code) if code is not None else "none"
            ).inc()
        if stored.contacts and self.group.announce is None:  # else announced with them
            self.inbox.kick(stored.contacts)
        return web.Response(text="OK")
