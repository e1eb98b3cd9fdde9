"""``nyala report`` and ``nyala snapshot`` as a user runs them, on the fixed event set."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from storage import Database, migrate
from tests.analytics.fixed_events import load_fixed_events
from tests.cli import nyala

# An app of the framework alone (no tables of its own), in the fixed events' timezone:
# reports need no app's tables.
REPORTS_APP = """
from flows import App

app = App("Reports", timezone="Africa/Harare", goals=["order"])
"""


def _database(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nyala.db'}"
    app_file = tmp_path / "reports_app.py"
    app_file.write_text(REPORTS_APP)

    async def fill() -> None:
        db = Database(url)
        try:
            await migrate(db)
            await load_fixed_events(db)
        finally:
            await db.dispose()

    asyncio.run(fill())
    return {"DATABASE_URL": url, "NYALA_APP": str(app_file)}


def test_report_json_documents(tmp_path: Path) -> None:
    env = _database(tmp_path)
    args = ("--from", "2026-11-19", "--to", "2026-11-25", "--json")
    completion = nyala("report", "completion", "booking_flow", *args, cwd=tmp_path, env=env)
    assert completion.returncode == 0, completion.stderr
    document = json.loads(completion.stdout)
    assert document["flow"] == "booking_flow"
    assert (document["total_sessions"], document["completion_rate"]) == (8, 50.0)
    assert document["statuses"]["abandoned"] == 2
    funnel = json.loads(
        nyala("report", "funnel", "booking_flow", *args, cwd=tmp_path, env=env).stdout
    )
    assert [(s["step_name"], s["sessions"]) for s in funnel][:1] == [("choose_tour", 8)]
    assert {"step_name", "sessions", "percentage", "drop_off"} <= set(funnel[0])
    errors = json.loads(
        nyala("report", "errors", "booking_flow", *args, cwd=tmp_path, env=env).stdout
    )
    assert [(e["step_name"], e["error_type"], e["count"]) for e in errors][1] == (
        "review_booking",
        "KeyError",
        1,
    )
    kpis = json.loads(nyala("report", "kpis", "booking_flow", *args, cwd=tmp_path, env=env).stdout)
    assert kpis["flow"] == "booking_flow"
    completion_kpi = next(k for k in kpis["kpis"] if k["name"] == "completion_rate")
    assert (completion_kpi["value"], completion_kpi["passed"]) == (50.0, False)


def test_tables_notes_and_bad_input(tmp_path: Path) -> None:
    env = _database(tmp_path)
    table = nyala("report", "kpis", "booking_flow", "--from", "2026-11-19", cwd=tmp_path, env=env)
    assert table.returncode == 0, table.stderr
    assert "Completion rate" in table.stdout and "FAIL" in table.stdout
    unknown = nyala("report", "funnel", "nope", "--json", cwd=tmp_path, env=env)
    assert unknown.returncode == 2  # a wrong name is an error, not an empty report (issue 16)
    assert unknown.stdout == ""
    assert (
        unknown.stderr
        == "nyala: error: no flow 'nope': the flows are booking_flow, support_flow\n"
    )
    reversed_range = nyala(
        "report", "completion", "booking_flow", "--from", "2026-11-20", "--to", "2026-11-10",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert reversed_range.returncode == 2
    assert reversed_range.stderr == (
        "nyala: error: the date range is reversed: 2026-11-20 is after 2026-11-10\n"
    )
    both = nyala(
        "report", "funnel", "booking_flow", "--days", "3", "--from", "2026-11-20",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert both.returncode == 2 and "Traceback" not in both.stderr


def test_snapshots_are_cron_safe(tmp_path: Path) -> None:
    env = _database(tmp_path)
    for _ in range(2):
        run = nyala(
            "snapshot", "--period", "daily", "--date", "2026-11-24", "--json",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        rows = json.loads(run.stdout)
        assert [(r["flow"], r["total_sessions"]) for r in rows] == [
            ("booking_flow", 2),
            ("support_flow", 1),
        ]
    backfill = nyala(
        "snapshot", "--period", "daily", "--flow", "booking_flow",
        "--from", "2026-11-19", "--to", "2026-11-25", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert backfill.returncode == 0, backfill.stderr
    # Every day but the 20th has booking sessions.
    assert backfill.stdout.count("booking_flow") == 6
    assert "wrote 6 daily snapshots over 7 periods" in backfill.stderr
