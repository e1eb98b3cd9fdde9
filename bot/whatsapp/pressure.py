"""Acknowledgements first, across the processes of one ``nyala serve --processors N``.

Under a flood of webhooks the processes that process and send (at a lower priority
already, ``NYALA_PROCESSING_NICE``) still take from the acknowledgement what ``nice`` does
not reach: their PostgreSQL backends, the disk, and the read receipt the sender sends for
every message stored. Meta retries slow answers, which only adds load. So the webhook's
process says when it is flooded: while at least ``requests`` webhook requests are in
flight in it, it marks the webhook *pressed* (until ``window`` seconds after the last
request that started or ended among that many) in a double in shared memory, which the
processing and sending processes of the same ``serve`` read (``time.monotonic()`` is the
same clock in every process of the machine). Before each batch (a processing worker) and
each round of sends (a sending lane) they :meth:`AckPressure.make_way`: wait while the
webhook is pressed, never longer than ``max_hold`` seconds at a time, so under a flood
that never ends each worker still runs a batch, and each lane a round, that often.

Nothing is lost or reordered: every message is stored before its 200, and the contacts
kicked meanwhile wait for the next (bigger) batch. What the flood costs is time: while it
lasts, replies come slower, and they catch up after it. Processes on other machines
(``nyala work``) share no cores with the webhook and never hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import time
from collections.abc import Iterator
from multiprocessing.context import BaseContext
from typing import Protocol


class SharedDouble(Protocol):
    """A ``ctypes.c_double``, in shared memory (``RawValue``) or not."""

    value: float


# Seconds the webhook counts as pressed after the last request that found it so.
WINDOW = 0.02
# Seconds between looks while holding.
POLL = 0.005


class AckPressure:
    """Whether the webhook's process is pressed, said by it and heard by the others.

    Args:
        until: the shared double (``time.monotonic()`` until which the webhook is pressed);
            ``None``: a process-local one (one process, tests).
        requests: webhook requests in flight at once that press it (0: never pressed).
        max_hold: the longest :meth:`make_way` waits at a time, in seconds.
        window: how long it stays pressed after the last request that pressed it.
        poll: seconds between looks while holding.
    """

    def __init__(
        self,
        until: SharedDouble | None = None,
        *,
        requests: int = 8,
        max_hold: float = 0.25,
        window: float = WINDOW,
        poll: float = POLL,
    ) -> None:
        if requests < 0 or max_hold < 0:
            raise ValueError("requests and max_hold must not be negative")
        self._until: SharedDouble = until if until is not None else ctypes.c_double(-math.inf)
        self.requests = requests
        self.max_hold = max_hold
        self.window = window
        self.poll = poll
        self._in_flight = 0  # in this (the webhook's) process
        self.holds = 0  # times this process made way (diagnostics, tests)
        self.held_seconds = 0.0

    @classmethod
    def shared(
        cls, context: BaseContext, *, requests: int = 8, max_hold: float = 0.25
    ) -> AckPressure:
        """One to hand to the children ``context`` starts (as a ``Process`` argument:
        the double is shared, the counters are each process's own)."""
        return cls(
            context.RawValue(ctypes.c_double, -math.inf), requests=requests, max_hold=max_hold
        )

    @property
    def pressed(self) -> bool:
        """Whether the webhook is pressed now."""
        return time.monotonic() < self._until.value

    @contextlib.contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Mark a webhook request in flight (the webhook's process): it presses the
        webhook, as it starts and as it ends, if ``requests`` are in flight with it."""
        self._in_flight += 1
        self._press()
        try:
            yield
        finally:
            self._press()
            self._in_flight -= 1

    def _press(self) -> None:
        if self.requests and self._in_flight >= self.requests:
            self._until.value = time.monotonic() + self.window

    async def make_way(self) -> float:
        """Wait while the webhook is pressed, at most ``max_hold`` seconds (processing
        and sending, before each batch or round); the seconds waited."""
        if not self.pressed or self.max_hold <= 0:
            return 0.0
        start = time.monotonic()
        deadline = start + self.max_hold
        while True:
            await asyncio.sleep(min(self.poll, max(deadline - time.monotonic(), 0.0)))
            now = time.monotonic()
            if now >= deadline or now >= self._until.value:
                break
        waited = time.monotonic() - start
        self.holds += 1
        self.held_seconds += waited
        return waited
