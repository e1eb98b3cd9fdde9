"""The framework core stands alone: importing it loads no app, no channel and no test
double, and its files name no app's concepts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ("storage", "analytics", "flows")
# The concepts of the first app built on Nyala (a tour operator): none may leak back.
APP_WORDS = re.compile(
    r"\b(tours?|bookings?|departures?|travell?ers?|omari|safari|harare|receipts?)\b",
    re.IGNORECASE,
)


def test_importing_the_core_loads_no_app_channel_or_double() -> None:
    probe = (
        "import json, sys\n"
        "import storage, analytics, flows, flows.engine, flows.runtime, flows.testing\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(run.stdout))
    assert {"storage", "analytics", "flows"} <= loaded
    assert loaded.isdisjoint({"apps", "bot", "testing", "tests", "examples", "aiohttp"})


def test_the_core_names_no_app_concepts() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in CORE
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if APP_WORDS.search(line)
    ]
    assert found == []
