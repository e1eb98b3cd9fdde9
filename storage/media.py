"""Inbound media downloads: durable work queued with the message that brought the file.

A media message from WhatsApp carries only Meta's media id. In live mode it is stored
*held* (:attr:`storage.InboundMessage.held`) together with one :class:`MediaDownload`
row, in the webhook's transaction; the channel's downloader claims the row (a lease in
``next_attempt_at``), fetches and checks the file, and resolves the row: ``stored`` (the
file is in ``stored_files``), ``refused`` (the bytes failed a check) or ``failed`` (it
could not be fetched after every attempt). Either way the message is then released.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UTCDateTime, utcnow
from storage.types import BigIntId, str_enum


class MediaDownloadStatus(enum.StrEnum):
    """Where a download stands; only ``pending`` rows are ever claimed."""

    PENDING = "pending"  # waiting, or claimed by a downloader until next_attempt_at
    STORED = "stored"
    REFUSED = "refused"  # fetched, but the bytes failed a check: nothing kept
    FAILED = "failed"  # could not be fetched after every attempt


class MediaDownload(Base):
    """One inbound file to fetch from WhatsApp, with what the webhook claimed about it."""

    __tablename__ = "media_downloads"
    __table_args__ = (Index(None, "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    inbound_message_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("inbound_messages.id", ondelete="CASCADE"), unique=True
    )
    contact_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    media_id: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32))  # image, document, audio, video, sticker
    mime_type: Mapped[str] = mapped_column(String(127))  # as claimed by the webhook
    sha256: Mapped[str | None] = mapped_column(String(128))  # as claimed (base64 or hex)
    animated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[MediaDownloadStatus] = mapped_column(
        str_enum(MediaDownloadStatus, "media_download_status"),
        default=MediaDownloadStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    stored_file_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("stored_files.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
