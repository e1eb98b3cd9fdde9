"""Gap-free document numbers: one counter row per series and year.

A document that needs a number (an app's invoices, vouchers, tickets) takes the next
one with :func:`next_number` in the transaction that stores the document, so numbers
are unique and without gaps: a transaction that rolls back gives its number back with
everything else it wrote.
"""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class DocumentCounter(Base):
    """The last sequence number used in one series (``"RCT"``) and year."""

    __tablename__ = "document_counters"

    series: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)


async def next_number(session: AsyncSession, series: str, year: int) -> int:
    """Take the next sequence number of ``series`` in ``year``, in this transaction.

    One statement, ``INSERT ... ON CONFLICT (series, year) DO UPDATE SET last_seq =
    last_seq + 1 RETURNING last_seq``: on PostgreSQL the counter row stays locked until
    the transaction ends, so concurrent issuers queue behind it and a rollback returns
    the number (no gaps); SQLite's write transactions are serialised anyway.

    Args:
        session: the transaction that will also store the numbered document.
        series: the document series, e.g. ``"RCT"``.
        year: the year of issue.

    Returns:
        The sequence number, 1 for the first document of the series in the year.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(DocumentCounter)
        .values(series=series, year=year, last_seq=1)
        .on_conflict_do_update(
            index_elements=[DocumentCounter.series, DocumentCounter.year],
            set_={"last_seq": DocumentCounter.last_seq + 1},
        )
        .returning(DocumentCounter.last_seq)
    )
    seq: int = (await session.execute(statement)).scalar_one()
    return seq
