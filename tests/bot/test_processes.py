"""Real ``nyala serve`` processes on one PostgreSQL: order, exactly once, crashes, outages."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession
from sqlalchemy import func, select

from storage import Database, InboundMessage, InboundStatus, OutboundMessage, OutboundStatus
from testing.fake_graph import FakeGraph
from tests.bot.test_server import eventually
from tests.bot.webhooks import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    message,
    messages_payload,
    signed,
)
from tests.conftest import empty_tables

ROOT = Path(__file__).resolve().parents[2]
APP_FILE = """
from pathlib import Path
from tests.cafe import build_app
app = build_app(Path(__file__).parent / "flows")
"""
SCRIPT: list[str | tuple[str, str]] = [
    "order", "Ada Lovelace", ("large", "Large"), "2", ("yes", "Confirm"),
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One ``nyala serve`` subprocess."""

    def __init__(self, env: dict[str, str], app_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = app_dir / f"server-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "--app", str(app_dir / "app.py"), "serve",
                 "--port", str(self.port), *args],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip

    async def ready(self, http: ClientSession) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(self.log.read_text())
            try:
                async with http.get(f"{self.url}/healthz") as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("server did not start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP_FILE)
    return tmp_path


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    graph = FakeGraph(token=ACCESS_TOKEN, phone_number_id=PHONE_NUMBER_ID, hang=2.0)
    await graph.start()
    try:
        yield graph
    finally:
        await graph.stop()


@pytest_asyncio.fixture
async def empty_postgres(postgres_url: str) -> AsyncIterator[str]:
    database = Database(postgres_url)
    await empty_tables(database)
    await database.dispose()
    yield postgres_url


@pytest.fixture
def server_env(empty_postgres: str, fake: FakeGraph) -> dict[str, str]:
    postgres_url = empty_postgres
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "NYALA_"))}
    env.update(
        DATABASE_URL=postgres_url,
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        WHATSAPP_API_BASE=fake.base_url,
        NYALA_SEND_RATE="200",
        NYALA_SEND_LEASE="3",
        NYALA_GRAPH_TIMEOUT="1",
        NYALA_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


async def post(http: ClientSession, url: str, document: object) -> int:
    raw, headers = signed(document)
    async with http.post(f"{url}/webhook", data=raw, headers=headers) as response:
        return response.status


async def send(http: ClientSession, url: str, wa_id: str, index: int, base: int) -> int:
    """Post step ``index`` of the script for ``wa_id`` to the server at ``url``."""
    return await post(http, url, messages_payload(step(wa_id, index, base)))


def reply_text(body: dict[str, Any]) -> str | None:
    if body["type"] == "text":
        return str(body["text"]["body"])
    if body["type"] == "interactive":
        return str(body["interactive"]["body"]["text"])
    return None


def step(wa_id: str, index: int, base: int) -> dict[str, object]:
    item = SCRIPT[index]
    if isinstance(item, tuple):
        return message(wa_id, reply=item, timestamp=base + index, wamid=f"wamid.{wa_id}.{index}")
    return message(wa_id, text=item, timestamp=base + index, wamid=f"wamid.{wa_id}.{index}")


async def processed(db: Database, count: int) -> bool:
    """At least ``count`` inbound messages are stored and all of them processed."""
    async with db.read() as session:
        statuses = (await session.scalars(select(InboundMessage.status))).all()
    return len(statuses) >= count and all(s is InboundStatus.DONE for s in statuses)


async def a_send_failed(db: Database) -> bool:
    """A reply was tried and failed, and waits for its retry."""
    async with db.read() as session:
        failed = await session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(
                OutboundMessage.status == OutboundStatus.QUEUED,
                OutboundMessage.last_error.is_not(None),
            )
        )
    return bool(failed)


async def settled(db: Database, contacts: int, within: float = 60.0) -> None:
    """Wait until every inbound message is processed and every reply sent."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with db.read() as session:
            inbound = (await session.scalars(select(InboundMessage))).all()
            outbound = (await session.scalars(select(OutboundMessage))).all()
        if (
            len(inbound) == contacts * len(SCRIPT)
            and all(m.status is InboundStatus.DONE for m in inbound)
            and outbound
            and all(o.status is OutboundStatus.SENT for o in outbound)
        ):
            return
        await asyncio.sleep(0.2)
    summary = sorted(
        {(o.kind, o.status.value, o.error_code, o.last_error) for o in outbound}, key=str
    )
    states = sorted({m.status.value for m in inbound})
    raise AssertionError(f"not settled: {len(inbound)} inbound {states}; outbound {summary[:8]}")


async def check_invariants(db: Database, fake: FakeGraph, contacts: list[str]) -> None:
    async with db.read() as session:
        inbound = (await session.scalars(select(InboundMessage).order_by(InboundMessage.id))).all()
        outbound = (
            await session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))
        ).all()
    by_contact: dict[int, list[InboundMessage]] = {}
    for row in inbound:
        by_contact.setdefault(row.contact_id, []).append(row)
    for rows in by_contact.values():
        assert [r.status for r in rows] == [InboundStatus.DONE] * len(SCRIPT)
        done = [r.processed_at for r in sorted(rows, key=lambda r: r.sent_at or r.received_at)]
        assert None not in done
        assert done == sorted(d for d in done if d is not None)  # strictly in the user's order
    # Exactly one reply batch per inbound message; each reply accepted once by "Meta".
    replied = {o.inbound_id for o in outbound if o.kind != "mark_read"}
    assert replied == {m.id for m in inbound}
    wamids = [o.wa_message_id for o in outbound if o.kind != "mark_read"]
    assert len(wamids) == len(set(wamids))
    accepted = [s.wamid for s in fake.sent]
    ambiguous = sum(o.ambiguous_resends for o in outbound)
    replies = len([o for o in outbound if o.kind != "mark_read"])
    # Each reply accepted at least once; a second time only where the outcome was unknown
    # (a timeout, or a sender killed with the request possibly out): counted as ambiguous.
    assert replies <= len(accepted) <= replies + ambiguous
    for wa_id in contacts:
        texts = [
            s.body.get("text", {}).get("body")
            or s.body.get("interactive", {}).get("body", {}).get("text")
            for s in fake.sent
            if s.to == f"+{wa_id}"
        ]
        assert texts[-1] == "Order placed, Ada Lovelace!"


@pytest.mark.postgres
async def test_two_servers_share_one_database(
    server_env: dict[str, str], app_dir: Path, fake: FakeGraph, postgres_url: str
) -> None:
    contacts = [f"2637720000{i:02d}" for i in range(6)]
    servers = [Server(server_env, app_dir), Server(server_env, app_dir)]
    db = Database(postgres_url)
    try:
        async with ClientSession() as http:
            for server in servers:
                await server.ready(http)
            base = int(time.time())
            for index in range(len(SCRIPT)):
                # One contact's messages alternate between the two servers.
                results = await asyncio.gather(*(
                    post(http, servers[(index + n) % 2].url,
                         messages_payload(step(wa_id, index, base)))
                    for n, wa_id in enumerate(contacts)
                ))  # fmt: skip
                assert results == [200] * len(contacts)
                # Each user reads the answer, then taps.
                await eventually(partial(processed, db, len(contacts) * (index + 1)), within=60)
            # Meta redelivers some of them to the other server: no-ops.
            for wa_id in contacts[:3]:
                assert (
                    await post(http, servers[1].url, messages_payload(step(wa_id, 0, base))) == 200
                )
        await settled(db, len(contacts))
        await check_invariants(db, fake, contacts)
    finally:
        for server in servers:
            server.stop()
        await db.dispose()


@pytest.mark.postgres
async def test_a_killed_server_loses_nothing(
    server_env: dict[str, str], app_dir: Path, fake: FakeGraph, postgres_url: str
) -> None:
    contacts = [f"2637730000{i:02d}" for i in range(4)]
    first, second = Server(server_env, app_dir), Server(server_env, app_dir)
    db = Database(postgres_url)
    try:
        async with ClientSession() as http:
            await first.ready(http)
            await second.ready(http)
            base = int(time.time())
            for index in range(len(SCRIPT)):
                target = first if index < 3 else second
                for wa_id in contacts:
                    assert (
                        await post(http, target.url, messages_payload(step(wa_id, index, base)))
                        == 200
                    )
                if index == 2:
                    first.kill()  # mid-conversation, with work stored but maybe not done
                # Traffic pacing, not a wait for anything: the next messages arrive while
                # the killed server's work is being recovered, whatever the timing.
                await asyncio.sleep(0.3)
        await settled(db, len(contacts), within=90)
        await check_invariants(db, fake, contacts)
    finally:
        first.stop()
        second.stop()
        await db.dispose()


@pytest.mark.postgres
async def test_a_graph_api_outage_delays_but_loses_nothing(
    server_env: dict[str, str], app_dir: Path, fake: FakeGraph, postgres_url: str
) -> None:
    server = Server(server_env, app_dir)
    db = Database(postgres_url)
    port = int(fake.base_url.split(":")[2].split("/")[0])
    try:
        async with ClientSession() as http:
            await server.ready(http)
            await fake.stop()  # Meta is down: connections refused
            base = int(time.time())
            assert (
                await post(http, server.url, messages_payload(step("263774000001", 0, base)))
                == 200
            )
            await eventually(lambda: a_send_failed(db), within=30)
            assert fake.sent == []
            await fake.start(port=port)  # back up
            for index in range(1, len(SCRIPT)):
                # Traffic pacing, not a wait: messages arrive while replies are backing off.
                await asyncio.sleep(0.5)
                assert (
                    await post(
                        http, server.url, messages_payload(step("263774000001", index, base))
                    )
                    == 200
                )
        await settled(db, 1, within=90)
        await check_invariants(db, fake, ["263774000001"])
    finally:
        server.stop()
        await db.dispose()
