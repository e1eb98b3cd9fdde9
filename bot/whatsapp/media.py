"""The media downloader: fetches the files customers send, checks them, stores them.

A media message arrives with Meta's media id only. In live mode the inbox stores it
*held* with a ``media_downloads`` row (:mod:`storage.media`), in the webhook's
transaction, so the webhook never waits for a download. This loop, like the outbox:

* claims due rows with a lease (``next_attempt_at`` moved ahead; ``SKIP LOCKED`` on
  PostgreSQL), so any number of processes share the work and a crashed one's rows come
  back when the lease ends;
* asks ``GET /{media-id}`` for the URL, then fetches it with the token; a URL that no
  longer works (they live 5 minutes) is replaced by a fresh one once;
* retries timeouts, network errors and 5xx with exponential backoff, the error kept in
  ``last_error`` (the console's Media page lists them), and gives up after
  ``max_attempts``;
* checks the bytes (:func:`bot.files.check_file`: checksum, size, real type, image
  bombs) off the event loop, and stores them only if they pass.

Then the message is released: its stored payload's media id becomes ``stored:<file id>``
(what the apps' code reads), or, for a refused or failed file, the media gets ``refused``
with the reason the customer is told; the contact's queue is kicked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from bot.files import CheckedFile, FileLimits, FileRefusedError, check_file, human_size
from bot.whatsapp.errors import (
    GraphTimeoutError,
    GraphUnavailableError,
    WhatsAppAPIError,
    WhatsAppError,
    error_text,
)
from bot.whatsapp.graph import GraphClient, MediaTooLargeError, MediaURLExpiredError
from bot.whatsapp.rounds import run_rounds
from storage import (
    Database,
    InboundMessage,
    MediaDownload,
    MediaDownloadStatus,
    StoredFile,
    utcnow,
)

__all__ = ["STORED_PREFIX", "ClaimedDownload", "MediaDownloader", "media_download_row"]

log = logging.getLogger("nyala.media")

Clock = Callable[[], dt.datetime]
STORED_PREFIX = "stored:"  # a media id that names a row of stored_files
FAILED_REASON = "I could not fetch it from WhatsApp"
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "application/pdf": "pdf",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "video/mp4": "mp4",
    "video/3gpp": "3gp",
    "text/plain": "txt",
}


def media_download_row(
    *,
    inbound_id: int,
    contact_id: int,
    kind: str,
    media: dict[str, Any],
    animated: bool,
    now: dt.datetime,
) -> MediaDownload:
    """The download to queue for a media message just stored (same transaction)."""
    return MediaDownload(
        inbound_message_id=inbound_id,
        contact_id=contact_id,
        media_id=str(media["id"])[:256],
        kind=kind,
        mime_type=str(media.get("mime_type") or "")[:127],
        sha256=(str(media["sha256"])[:128] if media.get("sha256") else None),
        animated=animated,
        status=MediaDownloadStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


@dataclass(frozen=True, slots=True)
class ClaimedDownload:
    """A download this process holds the lease of."""

    id: int
    inbound_id: int
    contact_id: int
    media_id: str
    kind: str
    mime_type: str
    sha256: str | None
    animated: bool
    attempts: int


class MediaDownloader:
    """Downloads, checks and stores inbound media; releases the held messages.

    Args:
        db: the database.
        client: the Graph API client.
        limits: size and pixel limits.
        on_released: called with the contact ids whose messages were released (the
            inbox's ``kick``).
        max_attempts: fetch attempts before a download is ``failed``.
        lease: how long a claim holds a row (longer than a download takes).
        batch: rows claimed at once.
        poll_interval: seconds between looks for work.
        clock: the time source.
    """

    def __init__(
        self,
        db: Database,
        client: GraphClient,
        *,
        limits: FileLimits | None = None,
        on_released: Callable[[Iterable[int]], None] | None = None,
        max_attempts: int = 8,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        batch: int = 4,
        poll_interval: float = 0.5,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.client = client
        self.limits = limits or FileLimits()
        self.on_released = on_released
        self.max_attempts = max_attempts
        self.lease = lease
        self.batch = batch
        self.poll_interval = poll_interval
        self.clock = clock
        self.wakeup = asyncio.Event()

    def wake(self) -> None:
        """Look for work now."""
        self.wakeup.set()

    async def run(self) -> None:
        """Download until cancelled (survives a database restart)."""
        await run_rounds(self.download_due, self.wakeup, self.poll_interval, "media download")

    async def download_due(self) -> int:
        """Claim and work one batch of due downloads; returns how many were claimed."""
        claimed = await self.claim()
        if claimed:
            await asyncio.gather(*(self._work(row) for row in claimed))
        return len(claimed)

    async def claim(self) -> list[ClaimedDownload]:
        """Take the lease of due pending downloads, oldest due first."""
        now = self.clock()
        query = (
            select(MediaDownload)
            .where(
                MediaDownload.status == MediaDownloadStatus.PENDING,
                MediaDownload.next_attempt_at <= now,
            )
            .order_by(MediaDownload.next_attempt_at, MediaDownload.id)
            .limit(self.batch)
        )
        if self.db.is_postgresql:
            query = query.with_for_update(skip_locked=True)
        claimed: list[ClaimedDownload] = []
        async with self.db.transaction() as session:
            for row in (await session.scalars(query)).all():
                row.attempts += 1
                row.next_attempt_at = now + self.lease
                claimed.append(
                    ClaimedDownload(
                        id=row.id,
                        inbound_id=row.inbound_message_id,
                        contact_id=row.contact_id,
                        media_id=row.media_id,
                        kind=row.kind,
                        mime_type=row.mime_type,
                        sha256=row.sha256,
                        animated=row.animated,
                        attempts=row.attempts,
                    )
                )
        return claimed

    async def _work(self, row: ClaimedDownload) -> None:
        limit = self.limits.max_bytes(row.kind, animated=row.animated)
        try:
            data = await self._fetch(row.media_id, limit)
        except MediaTooLargeError:
            refused = FileRefusedError(
                "too_large", f"it is larger than {human_size(limit)}, the limit"
            )
            await self._refuse(row, refused)
            return
        except (GraphTimeoutError, GraphUnavailableError, MediaURLExpiredError) as exc:
            await self._retry(row, exc)
            return
        except WhatsAppAPIError as exc:
            # 5xx and rate limits come back; a media id Meta no longer knows (they live
            # 7 days) or refuses to give never will.
            if exc.retryable or (exc.status is not None and exc.status >= 500):
                await self._retry(row, exc)
            else:
                await self._fail(row, error_text(exc))
            return
        except WhatsAppError as exc:
            await self._retry(row, exc)
            return
        except Exception as exc:  # a bug must neither kill the loop nor hold the message
            log.exception("media download %s failed", row.id)
            await self._fail(row, f"{type(exc).__name__}: {exc}")
            return
        try:
            checked = await asyncio.to_thread(
                check_file,
                data,
                kind=row.kind,
                claimed_mime=row.mime_type,
                limits=self.limits,
                expected_sha256=row.sha256,
                animated=row.animated,
            )
        except FileRefusedError as refused:
            await self._refuse(row, refused)
            return
        await self._store(row, data, checked)

    async def _fetch(self, media_id: str, limit: int) -> bytes:
        """``GET /{media-id}`` then the URL; a URL that stopped working gets one more
        fresh URL (a second failure is retried later with backoff)."""
        info = await self.client.media_info(media_id)
        size = _int(info.get("file_size"))
        if size is not None and size > limit:
            raise MediaTooLargeError(f"the file has {size} bytes")
        try:
            return await self.client.fetch_media(str(info["url"]), max_bytes=limit)
        except MediaURLExpiredError:
            log.info("media %s: the download URL expired; fetching a fresh one", media_id)
            info = await self.client.media_info(media_id)
            return await self.client.fetch_media(str(info["url"]), max_bytes=limit)

    async def _retry(self, row: ClaimedDownload, exc: Exception) -> None:
        reason = error_text(exc) if isinstance(exc, WhatsAppError) else str(exc)
        if row.attempts >= self.max_attempts:
            await self._fail(row, reason)
            return
        delay = min(2.0 ** (row.attempts - 1), 300.0) * random.uniform(0.5, 1.5)  # noqa: S311
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            delay = max(delay, float(retry_after))
        log.warning(
            "media download %s: %s; retry %d in %.1f s",
            row.id,
            type(exc).__name__,
            row.attempts,
            delay,
        )
        async with self.db.transaction() as session:
            await session.execute(
                update(MediaDownload)
                .where(
                    MediaDownload.id == row.id,
                    MediaDownload.status == MediaDownloadStatus.PENDING,
                    MediaDownload.attempts == row.attempts,
                )
                .values(
                    next_attempt_at=self.clock() + dt.timedelta(seconds=delay),
                    last_error=reason[:2000],
                )
            )

    async def _fail(self, row: ClaimedDownload, reason: str) -> None:
        log.warning("media download %s failed for good: %s", row.id, reason[:300])
        await self._resolve(
            row, MediaDownloadStatus.FAILED, error=reason, refused=FAILED_REASON, checked=None
        )

    async def _refuse(self, row: ClaimedDownload, refused: FileRefusedError) -> None:
        log.warning("media download %s refused: %s", row.id, refused.code)
        await self._resolve(
            row,
            MediaDownloadStatus.REFUSED,
            error=f"{refused.code}: {refused.reason}",
            refused=refused.reason,
            checked=None,
        )

    async def _store(self, row: ClaimedDownload, data: bytes, checked: CheckedFile) -> None:
        await self._resolve(
            row, MediaDownloadStatus.STORED, error=None, refused=None, checked=(data, checked)
        )

    async def _resolve(
        self,
        row: ClaimedDownload,
        status: MediaDownloadStatus,
        *,
        error: str | None,
        refused: str | None,
        checked: tuple[bytes, CheckedFile] | None,
    ) -> None:
        """In one transaction: the download's outcome, the file (if stored), the message's
        media rewritten and the message released. Skipped if another process resolved
        the row or took it over after this lease ended."""
        now = self.clock()
        async with self.db.transaction() as session:
            query = select(MediaDownload).where(MediaDownload.id == row.id)
            if self.db.is_postgresql:
                query = query.with_for_update()
            download = await session.scalar(query)
            if (
                download is None
                or download.status is not MediaDownloadStatus.PENDING
                or download.attempts != row.attempts
            ):
                return
            inbound = await session.get(InboundMessage, row.inbound_id)
            media: dict[str, Any] = {}
            if inbound is not None:
                media = dict((inbound.payload or {}).get("media") or {})
            if checked is not None:
                data, facts = checked
                stored = StoredFile.from_bytes(
                    _filename(media.get("filename"), row, facts.mime_type), facts.mime_type, data
                )
                session.add(stored)
                await session.flush()
                download.stored_file_id = stored.id
                media.update(
                    id=f"{STORED_PREFIX}{stored.id}",
                    mime_type=facts.mime_type,
                    size=facts.size,
                    sha256=facts.sha256,
                )
            else:
                media["refused"] = refused
            download.status = status
            download.last_error = error[:2000] if error else None
            download.next_attempt_at = None
            download.resolved_at = now
            if inbound is not None:
                inbound.payload = {**inbound.payload, "media": media}
                inbound.held = False
        if self.on_released is not None:
            self.on_released([row.contact_id])


def _filename(given: Any, row: ClaimedDownload, mime: str) -> str:
    """The customer's file name for documents; ``image-<id>.jpg`` and the like otherwise."""
    if isinstance(given, str) and given.strip():
        return "".join(c for c in given if c.isprintable())[:255] or "file"
    return f"{row.kind}-{row.id}.{_EXTENSIONS.get(mime, 'bin')}"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
