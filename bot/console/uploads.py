"""Files operators attach in the console: the real size limit and the same checks as
WhatsApp media (:mod:`bot.files`).

The server's body limit (``NYALA_MAX_BODY_BYTES``, 4 MB by default) protects the webhook;
console forms may carry a file of up to :data:`MAX_UPLOAD` (10 MB) plus the form around
it, so console requests get their own limit, and one over it is answered with a page that
says the limit, not a bare 413.
"""

from __future__ import annotations

import asyncio
import dataclasses

from aiohttp import web

from bot.console.web import Handler, flash, render, settings_of
from bot.files import CheckedFile, FileLimits, check_file, human_size

__all__ = ["FORM_OVERHEAD", "MAX_UPLOAD", "body_limit", "check_upload", "refusal"]

MAX_UPLOAD = 10 * 1024 * 1024  # the promised limit of a console upload
FORM_OVERHEAD = 256 * 1024  # the multipart framing and the form's other fields


async def check_upload(
    request: web.Request, content: bytes, claimed_mime: str | None, *, max_bytes: int
) -> CheckedFile:
    """Check an attached file like WhatsApp media (off the event loop).

    Raises:
        bot.files.FileRefusedError: it failed a check; it must not be stored.
    """
    limits = dataclasses.replace(
        FileLimits.from_settings(settings_of(request)), document_bytes=max_bytes
    )
    return await asyncio.to_thread(
        check_file, content, kind=None, claimed_mime=claimed_mime, limits=limits
    )


def refusal(location: str, reason: str) -> web.HTTPSeeOther:
    """A redirect to ``location`` saying why the file was not accepted (raise it)."""
    answer = web.HTTPSeeOther(location)
    flash(answer, f"File not sent: {reason}.", kind="error")
    return answer


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Console requests may carry an upload of :data:`MAX_UPLOAD`; a larger body gets a
    page that says the limit (status 413)."""
    limit = max(request.client_max_size, MAX_UPLOAD + FORM_OVERHEAD)
    if limit != request.client_max_size:
        request = request.clone(client_max_size=limit)
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return render(
            request,
            "error.html",
            {
                "title": "File too large",
                "message": f"Files up to {human_size(MAX_UPLOAD)} can be sent from the "
                "console. Go back and choose a smaller file.",
            },
            status=413,
        )
