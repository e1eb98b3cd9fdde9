"""Primary keys taken before the rows are inserted, so that a batch can refer to new rows
(a conversation to its new flow session, step events to it) without a flush, and insert
them all with one statement at the end."""

from __future__ import annotations

from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession


class IdBlock:
    """New ids for one table within one transaction, taken a block at a time.

    On PostgreSQL the ids come from the table's own sequence (``nextval``, one statement
    for the block): they never clash with rows inserted elsewhere, and ids a rolled-back
    transaction took are left unused, as PostgreSQL does itself. On SQLite, whose write
    transactions hold the database's only writer lock, they follow the largest id,
    counted on in memory, which is what SQLite would assign itself.

    Args:
        table: the table (its single-column integer primary key).
        block: how many ids to take at once on PostgreSQL (those left over are skipped).
    """

    def __init__(self, table: Table, *, block: int = 1) -> None:
        (column,) = table.primary_key.columns
        self.table = table
        self.column = column
        self.block = max(1, block)
        self._free: list[int] = []
        self._next: int | None = None  # SQLite: the next id to give

    async def take(self, session: AsyncSession) -> int:
        """A new id, unique in the table (free of charge while the block lasts)."""
        if session.get_bind().dialect.name == "sqlite":
            if self._next is None:
                largest = await session.scalar(select(func.max(self.column)))
                self._next = (largest or 0) + 1
            taken, self._next = self._next, self._next + 1
            return taken
        if not self._free:
            found = await session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, :column)) "
                    "FROM generate_series(1, :count)"
                ),
                {"table": self.table.name, "column": self.column.name, "count": self.block},
            )
            self._free = sorted(found, reverse=True)
        return self._free.pop()
