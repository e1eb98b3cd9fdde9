"""A local fake of Omari's merchant API, for tests and local runs.

It serves ``POST {base}/payments`` the way :class:`apps.safari.omari.OmariClient` calls
it (``Authorization: Bearer <merchant key>``, a JSON body checked field by field) and
answers ``{"reference": ..., "status": "pending"}``. Like Omari, it then calls back: tests
say when, with :meth:`FakeOmari.confirm`, :meth:`FakeOmari.fail` and
:meth:`FakeOmari.replay` (signed exactly as Omari signs, or not, on request); local runs
can let it confirm every payment by itself after a few seconds (``auto_confirm``).

Whatever arrives is recorded in :attr:`FakeOmari.requests`, every callback it made in
:attr:`FakeOmari.deliveries`. Faults are injected with :meth:`FakeOmari.fail_next` (an
error answer) and :meth:`FakeOmari.hang_next` (no answer in time).

Run it alone with ``python -m bot.fake_omari --key K --secret S`` and point
``OMARI_API_BASE`` at the URL it prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import aiohttp
import click
from aiohttp import web

from apps.safari.omari_callback import SIGNATURE_HEADER, signature

__all__ = [
    "Delivery",
    "FakeOmari",
    "FakePayment",
    "RecordedRequest",
    "run_fake_omari",
]

log = logging.getLogger("nyala.fake_omari")

API_VERSION: Final = "v1"
_AMOUNT: Final = re.compile(r"\d{1,12}\.\d{2}")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_MSISDN: Final = re.compile(r"\+?\d{8,15}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request to the fake API.

    Attributes:
        method: the HTTP method.
        path: the URL path.
        body: the JSON body, when it parsed.
        status: the status answered (``None``: held back by :meth:`FakeOmari.hang_next`).
        reference: the payment reference given, when one was.
        at: when it arrived (UTC).
    """

    method: str
    path: str
    body: Mapping[str, Any] | None
    status: int | None
    reference: str | None = None
    at: datetime


@dataclass(slots=True, kw_only=True)
class FakePayment:
    """A payment the fake accepted.

    Attributes:
        reference: Omari's reference for it.
        merchant_reference: the merchant's (Nyala's payment id).
        booking_reference: the booking it pays.
        amount: as requested (``"120.00"``).
        currency: ISO 4217 code.
        msisdn: the wallet's number.
        callback_url: where the outcome is delivered.
        status: ``pending``, then ``success`` or ``failed`` once called back.
    """

    reference: str
    merchant_reference: str
    booking_reference: str
    amount: str
    currency: str
    msisdn: str
    callback_url: str
    status: str = "pending"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One callback the fake made, and what the merchant answered.

    Attributes:
        url: where it was posted.
        event: the event document.
        body: the exact bytes posted.
        headers: the headers sent (with the signature, unless left out).
        status: the merchant's HTTP status.
        answer: the merchant's JSON answer (``None`` if it was not JSON).
    """

    url: str
    event: Mapping[str, Any]
    body: bytes = field(repr=False)
    headers: Mapping[str, str]
    status: int
    answer: Any


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _problems(body: Mapping[str, Any]) -> list[str]:
    """What is wrong with a ``POST /payments`` body (empty when nothing)."""
    problems: list[str] = []

    def text(key: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key} is required (a non-empty string)")
            return ""
        return value

    text("merchant_reference")
    text("booking_reference")
    amount = text("amount")
    if amount and (not _AMOUNT.fullmatch(amount) or Decimal(amount) <= 0):
        problems.append('amount must be a positive decimal string with 2 places, e.g. "120.00"')
    currency = text("currency")
    if currency and not _CURRENCY.fullmatch(currency):
        problems.append("currency must be an ISO 4217 code such as USD")
    msisdn = text("msisdn")
    if msisdn and not _MSISDN.fullmatch(msisdn):
        problems.append("msisdn must be an international number such as +263771234567")
    callback = text("callback_url")
    if callback and not callback.startswith(("http://", "https://")):
        problems.append("callback_url must be an http(s) URL")
    unknown = set(body) - {
        "merchant_reference", "booking_reference", "amount", "currency", "msisdn",
        "callback_url",
    }  # fmt: skip
    if unknown:
        problems.append(f"unknown fields: {', '.join(sorted(unknown))}")
    return problems


class FakeOmari:
    """An in-process Omari on loopback that records, calls back on cue and misbehaves.

    Args:
        merchant_key: the key every request must carry as ``Bearer``.
        callback_secret: the shared secret callbacks are signed with.
        hang: seconds :meth:`hang_next` holds an answer back (choose it longer than the
            client's timeout); :meth:`stop` releases it at once.
        auto_confirm: when set, confirm every payment this many seconds after accepting it.
    """

    def __init__(
        self,
        *,
        merchant_key: str,
        callback_secret: str,
        hang: float = 30.0,
        auto_confirm: float | None = None,
    ) -> None:
        self.merchant_key = merchant_key
        self.callback_secret = callback_secret
        self.hang = hang
        self.auto_confirm = auto_confirm
        self.requests: list[RecordedRequest] = []
        self.payments: dict[str, FakePayment] = {}
        self.deliveries: list[Delivery] = []
        self.unregistered: set[str] = set()
        """Wallet numbers Omari does not know (answered 422 ``subscriber_not_found``)."""
        self.base_url: str | None = None
        self._faults: deque[tuple[int, str, str] | None] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._closing = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"FakeOmari(base_url={self.base_url!r}, payments={len(self.payments)})"

    # --- life cycle -------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0: any free port); returns the API base URL."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_post(f"/{API_VERSION}/payments", self._create)
        app.router.add_get(f"/{API_VERSION}/payments/{{reference}}", self._show)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self._http = aiohttp.ClientSession()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown}:{bound_port}/{API_VERSION}"
        log.info("fake Omari listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; held answers are released and automatic callbacks cancelled."""
        self._closing.set()
        for task in set(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> FakeOmari:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # --- faults -----------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        code: str = "internal_error",
        message: str = "Something went wrong",
    ) -> None:
        """Answer the next valid ``POST /payments`` with this error instead of accepting."""
        self._faults.append((status, code, message))

    def hang_next(self) -> None:
        """Hold the next valid ``POST /payments`` back for ``hang`` seconds (accepting
        nothing), so the client times out."""
        self._faults.append(None)

    # --- the API ----------------------------------------------------------------------

    def _record(
        self,
        request: web.Request,
        status: int | None,
        body: Mapping[str, Any] | None = None,
        reference: str | None = None,
    ) -> None:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                body=copy.deepcopy(dict(body)) if body is not None else None,
                status=status,
                reference=reference,
                at=datetime.now(UTC),
            )
        )

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if header != f"Bearer {self.merchant_key}":
            self._record(request, 401)
            return _error(401, "unauthorized", "missing or invalid merchant key")
        response: web.StreamResponse = await handler(request)
        return response

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            self._record(request, 400)
            return _error(400, "invalid_request", "the body is not JSON")
        if not isinstance(body, dict):
            self._record(request, 400)
            return _error(400, "invalid_request", "the body must be a JSON object")
        if problems := _problems(body):
            self._record(request, 400, body)
            return _error(400, "invalid_request", "; ".join(problems))
        if body["msisdn"] in self.unregistered:
            self._record(request, 422, body)
            return _error(422, "subscriber_not_found", "the number has no Omari wallet")
        if self._faults:
            fault = self._faults.popleft()
            if fault is None:
                self._record(request, None, body)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self.hang)
                return _error(503, "unavailable", "timed out")
            self._record(request, fault[0], body)
            return _error(*fault)
        for payment in self.payments.values():
            if payment.merchant_reference == body["merchant_reference"]:
                # Omari is idempotent on the merchant reference.
                same = (payment.amount, payment.currency, payment.msisdn) == (
                    body["amount"], body["currency"], body["msisdn"],
                )  # fmt: skip
                if not same:
                    self._record(request, 409, body)
                    return _error(409, "duplicate_transaction", "merchant_reference already used")
                self._record(request, 200, body, payment.reference)
                return web.json_response({"reference": payment.reference, "status": "pending"})
        reference = f"OM{next(self._ids):06d}{secrets.token_hex(4).upper()}"
        self.payments[reference] = FakePayment(
            reference=reference,
            merchant_reference=body["merchant_reference"],
            booking_reference=body["booking_reference"],
            amount=body["amount"],
            currency=body["currency"],
            msisdn=body["msisdn"],
            callback_url=body["callback_url"],
        )
        self._record(request, 201, body, reference)
        if self.auto_confirm is not None:
            task = asyncio.create_task(self._confirm_later(reference, self.auto_confirm))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"reference": reference, "status": "pending"}, status=201)

    async def _show(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["reference"])
        if payment is None:
            self._record(request, 404)
            return _error(404, "not_found", "no such payment")
        self._record(request, 200, reference=payment.reference)
        return web.json_response(
            {"reference": payment.reference, "status": payment.status, "amount": payment.amount}
        )

    async def _confirm_later(self, reference: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            delivery = await self.confirm(reference)
        except aiohttp.ClientError as exc:
            log.warning("callback for %s failed: %s", reference, exc)
            return
        log.info("callback for %s answered %s", reference, delivery.status)

    # --- callbacks --------------------------------------------------------------------

    def event(
        self,
        reference: str,
        /,
        *,
        status: str = "success",
        reason: str | None = None,
        event_id: str | None = None,
        timestamp: float | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """The callback document for a payment the fake accepted.

        Args:
            reference: the payment's Omari reference.
            status: ``success`` or ``failed``.
            reason: why it failed.
            event_id: the event's id (default: a new one).
            timestamp: unix seconds (default: now).
            **overrides: fields to replace or add (``amount="1.00"``, ...).
        """
        payment = self.payments[reference]
        document: dict[str, Any] = {
            "event_id": event_id or f"evt_{uuid.uuid4().hex}",
            "reference": payment.reference,
            "merchant_reference": payment.merchant_reference,
            "amount": payment.amount,
            "currency": payment.currency,
            "status": status,
            "timestamp": int(time.time() if timestamp is None else timestamp),
        }
        if reason is not None:
            document["reason"] = reason
        document.update(overrides)
        return document

    async def deliver(
        self,
        event: Mapping[str, Any],
        *,
        url: str | None = None,
        forged: str | None = None,
        unsigned: bool = False,
    ) -> Delivery:
        """Post a callback document, signed with the shared secret.

        Args:
            event: the document (see :meth:`event`).
            url: where to (default: the callback URL of the payment it names).
            forged: an ``X-Omari-Signature`` value to send instead of the right one.
            unsigned: send no signature at all.
        """
        if url is None:
            url = self._payment_named(event).callback_url
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json"}
        if not unsigned:
            headers[SIGNATURE_HEADER] = forged or signature(self.callback_secret, body)
        return await self._post(url, dict(event), body, headers)

    def _payment_named(self, event: Mapping[str, Any]) -> FakePayment:
        """The payment an event is about: by Omari's reference, else by the merchant's."""
        payment = self.payments.get(str(event.get("reference")))
        if payment is not None:
            return payment
        for payment in self.payments.values():
            if payment.merchant_reference == str(event.get("merchant_reference")):
                return payment
        raise KeyError(f"no payment for {event.get('reference')!r}: pass url=")

    async def _post(
        self, url: str, event: dict[str, Any], body: bytes, headers: dict[str, str]
    ) -> Delivery:
        if self._http is None:
            raise RuntimeError("start the fake before delivering callbacks")
        async with self._http.post(url, data=body, headers=headers) as response:
            status = response.status
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = None
        payment = self.payments.get(str(event.get("reference")))
        if payment is not None and status == 200 and event.get("status") in ("success", "failed"):
            payment.status = str(event["status"])
        delivery = Delivery(
            url=url, event=event, body=body, headers=headers, status=status, answer=answer
        )
        self.deliveries.append(delivery)
        return delivery

    async def confirm(self, reference: str, /, **overrides: Any) -> Delivery:
        """Tell the merchant the customer approved the payment (see :meth:`event`)."""
        return await self.deliver(self.event(reference, status="success", **overrides))

    async def fail(
        self, reference: str, /, reason: str = "Insufficient funds", **overrides: Any
    ) -> Delivery:
        """Tell the merchant the payment failed."""
        return await self.deliver(
            self.event(reference, status="failed", reason=reason, **overrides)
        )

    async def replay(self, delivery: Delivery) -> Delivery:
        """Post an earlier callback again, byte for byte (same event id, same signature)."""
        return await self._post(
            delivery.url, dict(delivery.event), delivery.body, dict(delivery.headers)
        )


async def run_fake_omari(
    host: str,
    port: int,
    *,
    merchant_key: str,
    callback_secret: str,
    auto_confirm: float | None,
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """Serve a :class:`FakeOmari` until cancelled.

    Args:
        host: the address to listen on; keep it on loopback.
        port: the port (0 picks a free one).
        merchant_key: the key clients must send.
        callback_secret: the secret callbacks are signed with.
        auto_confirm: confirm each payment this many seconds after it (``None``: never).
        on_ready: called with the base URL once it listens.
    """
    fake = FakeOmari(
        merchant_key=merchant_key, callback_secret=callback_secret, auto_confirm=auto_confirm
    )
    try:
        url = await fake.start(host, port)
        if on_ready is not None:
            on_ready(url)
        await asyncio.Event().wait()
    finally:
        await fake.stop()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8098, show_default=True, type=click.IntRange(0, 65535))
@click.option("--key", envvar="OMARI_MERCHANT_KEY", required=True, help="The merchant key")
@click.option(
    "--secret", envvar="OMARI_CALLBACK_SECRET", required=True, help="The callback secret"
)
@click.option(
    "--auto-confirm",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Confirm each payment after this many seconds",
)
def main(host: str, port: int, key: str, secret: str, auto_confirm: float) -> None:
    """Run a local fake of Omari's merchant API that confirms payments by itself."""

    def ready(url: str) -> None:
        click.echo(f"fake Omari listening at {url} (set OMARI_API_BASE={url})", err=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_fake_omari(
                host,
                port,
                merchant_key=key,
                callback_secret=secret,
                auto_confirm=auto_confirm,
                on_ready=ready,
            )
        )


if __name__ == "__main__":
    main()
