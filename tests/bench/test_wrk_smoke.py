"""``python -m bench.wrk`` works end to end (a tiny run; no figure is checked, no time)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TINY = [
    "--seconds", "1", "--bodies", "300", "--contacts", "20", "--messages", "20",
    "--tasks", "2", "--ceiling-contacts", "4", "--offered-rate", "50",
    "--offered-seconds", "0.2", "--outbox-messages", "8", "--drain-timeout", "120",
]  # fmt: skip


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.slow
def test_the_server_benchmark_prints_every_figure_beside_its_ceiling(postgres_url: str) -> None:
    del postgres_url  # PostgreSQL is reachable (else the fixture skipped or failed)
    done = subprocess.run(
        [sys.executable, "-m", "bench.wrk", *TINY],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for figure in (
        "webhook ack, wrk",
        "offered, open loop",
        "inbox commits per webhook request",
        "end to end: signed webhook → reply accepted",
        "CPU per message",
        "PostgreSQL transactions per message",
        "outbox at an 80/s limit",
        "load average before",
    ):
        assert figure in done.stdout, f"{figure!r} missing from:\n{done.stdout}"
    assert "20 messages processed of 20 posted, 20 replies accepted" in done.stdout
