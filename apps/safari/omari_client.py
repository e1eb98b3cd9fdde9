"""The Omari HTTP adapter: initiates mobile-money payments over Omari's REST API.

The confirmation service, the sandbox provider and the confirmation hooks are in
:mod:`apps.safari.omari`; the app's lifespan makes this client when Omari is configured.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from apps.safari.omari import (
    BUSY,
    CENTS,
    CUSTOMER_ERRORS,
    PROVIDER,
    REFUSED,
    TIMED_OUT,
    instructions,
)
from apps.safari.payments import (
    UNAVAILABLE,
    Initiated,
    PaymentOutcomeUnknownError,
    PaymentProviderError,
    PaymentRequest,
)

log = logging.getLogger("nyala.omari")


class OmariClient:
    """:class:`~apps.safari.payments.PaymentProvider` for Omari's REST API.

    ``POST {base_url}/payments`` with ``Authorization: Bearer <merchant key>`` and a JSON
    body naming our payment (``merchant_reference``), the amount and the customer's
    number; Omari answers ``{"reference": ..., "status": "pending"}`` and calls
    ``callback_url`` when the customer approved or declined.

    Args:
        http: the HTTP client session (owned by the caller).
        base_url: Omari's API base, e.g. ``https://api.omari.example/v1``.
        merchant_key: the merchant API key (a secret: never logged).
        callback_url: where Omari calls back (``NYALA_PUBLIC_URL`` + :data:`CALLBACK_PATH`).
        timeout: seconds for one request.
    """

    name = PROVIDER

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        merchant_key: str,
        callback_url: str,
        timeout: float = 15.0,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._key = merchant_key
        self.callback_url = callback_url
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"OmariClient(base_url={self.base_url!r}, callback_url={self.callback_url!r})"

    async def initiate(self, request: PaymentRequest) -> Initiated:
        """Ask Omari to collect ``request`` from the customer's wallet.

        Raises:
            PaymentProviderError: Omari refused, failed or did not answer in time; the
                message is for the customer.
        """
        body = {
            "merchant_reference": str(request.payment_id),
            "booking_reference": request.booking_reference,
            "amount": f"{request.amount.quantize(CENTS)}",
            "currency": request.currency,
            "msisdn": request.mobile_number,
            "callback_url": self.callback_url,
        }
        try:
            async with self.http.post(
                f"{self.base_url}/payments",
                json=body,
                headers={"Authorization": f"Bearer {self._key}"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            log.warning("omari timed out initiating payment %s", request.payment_id)
            raise PaymentOutcomeUnknownError(TIMED_OUT) from None
        except aiohttp.ClientError as exc:
            log.warning(
                "omari unreachable initiating payment %s: %s",
                request.payment_id, type(exc).__name__,
            )  # fmt: skip
            raise PaymentProviderError(BUSY) from None
        answer = _json_object(raw)
        if status in (200, 201, 202):
            reference = answer.get("reference")
            if isinstance(reference, str) and reference and answer.get("status") == "pending":
                log.info("omari payment %s initiated as %s", request.payment_id, reference)
                return Initiated(provider_reference=reference, instructions=instructions(request))
            log.error("omari answered %s with an unexpected body", status)
            raise PaymentProviderError(REFUSED)
        raise PaymentProviderError(_refusal(status, answer, request.payment_id))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _refusal(status: int, answer: dict[str, Any], payment_id: int) -> str:
    """The customer's message for an Omari error answer (logged for the operator)."""
    error = answer.get("error")
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    log.warning("omari refused payment %s: HTTP %s %s", payment_id, status, code or "-")
    if status in (401, 403):
        log.error("omari rejected the merchant key: check OMARI_MERCHANT_KEY")
        return UNAVAILABLE
    if status == 429 or status >= 500:
        return BUSY
    return CUSTOMER_ERRORS.get(code, REFUSED)
