"""CPU time of the processes taking part (Linux ``/proc``), to see what limits a figure."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone or unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command may contain spaces; fields after its closing parenthesis are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """CPU seconds so far per role, and the wall clock."""

    wall: float
    seconds: dict[str, float]


def snapshot(roles: Mapping[str, Sequence[int] | None]) -> Snapshot:
    """CPU seconds per role; a role of ``None`` means every PostgreSQL process."""
    seconds = {}
    for role, pids in roles.items():
        chosen = _postgres_pids() if pids is None else pids
        seconds[role] = sum(_process_seconds(pid) for pid in chosen)
    return Snapshot(time.perf_counter(), seconds)


def busy(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Cores kept busy per role between two snapshots (1.0 = one core all the time)."""
    wall = after.wall - before.wall
    if wall <= 0:
        return {}
    return {
        role: round((after.seconds[role] - before.seconds.get(role, 0.0)) / wall, 3)
        for role in after.seconds
    }
