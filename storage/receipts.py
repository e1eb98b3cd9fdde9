"""Payment receipts and their gap-free numbering.

A receipt is issued once per approved or confirmed payment; its number
``RCT-<year>-<6 digits>`` comes from a per-year counter row that is incremented in the
transaction that inserts the receipt, so numbers are unique and without gaps: a
transaction that rolls back gives its number back with everything else it wrote.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, UTCDateTime
from storage.types import BigIntId

RECEIPT_PREFIX: Final = "RCT"


class Receipt(Base):
    """The receipt of one payment: its number and the stored PDF (with its SHA-256)."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("year", "seq"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("payments.id"), unique=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    file_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("stored_files.id"))
    sha256: Mapped[str] = mapped_column(String(64))


class ReceiptCounter(Base):
    """The last receipt sequence number used in a year."""

    __tablename__ = "receipt_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)


def receipt_number(year: int, seq: int) -> str:
    """``RCT-2026-000042``."""
    return f"{RECEIPT_PREFIX}-{year:04d}-{seq:06d}"


async def next_receipt_seq(session: AsyncSession, year: int) -> int:
    """Take the next receipt sequence number of ``year`` in this transaction.

    One statement, ``INSERT ... ON CONFLICT (year) DO UPDATE SET last_seq = last_seq + 1
    RETURNING last_seq``: on PostgreSQL the counter row stays locked until the transaction
    ends, so concurrent issuers queue behind it and a rollback returns the number (no
    gaps); SQLite's write transactions are serialised anyway (``BEGIN IMMEDIATE``).

    Args:
        session: the transaction that will also insert the receipt.
        year: the year of issue.

    Returns:
        The sequence number, 1 for the first receipt of the year.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(ReceiptCounter)
        .values(year=year, last_seq=1)
        .on_conflict_do_update(
            index_elements=[ReceiptCounter.year],
            set_={"last_seq": ReceiptCounter.last_seq + 1},
        )
        .returning(ReceiptCounter.last_seq)
    )
    seq: int = (await session.execute(statement)).scalar_one()
    return seq
