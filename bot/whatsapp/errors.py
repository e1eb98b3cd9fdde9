"""Graph API errors as typed exceptions, chosen by Meta's error code.

Meta advises building logic on ``error.code`` (and ``error_data.details``), not on titles or
HTTP status (WHATSAPP.md §6). :func:`error_from_response` maps a Graph error body to the
most specific class via ``__error_codes__``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from storage import NyalaError


class WhatsAppError(NyalaError):
    """Something went wrong talking to WhatsApp."""


class WhatsAppAPIError(WhatsAppError):
    """The Graph API answered with an error.

    Attributes:
        code: Meta's error code (``None`` when the body had none).
        status: the HTTP status.
        details: ``error_data.details``.
        retry_after: seconds to wait before trying again, when known.
        fbtrace_id: Meta's trace id, for support requests.
    """

    __error_codes__: ClassVar[frozenset[int]] = frozenset()
    retryable: ClassVar[bool] = False
    default_retry_after: ClassVar[float | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        details: str | None = None,
        retry_after: float | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        self.code = code
        self.status = status
        self.details = details
        self.retry_after = retry_after if retry_after is not None else self.default_retry_after
        self.fbtrace_id = fbtrace_id
        label = f"({code}) " if code is not None else ""
        super().__init__(f"{label}{message}" + (f": {details}" if details else ""))


class ThroughputLimitError(WhatsAppAPIError):
    """Throughput or API rate limit reached: retry later with backoff."""

    __error_codes__ = frozenset({130429, 80007, 4})
    retryable = True


class PairRateLimitError(WhatsAppAPIError):
    """Too many messages to one user (1 per 6 s): back off for that recipient only."""

    __error_codes__ = frozenset({131056})
    retryable = True
    default_retry_after = 6.0


class TemporaryServerError(WhatsAppAPIError):
    """Meta's side failed temporarily: retry with backoff."""

    __error_codes__ = frozenset({131000, 131016, 1, 2, 133004})
    retryable = True


class AccountMaintenanceError(WhatsAppAPIError):
    """The account is in maintenance (e.g. a throughput upgrade): retry in about a minute."""

    __error_codes__ = frozenset({131057})
    retryable = True
    default_retry_after = 60.0


class OutsideWindowError(WhatsAppAPIError):
    """More than 24 hours since the user last wrote: only a template may be sent."""

    __error_codes__ = frozenset({131047})


class UndeliverableError(WhatsAppAPIError):
    """The recipient cannot receive messages (not on WhatsApp, old client, ...)."""

    __error_codes__ = frozenset({131026})


class RecipientOptedOutError(WhatsAppAPIError):
    """Marketing engagement limits or an opt-out: do not retry."""

    __error_codes__ = frozenset({131049, 131050})


class SpamRateLimitError(WhatsAppAPIError):
    """Quality-based spam limit: no blind retries."""

    __error_codes__ = frozenset({131048})


class TemplateError(WhatsAppAPIError):
    """The template or its parameters are wrong, paused or disabled."""

    __error_codes__ = frozenset({132000, 132001, 132005, 132007, 132012, 132015, 132016})


class InvalidRequestError(WhatsAppAPIError):
    """The request itself is wrong (parameters, unsupported type): fix it, don't retry."""

    __error_codes__ = frozenset({100, 131008, 131009, 131051, 131052, 131053, 131062})


class AuthenticationError(WhatsAppAPIError):
    """The access token is invalid or lacks permissions."""

    __error_codes__ = frozenset({0, 10, 190, 200})


class GraphTimeoutError(WhatsAppError):
    """No answer in time: the message may or may not have been accepted."""


class GraphUnavailableError(WhatsAppError):
    """The Graph API could not be reached (connection refused, DNS, TLS...)."""


_BY_CODE: dict[int, type[WhatsAppAPIError]] = {
    code: cls
    for cls in (
        ThroughputLimitError,
        PairRateLimitError,
        TemporaryServerError,
        AccountMaintenanceError,
        OutsideWindowError,
        UndeliverableError,
        RecipientOptedOutError,
        SpamRateLimitError,
        TemplateError,
        InvalidRequestError,
        AuthenticationError,
    )
    for code in cls.__error_codes__
}


def error_class(code: int | None, status: int | None = None) -> type[WhatsAppAPIError]:
    """The exception class for a Graph error code (HTTP 5xx/429 without a known code
    count as temporary)."""
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status is not None and (status >= 500 or status == 429):
        return TemporaryServerError
    return WhatsAppAPIError


def error_from_response(
    status: int, body: Any, *, retry_after: float | None = None
) -> WhatsAppAPIError:
    """Build the typed exception for a Graph API error response."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        cls = error_class(None, status)
        return cls(f"HTTP {status} without a Graph error body", status=status)
    code = error.get("code")
    code = code if isinstance(code, int) else None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    cls = error_class(code, status)
    return cls(
        str(error.get("message") or f"HTTP {status}"),
        code=code,
        status=status,
        details=str(details) if details else None,
        retry_after=retry_after,
        fbtrace_id=error.get("fbtrace_id"),
    )


_CODE_PREFIX = re.compile(r"^\(#?\d+\)\s*")
_WORDS = re.compile(r"\W+")


def _words(text: str) -> str:
    """``text`` as lower-case words between spaces, for "already said" checks."""
    return f" {_WORDS.sub(' ', text.casefold()).strip()} "


def error_text(
    exc: Exception | None = None,
    *,
    code: int | None = None,
    title: str | None = None,
    message: str | None = None,
    details: str | None = None,
) -> str:
    """The ``last_error`` of an outbound row: the code, then each distinct text once.

    Meta's errors often say the same thing two or three times (``title`` equal to
    ``message``, a message that starts with ``(#131026)``, details that repeat the
    message); a part already said by another is left out. Pass a raised exception or
    the fields of a reported error.
    """
    if isinstance(exc, WhatsAppAPIError):
        code, details = exc.code, exc.details
        text = str(exc)
        label = f"({code}) " if code is not None else ""
        text = text.removeprefix(label)
        if details and text.endswith(f": {details}"):
            text = text[: -len(details) - 2]
        message = text
    elif exc is not None:
        return (str(exc) or type(exc).__name__)[:2000]
    parts: list[str] = []
    for given in (title, message, details):
        part = _CODE_PREFIX.sub("", (given or "").strip())
        key = _words(part)
        if key == "  ":
            continue
        if any(key in _words(p) for p in parts):
            continue  # already said
        # A later part that says all an earlier one said replaces it.
        parts = [p for p in parts if _words(p) not in key]
        parts.append(part)
    label = f"({code}) " if code is not None else ""
    return (label + ": ".join(parts)).strip()[:2000] or "no reason given"
