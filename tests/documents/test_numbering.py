"""Document numbers: a series, the year and a gap-free sequence (both backends)."""

from __future__ import annotations

import asyncio

import pytest

from documents import document_number, take_number
from storage import Database


def test_numbers_read_series_year_sequence() -> None:
    assert document_number("RCT", 2026, 42) == "RCT-2026-000042"
    assert document_number("INV", 2027, 7, digits=4) == "INV-2027-0007"


async def test_each_series_and_year_counts_on_its_own(db: Database) -> None:
    async with db.transaction() as session:
        taken = [await take_number(session, "RCT", 2026) for _ in range(3)]
        other = await take_number(session, "INV", 2026)
        next_year = await take_number(session, "RCT", 2027)
    assert taken == [(1, "RCT-2026-000001"), (2, "RCT-2026-000002"), (3, "RCT-2026-000003")]
    assert other == (1, "INV-2026-000001")
    assert next_year == (1, "RCT-2027-000001")


async def test_a_rollback_gives_the_number_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await take_number(session, "RCT", 2026)
            raise RuntimeError("the document could not be made")
    async with db.transaction() as session:
        assert await take_number(session, "RCT", 2026) == (1, "RCT-2026-000001")


async def test_concurrent_issuers_get_distinct_numbers_without_gaps(db: Database) -> None:
    async def issue() -> int:
        async with db.transaction() as session:
            seq, _number = await take_number(session, "RCT", 2026)
            return seq

    seqs = await asyncio.gather(*(issue() for _ in range(10)))
    assert sorted(seqs) == list(range(1, 11))
