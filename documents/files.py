"""Storing a generated document, ready to be sent as a WhatsApp document.

A document is stored in ``stored_files`` (with its SHA-256) in the caller's transaction,
so it commits or rolls back with whatever it documents. The outbox uploads a stored file
when a reply names it: an app replies with ``flows.messages.Document(file.id,
file.filename, caption)`` (``documents`` does not import ``flows``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from documents.pdf import PDF_MIME
from storage import StoredFile

__all__ = ["store_document"]


async def store_document(
    session: AsyncSession, filename: str, content: bytes, *, mime_type: str = PDF_MIME
) -> StoredFile:
    """Store ``content`` as ``filename`` in this transaction (flushed: it has its id)."""
    file = StoredFile.from_bytes(filename, mime_type, content)
    session.add(file)
    await session.flush()
    return file
