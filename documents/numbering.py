"""Document numbers like ``RCT-2026-000042``: a series, the year and a gap-free sequence."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage import next_number

__all__ = ["document_number", "take_number"]


def document_number(series: str, year: int, seq: int, *, digits: int = 6) -> str:
    """``RCT-2026-000042``."""
    return f"{series}-{year:04d}-{seq:0{digits}d}"


async def take_number(session: AsyncSession, series: str, year: int) -> tuple[int, str]:
    """Take the next number of ``series`` in ``year`` in this transaction (returned with
    its sequence); a rollback gives it back, so numbers stay unique and gap-free."""
    seq = await next_number(session, series, year)
    return seq, document_number(series, year, seq)
