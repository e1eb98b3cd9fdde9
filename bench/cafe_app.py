"""The app ``nyala serve`` runs in the webhook benchmark: the test café (``tests/cafe.py``).

``NYALA_APP=bench.cafe_app:app``, run from the repository root; the order flow's YAML is
written to ``$NYALA_BENCH_FLOWS`` (a temporary folder the benchmark makes).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.cafe import build_app

FLOWS_ENV = "NYALA_BENCH_FLOWS"

app = build_app(Path(os.environ.get(FLOWS_ENV) or tempfile.mkdtemp(prefix="nyala-bench-")))
