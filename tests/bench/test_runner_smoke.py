"""The benchmark runner works end to end (a tiny run; no figure is checked, no time)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_runner_runs_every_benchmark_on_a_tiny_size(postgres_url: str) -> None:
    del postgres_url  # PostgreSQL is reachable (else the fixture skipped or failed)
    docs = [ROOT / "docs" / name for name in ("benchmarks.md", "benchmarks.json")]
    before = [path.read_bytes() if path.exists() else None for path in docs]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    for figure in (
        "Webhook ack throughput",
        "End-to-end processed messages",
        "State machine alone",
        "Outbox send rate",
        "Receipt issued end to end",
        "send-tour-summaries",
        "RSS",
    ):
        assert figure in table, f"{figure!r} missing from:\n{table}"
    # Nothing was lost or refused (a busy machine is only a note).
    warnings = [line for line in table.splitlines() if "**Warning**" in line]
    problems = [line for line in warnings if "other processes" not in line]
    assert problems == [], table
    # --tiny never touches the committed results.
    assert [path.read_bytes() if path.exists() else None for path in docs] == before


@pytest.mark.parametrize("flag", ["--help"])
def test_the_runner_explains_itself(flag: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", flag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "--quick" in done.stdout and "--tiny" in done.stdout


def test_raw_results_kept_as_dataclasses_are_written_as_json() -> None:
    from bench.end_to_end import Processed
    from bench.report import _jsonable

    fields = {f.name: 1 for f in dataclasses.fields(Processed)}
    raw = json.loads(json.dumps({"ceiling": Processed(**fields)}, default=_jsonable))
    assert raw == {"ceiling": fields}
