"""Shutdown cannot hang: the background loops stop when cancelled, whatever they were doing.

A full suite run once hung for good in a server fixture's teardown. The cause: the outbox
waited for its wake-up event with ``asyncio.wait_for``, which on Python 3.11 swallows a
cancellation that arrives in the same tick as the event is set (a reply woke the outbox
just as the server stopped), so the loop went on forever and shutdown awaited it.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import aiohttp
import pytest
import pytest_asyncio

from bot.metrics import Metrics
from bot.server import stop_tasks
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox
from storage import Database
from testing.fake_graph import FakeGraph
from tests.bot.webhooks import ACCESS_TOKEN, PHONE_NUMBER_ID


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(token=ACCESS_TOKEN, phone_number_id=PHONE_NUMBER_ID) as graph:
        yield graph


async def test_the_outbox_stops_when_cancelled_as_it_is_woken(
    db: Database, fake: FakeGraph
) -> None:
    async with aiohttp.ClientSession() as http:
        client = GraphClient(http, base_url=str(fake.base_url), access_token=ACCESS_TOKEN,
                             phone_number_id=PHONE_NUMBER_ID, timeout=1.0)  # fmt: skip
        outbox = Outbox(db, client, Metrics(), rate=None)
        outbox.poll_interval = 30.0
        outbox.wakeup = wakeup = Watched()
        task = asyncio.create_task(outbox.run())
        async with asyncio.timeout(10):
            await wakeup.waited.wait()  # idle: nothing to send, waiting to be woken
        outbox.wake()
        await asyncio.sleep(0)  # the wait for the event completes in this tick...
        task.cancel()  # ...and the server stops in the same one
        done, _ = await asyncio.wait({task}, timeout=5.0)
        assert done, "the outbox ignored its cancellation"
        assert task.cancelled()


class Watched(asyncio.Event):
    """An event that says when somebody started waiting for it."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = asyncio.Event()

    async def wait(self) -> Literal[True]:
        self.waited.set()
        return await super().wait()


async def test_stop_tasks_cancels_again_a_loop_that_swallows_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            swallowed.set()  # as a library below a loop may do
        await asyncio.sleep(60)

    async def fine() -> None:
        await asyncio.sleep(60)

    tasks = [asyncio.create_task(stubborn(), name="stubborn"), asyncio.create_task(fine())]
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="bot.server"):
        await stop_tasks(tasks, patience=0.1)
    assert swallowed.is_set()
    assert all(task.done() for task in tasks)
    assert "stubborn did not stop when cancelled" in caplog.text


# Run in its own interpreter: had the close hung, so would its event loop's shutdown.
_CANCELLED_WHILE_LOCKED = """
import asyncio, sqlite3, sys
from sqlalchemy import text
from bot.server import stop_tasks
from storage import Database

async def main(path: str) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}", sqlite_busy_timeout_ms=1500)
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(path, isolation_level=None)  # a CLI command, say
    holder.execute("BEGIN IMMEDIATE")

    async def write() -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))

    task = asyncio.create_task(write(), name="writer")
    await asyncio.sleep(0.3)  # waiting for the write lock
    await stop_tasks([task], patience=db.cancel_patience)
    holder.execute("ROLLBACK")
    await db.dispose()
    print("stopped", task.cancelled())

asyncio.run(main(sys.argv[1]))
print("loop closed")
"""


def test_a_write_waiting_for_the_sqlite_lock_is_stopped_without_hanging(
    tmp_path: Path,
) -> None:
    """Cancelled while it waits for the write lock, SQLAlchemy closes the connection
    behind it (shielded); cancelled a second time before that close ends, aiosqlite's
    close would wait forever and so would the loop's shutdown. Shutdown waits longer than
    the busy timeout first, so the script ends."""
    done = subprocess.run(
        [sys.executable, "-c", _CANCELLED_WHILE_LOCKED, str(tmp_path / "locked.db")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stopped", "True", "loop", "closed"]
    assert "did not stop when cancelled" not in done.stderr
