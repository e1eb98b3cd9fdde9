"""The loop the outbox and the media downloader share: work in rounds until cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("nyala.bot")


async def run_rounds(
    work: Callable[[], Awaitable[int]], wakeup: asyncio.Event, poll_interval: float, what: str
) -> None:
    """Call ``work`` (a round returning how much it did) until cancelled; after an idle
    round, wait for ``wakeup`` or ``poll_interval``. A failed round is logged and retried a
    second later, so the loop survives a database restart."""
    while True:
        try:
            done = await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s round failed; retrying", what)
            done = 0
            await asyncio.sleep(1.0)
        if done == 0:
            wakeup.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the event is set, and the loop never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_interval):
                    await wakeup.wait()
