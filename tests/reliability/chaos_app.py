"""The application the chaos run talks to: the test café plus a survey that times out fast.

The café's order flow (``tests/cafe.py``: skipped steps, buttons, validated integers,
an action, two final states) and its rating flow carry the conversations; the survey
flow's three-second timeout lets a bounded run prove that idle sessions end as
``abandoned`` instead of staying ``active``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flows import App
from tests.cafe import build_app

SURVEY_TIMEOUT = dt.timedelta(seconds=3)
SURVEY_FLOW = f"""
flow: survey_flow
description: A one-question survey nobody finishes in the chaos run
timeout: {int(SURVEY_TIMEOUT.total_seconds())}s
triggers: [survey]
steps:
  ask_score:
    ask: From 0 to 10, how likely are you to recommend us?
    expect: {{integer: {{min: 0, max: 10}}}}
    save: score
  thanked:
    final: true
    say: Thank you!
"""


def build_chaos_app(flows_dir: Path) -> App:
    """The café app with the survey flow added to ``flows_dir``."""
    flows_dir.mkdir(parents=True, exist_ok=True)
    survey = flows_dir / "survey_flow.yaml"
    if not survey.exists() or survey.read_text() != SURVEY_FLOW:  # never under a live server
        survey.write_text(SURVEY_FLOW)
    return build_app(flows_dir)


APP_FILE = """\
from pathlib import Path

from tests.reliability.chaos_app import build_chaos_app

app = build_chaos_app(Path(__file__).parent / "flows")
"""
