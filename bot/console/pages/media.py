"""Media: the files customers sent on WhatsApp, as the downloader fetched (or refused)
them; retries waiting with their last error, and each stored file for operators."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console.accounts import audit
from bot.console.filters import PAGE_SIZE, Filters, page_of
from bot.console.pages.files import file_response
from bot.console.web import db_of, id_in_path, me, render
from storage import Contact, MediaDownload, MediaDownloadStatus, StoredFile

routes = web.RouteTableDef()
STATUSES = [s.value for s in MediaDownloadStatus]


@dataclass(frozen=True, slots=True)
class MediaPreview:
    """What the ``preview`` macro (templates/media.html) needs to show a stored file."""

    url: str
    mime_type: str
    filename: str
    size: int


async def previews(session: AsyncSession, inbound_ids: Iterable[int]) -> dict[str, MediaPreview]:
    """The stored files of these inbound messages, keyed like transcript bubbles
    (``in-<id>``), for a page that shows a conversation."""
    wanted = sorted(set(inbound_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(
            MediaDownload.inbound_message_id,
            MediaDownload.id,
            StoredFile.mime_type,
            StoredFile.filename,
            StoredFile.size,
        )
        .join(StoredFile, StoredFile.id == MediaDownload.stored_file_id)
        .where(MediaDownload.inbound_message_id.in_(wanted))
    )
    return {
        f"in-{inbound_id}": MediaPreview(f"/console/media/{download_id}/file", mime, name, size)
        for inbound_id, download_id, mime, name, size in rows
    }


@routes.get("/media")
async def media_list(request: web.Request) -> web.StreamResponse:
    """Downloads by status (all by default), newest first: what is still pending shows
    its attempts and last error, what was refused says why."""
    filters = Filters(request)
    status = filters.choice("status", [*STATUSES, "all"], default="all")
    number = filters.page()
    query = (
        select(MediaDownload, Contact, StoredFile.mime_type)
        .join(Contact, Contact.id == MediaDownload.contact_id)
        .outerjoin(StoredFile, StoredFile.id == MediaDownload.stored_file_id)
    )
    if status is not None and status != "all":
        query = query.where(MediaDownload.status == MediaDownloadStatus(status))
    query = (
        query.order_by(MediaDownload.id.desc())
        .limit(PAGE_SIZE + 1)
        .offset((number - 1) * PAGE_SIZE)
    )
    async with db_of(request).read() as session:
        rows = list((await session.execute(query)).all())
    return render(
        request,
        "media_downloads.html",
        {
            "title": "Media",
            "rows": rows,
            "page": page_of(filters, rows, number),
            "status": status,
            "statuses": [*STATUSES, "all"],
        },
    )


@routes.get("/media/{download_id:[0-9]{1,18}}/file")
async def media_file(request: web.Request) -> web.StreamResponse:
    """A downloaded file (audited: it is a customer's document), served so a browser
    can never run it (``bot.console.pages.files.file_response``)."""
    download_id = id_in_path(request, "download_id")
    db = db_of(request)
    async with db.read() as session:
        file_id = await session.scalar(
            select(MediaDownload.stored_file_id).where(MediaDownload.id == download_id)
        )
        row = await session.get(StoredFile, file_id) if file_id else None
    if row is None:
        raise web.HTTPNotFound
    async with db.transaction() as session:
        audit(session, me(request).username, "view_media", f"media {download_id}")
    return file_response(row, download=request.query.get("download") == "1")
