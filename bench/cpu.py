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


def _machine_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores (0 if unreadable)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


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
    seconds[MACHINE] = _machine_seconds()
    return Snapshot(time.perf_counter(), seconds)


MACHINE = "machine"


def busy(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Cores kept busy per role between two snapshots (1.0 = one core all the time).

    ``other`` is what the rest of the machine used meanwhile (other work skews figures).
    """
    wall = after.wall - before.wall
    if wall <= 0:
        return {}
    used = {
        role: (after.seconds[role] - before.seconds.get(role, 0.0)) / wall
        for role in after.seconds
    }
    total = used.pop(MACHINE)
    used["other"] = max(0.0, total - sum(used.values()))
    return {role: round(value, 2) for role, value in used.items()}
