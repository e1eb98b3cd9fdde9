"""CPU time of the processes taking part (Linux ``/proc``), to see what limits a figure.

PostgreSQL backends come and go (a pool's overflow connections, autovacuum workers), so
a :class:`Monitor` samples them a few times a second and keeps each process's last
reading: a process that exits during the window still counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

Roles = Mapping[str, Sequence[int] | None]
"""Role → its process ids; ``None`` means every PostgreSQL process."""


def _process_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (``None`` if it is gone or unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command may contain spaces; fields after its closing parenthesis are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants alive now (``nyala serve
    --processors`` does its work in child processes)."""
    return sum(_process_seconds(each) or 0.0 for each in tree_pids(pid))


def process_seconds(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds of each process alive now, by process id."""
    found = {pid: _process_seconds(pid) for pid in pids}
    return {pid: seconds for pid, seconds in found.items() if seconds is not None}


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants alive now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _machine_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores (0 if unreadable)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


class Monitor:
    """Cores kept busy per role while the ``async with`` block runs.

    :attr:`cores` maps each role, plus ``other`` (the rest of the machine: other work
    skews figures), to cores busy on average (1.0 = one core all the time);
    :attr:`postgres_started` counts PostgreSQL processes that started meanwhile (new
    connections, autovacuum workers).
    """

    def __init__(self, roles: Roles, interval: float = 0.25) -> None:
        self.roles = roles
        self.interval = interval
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._initial: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._wall = 0.0
        self._machine = 0.0
        self.cores: dict[str, float] = {}
        self.postgres_started = 0

    def _sample(self, *, initial: bool = False) -> None:
        postgres: list[int] | None = None
        for role, listed in self.roles.items():
            born_counts_from_zero = listed is None and not initial
            pids: Sequence[int]
            if listed is None:
                postgres = _postgres_pids() if postgres is None else postgres
                if initial:
                    self._initial.update(postgres)
                pids = postgres
            else:
                pids = listed
            for pid in pids:
                seconds = _process_seconds(pid)
                if seconds is None:
                    continue
                key = (role, pid)
                if key not in self._first:
                    # A PostgreSQL process born during the window counts from zero.
                    self._first[key] = 0.0 if born_counts_from_zero else seconds
                self._last[key] = seconds

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sample()

    async def __aenter__(self) -> Monitor:
        self._sample(initial=True)
        self._machine = _machine_seconds()
        self._wall = time.perf_counter()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._sample()
        wall = time.perf_counter() - self._wall
        machine = _machine_seconds() - self._machine
        if wall <= 0:
            return
        used = dict.fromkeys(self.roles, 0.0)
        for key, first in self._first.items():
            used[key[0]] += max(0.0, self._last[key] - first)
        other = max(0.0, machine - sum(used.values()))
        self.cores = {role: round(value / wall, 2) for role, value in used.items()}
        self.cores["other"] = round(other / wall, 2)
        started = {pid for role, pid in self._first if self.roles[role] is None}
        self.postgres_started = len(started - self._initial)
