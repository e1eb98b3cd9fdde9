"""Processing in processes of its own: the webhook's process announces what it stored
(NOTIFY), processing processes listen, process and send; SQLite refuses it in one line."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest
from aiohttp import ClientSession

from bot.metrics import Metrics
from bot.whatsapp.graph import GraphClient
from bot.whatsapp.outbox import Outbox, RemoteWake, listen_for_outbound
from bot.whatsapp.processing import Announcer, Processor, listen_for_kicks
from flows import App, ContactRef, Engine, UserMessage
from storage import Database, InboundMessage, InboundStatus
from testing.fake_graph import FakeGraph
from tests.bot.test_processes import (
    ROOT,
    SCRIPT,
    Server,
    app_dir,
    check_invariants,
    empty_postgres,
    fake,
    post,
    processed,
    server_env,
    settled,
    step,
)
from tests.bot.test_server import eventually
from tests.bot.webhooks import messages_payload
from tests.cli import nyala

__all__ = ["app_dir", "empty_postgres", "fake", "server_env"]  # fixtures used here


async def _status(db: Database, inbound_id: int) -> InboundStatus | None:
    async with db.read() as session:
        row = await session.get(InboundMessage, inbound_id)
        return row.status if row is not None else None


async def test_an_announced_contact_is_processed_by_the_listener(cafe: App, db: Database) -> None:
    if not db.is_postgresql:
        pytest.skip("announcements are PostgreSQL's NOTIFY")
    engine = Engine(db, cafe)
    who = ContactRef(wa_id="263771230001")
    first = await engine.receive(who, UserMessage(id="n.1", kind="text", text="order"))
    processor = Processor(engine, Metrics(), busy_window=0.0)
    listening = asyncio.create_task(listen_for_kicks(processor, db))
    announcer = Announcer(db)
    try:
        # Stored before anyone listened: the listener's first look finds it.
        assert first.inbound_id is not None
        done = partial(_is_done, db, first.inbound_id)
        await eventually(done, within=30)
        # No recovery loop runs here: only the announcement can bring the next one.
        second = await engine.receive(who, UserMessage(id="n.2", kind="text", text="Ada"))
        assert second.inbound_id is not None
        announcer.kick([second.contact_id])
        await announcer.drain()
        await eventually(partial(_is_done, db, second.inbound_id), within=30)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await processor.drain()


async def _is_done(db: Database, inbound_id: int) -> bool:
    return await _status(db, inbound_id) is InboundStatus.DONE


async def test_a_processing_process_wakes_the_sending_process(db: Database) -> None:
    """Replies queued in a processing process wake the sending process at once
    (``NOTIFY``), instead of at its next look (every ``poll_interval``)."""
    if not db.is_postgresql:
        pytest.skip("wake-ups are PostgreSQL's NOTIFY")
    async with ClientSession() as http:
        client = GraphClient(
            http, base_url="http://127.0.0.1:9/v23.0", access_token="t", phone_number_id="1"
        )
        outbox = Outbox(db, client, Metrics(), poll_interval=3600)
        listening = asyncio.create_task(listen_for_outbound(outbox, db))
        remote = RemoteWake(db)
        try:
            for _ in range(100):  # until the listener listens
                remote.wake()
                await remote.drain()
                await asyncio.sleep(0.05)
                if outbox.wakeup.is_set():
                    break
            assert outbox.wakeup.is_set()
            outbox.wakeup.clear()
            await asyncio.sleep(0.3)
            assert not outbox.wakeup.is_set()  # nothing wakes it but a wake-up
            remote.wake()
            remote.wake()  # asked for while the first is on its way: coalesced
            await remote.drain()
            await eventually(outbox.wakeup.is_set, within=10)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)


def _niceness(pid: int) -> list[int]:
    """The niceness of a process's children (not multiprocessing's resource tracker),
    sorted."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if not entry.name.isdigit() or int(stat[1]) != pid:
                continue
            if b"resource_tracker" in (entry / "cmdline").read_bytes():
                continue
        except (OSError, IndexError, ValueError):
            continue
        found.append(int(stat[16]))  # field 19 of /proc/PID/stat: nice
    return sorted(found)


class SplitServer(Server):
    """``nyala serve --processors 2``: one web process, two processing processes."""

    def __init__(self, env: dict[str, str], app: Path) -> None:
        super().__init__(env, app, "--processors", "2")

    def stop_all(self) -> int:
        """SIGTERM, as a supervisor stops it; the exit status once every process ended."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.mark.postgres
async def test_serve_with_processing_processes_answers_everyone_once_in_order(
    server_env: dict[str, str], app_dir: Path, fake: FakeGraph, postgres_url: str
) -> None:
    contacts = [f"2637740000{i:02d}" for i in range(5)]
    # INFO: each process says it froze its start-up heap.
    server = SplitServer({**server_env, "NYALA_LOG_LEVEL": "INFO"}, app_dir)
    db = Database(postgres_url)
    try:
        async with ClientSession() as http:
            await server.ready(http)
            # The web process keeps its priority; the processing and sending processes
            # run NYALA_PROCESSING_NICE (default 10) below it.
            base = os.getpriority(os.PRIO_PROCESS, server.process.pid)
            lower = min(19, base + 10)
            expected = [base, lower, lower, lower]
            await eventually(lambda: _niceness(server.process.pid) == expected, within=30)
            base = int(time.time())
            for index in range(len(SCRIPT)):
                results = await asyncio.gather(*(
                    post(http, server.url, messages_payload(step(wa_id, index, base)))
                    for wa_id in contacts
                ))  # fmt: skip
                assert results == [200] * len(contacts)
                await eventually(partial(processed, db, len(contacts) * (index + 1)), within=60)
        await settled(db, len(contacts))
        await check_invariants(db, fake, contacts)
    finally:
        code = server.stop_all()
        await db.dispose()
    assert code == 0, server.log.read_text()[-2000:]
    # Every process of the four stopped (none left behind holding the database); in live
    # mode one of them sent every reply (check_invariants: each once, in order).
    log = server.log.read_text()
    assert "2 processing processes and a sending process" in log
    assert "Traceback" not in log
    # Each of the four froze what its start-up built (bot.server.freeze_startup_heap): a
    # full collection walking it stalled the webhook's event loop for about 70 ms.
    frozen = re.findall(r"start-up heap frozen: (\d+) objects", log)
    assert len(frozen) == 4, log[-2000:]
    assert all(int(count) > 10_000 for count in frozen)


@pytest.mark.parametrize(
    "args", [["serve", "--processors", "1"], ["serve", "--workers", "2"], ["work"]]
)
def test_sqlite_refuses_more_processes_in_one_line(tmp_path: Path, args: list[str]) -> None:
    database = f"sqlite:///{tmp_path / 'bot.db'}"
    done = nyala(*args, cwd=tmp_path, env={"DATABASE_URL": database, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert any("needs PostgreSQL" in line for line in lines), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "bot.db").exists()
