"""PostgreSQL's ``LISTEN``: how one process hears another (``NOTIFY``) without polling.

The webhook's process announces stored contacts to the processing processes
(:mod:`bot.whatsapp.processing`), and the processing processes wake the sending process
(:mod:`bot.whatsapp.outbox`). A notification can be lost (a connection drops): every
listener also looks for work on its own now and then, so a lost one costs only time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from storage import Database

log = logging.getLogger("nyala.notify")


def _set_on_close(closed: asyncio.Event, _connection: object) -> None:
    closed.set()


async def listen(
    db: Database,
    channel: str,
    heard: Callable[[str], None],
    *,
    on_listening: Callable[[], Awaitable[None]] | None = None,
    retry: float = 1.0,
) -> None:
    """Call ``heard`` with the payload of every ``NOTIFY`` on ``channel`` until cancelled,
    on a connection of its own; ``on_listening`` runs each time listening (re)starts,
    to catch up on what was said while nobody listened. A lost connection is opened
    again after ``retry`` seconds."""

    def received(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        heard(payload)

    url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while True:
        connection: asyncpg.Connection | None = None
        try:
            connection = await asyncpg.connect(url)
            closed = asyncio.Event()
            connection.add_termination_listener(functools.partial(_set_on_close, closed))
            await connection.add_listener(channel, received)
            if on_listening is not None:
                await on_listening()
            await closed.wait()
            log.warning("the connection listening on %s closed; listening again", channel)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("listening on %s failed; trying again", channel)
            await asyncio.sleep(retry)
        finally:
            if connection is not None and not connection.is_closed():
                await connection.close()
