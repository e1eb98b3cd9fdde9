"""Figures the reliability runs write for ``docs/reliability.md``.

Tests and the chaos run call :func:`record` with table rows; nothing is written unless
``NYALA_RELIABILITY_RESULTS`` names a folder (``python -m tests.reliability`` sets it), so
a plain ``pytest`` run leaves the working tree alone. :mod:`tests.reliability.report`
assembles the rows into the page: no figure in it is typed by hand.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["RESULTS_ENV", "Row", "fuzz_examples", "load_rows", "record"]

RESULTS_ENV = "NYALA_RELIABILITY_RESULTS"
FUZZ_ENV = "NYALA_FUZZ_EXAMPLES"


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One line of the reliability table.

    Attributes:
        scenario: what is being survived, in a few words.
        injected: what was done to the system.
        load: how much of it.
        observed: the counts seen afterwards.
        passed: whether every invariant held.
    """

    scenario: str
    injected: str
    load: str
    observed: str
    passed: bool = True


def fuzz_examples(default: int = 200) -> int:
    """Generated cases per property (``NYALA_FUZZ_EXAMPLES``; CI uses the default)."""
    raw = os.environ.get(FUZZ_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


def record(key: str, *rows: Row) -> None:
    """Write ``rows`` under ``key`` when a results folder is set (else do nothing)."""
    folder = os.environ.get(RESULTS_ENV)
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", key)
    (path / f"{name}.json").write_text(
        json.dumps([asdict(row) for row in rows], indent=2, ensure_ascii=False) + "\n"
    )


def load_rows(folder: Path) -> dict[str, list[Row]]:
    """Every recorded key with its rows, sorted by key."""
    found: dict[str, list[Row]] = {}
    for path in sorted(folder.glob("*.json")):
        found[path.stem] = [Row(**item) for item in json.loads(path.read_text())]
    return found
