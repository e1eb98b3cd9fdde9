"""Primary keys taken before the rows are inserted, so that a batch can refer to new rows
(a conversation to its new flow session, step events to it) without a flush, and insert
them all with one statement at the end."""

from __future__ import annotations

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncSession


class IdBlock:
    """New ids for one table within one transaction, taken a block at a time.

    On PostgreSQL the ids come from the table's own sequence (``nextval``, one statement
    for the block): they never clash with rows inserted in any other way, and ids a
    rolled-back transaction took are left unused, as PostgreSQL does itself. SQLite has no
    sequence to take from: there :meth:`take` gives ``None`` and the caller lets the
    database assign the id when it inserts the row (any id counted on beforehand could be
    taken meanwhile by a row inserted another way in the same transaction).

    Args:
        table: the table (its single-column integer primary key).
        block: how many ids to take at once (those left over are skipped).
    """

    def __init__(self, table: Table, *, block: int = 1) -> None:
        (column,) = table.primary_key.columns
        self.table = table
        self.column = column
        self.block = max(1, block)
        self._free: list[int] = []

    async def take(self, session: AsyncSession) -> int | None:
        """A new id, unique in the table (free of charge while the block lasts); ``None``
        on SQLite (insert the row to get one)."""
        if session.get_bind().dialect.name != "postgresql":
            return None
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
