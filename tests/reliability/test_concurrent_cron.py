"""Cron jobs and operators at the same moment, as separate processes on one PostgreSQL.

The safari app's commands: eight ``nyala send-tour-summaries`` (four for 7 days ahead,
four for 1) and eight ``nyala receipt`` processes started at once (a cron job on several
hosts, an operator clicking twice): every booking gets each summary once, every payment
one receipt with one number, and a second round adds nothing. Sixteen processes at once
already outnumber a CI machine's cores many times over, so they meet in the database as
forty did; more would only make the suite slower.
(In-process concurrency of approvals and of two summary runs is in
``tests/apps/safari/test_receipts.py`` and ``test_summaries.py``.)
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from apps.safari import app as safari
from apps.safari.demo import load_demo_data
from apps.safari.models import Notification, Payment, PaymentStatus, Receipt
from storage import Database, OutboundMessage
from tests.conftest import empty_tables
from tests.reliability.results import Row, record

RUNS = 8


async def _nyala(url: str, cwd: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd,
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


async def _count(db: Database, model: type[object]) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.postgres
@pytest.mark.slow
async def test_cron_runs_and_receipt_requests_at_once_duplicate_nothing(
    safari_postgres_url: str, tmp_path: Path
) -> None:
    postgres_url = safari_postgres_url
    db = Database(postgres_url)
    try:
        await empty_tables(db)
        await load_demo_data(db, tz=safari.timezone)
        async with db.read() as session:
            payment_id = await session.scalar(
                select(Payment.id).where(Payment.status == PaymentStatus.APPROVED).limit(1)
            )
        assert payment_id is not None
        receipts_before = await _count(db, Receipt)
        folders = [tmp_path / f"run{n}" for n in range(RUNS)]
        for folder in folders:
            folder.mkdir()
        jobs = [
            _nyala(postgres_url, folder, "send-tour-summaries", "--days-before", str(days))
            for folder, days in zip(folders, [7, 1] * (RUNS // 2), strict=True)
        ] + [
            _nyala(postgres_url, folder, "receipt", str(payment_id), "-o", "receipt.pdf")
            for folder in folders
        ]
        results = await asyncio.gather(*jobs)
        failed = [out for code, out in results if code != 0]
        assert failed == [], failed[0][-2000:]
        notifications = await _count(db, Notification)
        messages = await _count(db, OutboundMessage)
        async with db.read() as session:
            numbers = (await session.scalars(select(Receipt.number))).all()
        # A second round changes nothing.
        again = await asyncio.gather(
            _nyala(postgres_url, tmp_path, "send-tour-summaries", "--days-before", "7"),
            _nyala(postgres_url, tmp_path, "send-tour-summaries", "--days-before", "1"),
        )
        assert [code for code, _ in again] == [0, 0]
        assert await _count(db, Notification) == notifications
        assert await _count(db, OutboundMessage) == messages
    finally:
        await db.dispose()
    pdfs = Counter((folder / "receipt.pdf").read_bytes() for folder in folders)
    assert notifications == 2  # the demo has one booking 7 days away and one 1 day away
    assert len(numbers) == len(set(numbers)) == receipts_before + 1
    assert len(pdfs) == 1  # every process wrote the same stored PDF
    record(
        "abuse-concurrent-cron",
        Row(
            scenario="Cron jobs and receipt requests run concurrently",
            injected=f"{RUNS} × `nyala send-tour-summaries` (half `--days-before 7`, half "
            f"`--days-before 1`) and {RUNS} × `nyala receipt` for one payment, all at once, "
            "as separate processes",
            load=f"{len(results)} processes on one PostgreSQL",
            observed=f"{notifications} summaries queued for the 2 bookings due, "
            f"{messages} outbound rows, unchanged by a second round; {len(numbers)} receipt "
            f"number(s) for {receipts_before + 1} paid payment(s), {len(pdfs)} distinct PDF",
        ),
    )
