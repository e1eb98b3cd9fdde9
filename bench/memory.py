"""Resident memory (RSS) of a process, read from Linux ``/proc``."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import TracebackType


def rss_mib(pid: int) -> float | None:
    """The process's resident set size in MiB (``None`` if it is gone or unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakRSS:
    """Samples a process's RSS every ``interval`` seconds inside ``async with``; keeps the
    highest reading (``peak``) and the last one (``last``)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self.last = 0.0
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        value = rss_mib(self.pid)
        if value is not None:
            self.last = value
            self.peak = max(self.peak, value)

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> PeakRSS:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()
