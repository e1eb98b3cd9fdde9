"""Stored files: generated documents and uploaded media, kept in the database."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UTCDateTime, utcnow
from storage.types import BigIntId


class StoredFile(Base):
    """A file's bytes with its name, type and SHA-256, so it can be re-sent or downloaded."""

    __tablename__ = "stored_files"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @classmethod
    def from_bytes(cls, filename: str, mime_type: str, data: bytes) -> StoredFile:
        """Build a row for ``data``, computing its size and SHA-256."""
        return cls(
            filename=filename,
            mime_type=mime_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data=data,
        )
