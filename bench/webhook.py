"""Webhook acknowledgement: ``nyala serve`` beside a bare aiohttp handler, same generator.

Both servers run in their own processes (``python -m bot serve`` in sandbox mode with an
app secret, on the benchmark's PostgreSQL; ``python -m bench.bare_server``). The
generator (:func:`bench.load.drive`) posts signed payloads, each carrying one text
message from one of many contacts with a unique wamid.

Nyala acknowledges after storing the message durably, then processes it in the same
process; after each timed run the benchmark waits until every stored message is
processed, which also gives the webhook → reply row rate through the server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from dataclasses import dataclass

import asyncpg

from bench.end_to_end import SCRIPT_AGAIN, SCRIPT_FIRST
from bench.load import LoadResult, Request, drive, drive_rate
from tests.bot.webhooks import message, messages_payload, signed

_SCRIPT = SCRIPT_FIRST + SCRIPT_AGAIN
_instances = itertools.count(1)


class Payloads:
    """Signed one-message payloads: contact ``j % contacts`` sends its next script line.

    With many more contacts than connections, one contact's messages arrive well apart;
    every wamid is unique.
    """

    def __init__(self, tag: str, contacts: int, secret: str, *, stride: int = 1) -> None:
        self.tag = tag
        self.contacts = contacts
        self.secret = secret
        self.stride = stride  # > 1 (coprime with contacts): spread over all contacts
        self.counter = itertools.count()
        self.instance = next(_instances)  # wamids stay unique across instances

    def __call__(self) -> Request:
        j = next(self.counter)
        contact = (j * self.stride) % self.contacts
        text = _SCRIPT[(j // self.contacts) % len(_SCRIPT)]
        document = messages_payload(
            message(
                f"2637{self.tag}{contact:06d}",
                text=text,
                wamid=f"wamid.BENCH.{self.tag}.{self.instance}.{j}",
                timestamp=int(time.time()),
            ),
            name=f"Bench {contact}",
        )
        return signed(document, self.secret)


@dataclass(frozen=True, slots=True)
class Drained:
    """The server's processing of one timed run's messages."""

    stored: int
    done: int
    failed: int
    seconds: float  # from the first POST until the last message was processed
    complete: bool  # False: gave up waiting

    @property
    def rate(self) -> float:
        """Messages taken from webhook to reply row per second."""
        return (self.done + self.failed) / self.seconds if self.seconds else 0.0


async def inbound_mark(conn: asyncpg.Connection) -> int:
    """The highest inbound id now (rows after it belong to the next run)."""
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM inbound_messages"))


async def wait_processed(
    conn: asyncpg.Connection, mark: int, started: dt.datetime, within: float
) -> Drained:
    """Wait until no message after ``mark`` is pending (or ``within`` seconds passed).

    The end is the largest ``processed_at`` the server wrote (same machine clock), so
    the polling interval does not blur the figure.
    """
    deadline = time.monotonic() + within
    complete = True
    while True:
        pending = await conn.fetchval(
            "SELECT count(*) FROM inbound_messages WHERE id > $1 AND status = 'pending'", mark
        )
        if not pending:
            break
        if time.monotonic() > deadline:
            complete = False
            break
        await asyncio.sleep(0.05)
    row = await conn.fetchrow(
        """
        SELECT count(*) AS stored,
               count(*) FILTER (WHERE status = 'done') AS done,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               max(processed_at) AS last
        FROM inbound_messages WHERE id > $1
        """,
        mark,
    )
    assert row is not None
    last: dt.datetime | None = row["last"]
    seconds = (last - started).total_seconds() if last is not None else 0.0
    return Drained(int(row["stored"]), int(row["done"]), int(row["failed"]), seconds, complete)


async def ack_run(
    url: str, payloads: Payloads, *, connections: int, duration: float
) -> LoadResult:
    """One timed run against ``url`` (the server's base URL)."""
    return await drive(f"{url}/webhook", payloads, connections=connections, duration=duration)


async def offered_run(url: str, payloads: Payloads, *, rate: float, duration: float) -> LoadResult:
    """One open-loop run at ``rate`` requests/s against ``url`` (the server's base URL)."""
    return await drive_rate(f"{url}/webhook", payloads, rate=rate, duration=duration)
