"""Serving stored files (customers' uploads, generated documents) to operators safely."""

from __future__ import annotations

from aiohttp import web

from storage import StoredFile

# Types a browser may show inline; anything else is downloaded.
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf"})


def file_response(row: StoredFile, *, download: bool = False) -> web.Response:
    """The file with a type the browser cannot be tricked by, in a sandbox."""
    mime = row.mime_type if row.mime_type in INLINE_TYPES else "application/octet-stream"
    inline = mime != "application/octet-stream" and not download
    safe_name = "".join(c for c in row.filename if c.isalnum() or c in "._- ")[:120] or "file"
    return web.Response(
        body=row.data,
        content_type=mime,
        headers={
            "Content-Disposition": f"{'inline' if inline else 'attachment'}; "
            f'filename="{safe_name}"',
            "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; "
            "style-src 'unsafe-inline'; plugin-types application/pdf",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
