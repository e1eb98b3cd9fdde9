"""Sandbox contacts (the console's chat simulator) are left out of reports, KPIs, funnels,
error analysis and snapshots unless ``include_sandbox`` asks for them (both backends),
and ``nyala report … --include-sandbox`` counts them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

from analytics import (
    generate_daily_snapshot,
    get_error_analysis,
    get_flow_completion_rate,
    get_kpis,
    get_step_funnel,
    start_session,
    track_step,
)
from storage import Contact, Database, GoalEvent, StepAction, migrate
from tests.analytics.fixed_events import FLOW, HARARE, NOW, load_fixed_events, utc
from tests.cli import nyala

SANDBOX_SESSIONS = 3
DAY = dt.date(2026, 11, 20)


async def _add_sandbox_sessions(db: Database) -> None:
    """Three simulator sessions on the 20th: each enters the first step, is told to try
    again, fails with an error; one also reaches the goal."""
    async with db.transaction() as session:
        contact = Contact(wa_id="00012345678", profile_name="ada (simulator)", sandbox=True)
        contact.attributes = {}
        session.add(contact)
        await session.flush()
        for n in range(SANDBOX_SESSIONS):
            at = utc(20, 9 + n)
            flow_session = await start_session(session, contact, FLOW, at=at)
            await track_step(session, flow_session, "choose_tour", StepAction.ENTERED, at=at)
            await track_step(
                session, flow_session, "choose_tour", StepAction.RETRY,
                error_message="Please pick a tour.", at=at + dt.timedelta(seconds=5),
            )  # fmt: skip
            await track_step(
                session, flow_session, "choose_tour", StepAction.ERROR,
                error_message="SandboxOnlyError: boom", at=at + dt.timedelta(seconds=9),
            )  # fmt: skip
            if n == 0:
                session.add(
                    GoalEvent(goal="order", contact_id=contact.id, session_id=flow_session.id,
                              at=at + dt.timedelta(seconds=8))
                )  # fmt: skip


async def _reports(db: Database, **options: Any) -> dict[str, Any]:
    shared: dict[str, Any] = {"days": 7, "db": db, "tz": HARARE, "now": NOW, **options}
    return {
        "completion": await get_flow_completion_rate(FLOW, use_snapshots=False, **shared),
        "funnel": list(await get_step_funnel(FLOW, use_snapshots=False, **shared)),
        "errors": list(await get_error_analysis(FLOW, **shared)),
        "kpis": await get_kpis(FLOW, goals=["order"], use_snapshots=False, **shared),
    }


async def test_reports_leave_sandbox_contacts_out_unless_asked(db: Database) -> None:
    await load_fixed_events(db)
    before = await _reports(db)
    await _add_sandbox_sessions(db)
    assert await _reports(db) == before
    assert await _reports(db, include_sandbox=False) == before
    included = await _reports(db, include_sandbox=True)
    total = before["completion"]["total_sessions"]
    assert included["completion"]["total_sessions"] == total + SANDBOX_SESSIONS
    assert included["completion"]["error_sessions"] == (
        before["completion"]["error_sessions"] + SANDBOX_SESSIONS
    )
    first = {row["step_name"]: row["sessions"] for row in before["funnel"]}
    assert {row["step_name"]: row["sessions"] for row in included["funnel"]}["choose_tour"] == (
        first["choose_tour"] + SANDBOX_SESSIONS
    )
    assert "SandboxOnlyError" not in json.dumps(before["errors"])
    assert "SandboxOnlyError" in json.dumps(included["errors"])
    assert included["kpis"]["total_sessions"] == total + SANDBOX_SESSIONS


async def test_snapshots_never_hold_sandbox_sessions(db: Database) -> None:
    await load_fixed_events(db)
    day_only: dict[str, Any] = {
        "date_from": DAY,
        "date_to": DAY,
        "db": db,
        "tz": HARARE,
        "now": NOW,
    }
    real = (await get_flow_completion_rate(FLOW, use_snapshots=False, **day_only))[
        "total_sessions"
    ]
    await _add_sandbox_sessions(db)
    snapshot = await generate_daily_snapshot(FLOW, DAY, db=db, tz=HARARE, now=NOW)
    assert snapshot is not None and snapshot.total_sessions == real
    from_snapshot = await get_flow_completion_rate(FLOW, **day_only)
    assert from_snapshot["source"]["snapshot_days"] == 1
    assert from_snapshot["total_sessions"] == real
    # Asking for sandbox sessions reads the events: the snapshot cannot answer.
    everything = await get_flow_completion_rate(FLOW, include_sandbox=True, **day_only)
    assert everything["source"]["snapshot_days"] == 0
    assert everything["total_sessions"] == real + SANDBOX_SESSIONS


REPORTS_APP = """
from flows import App

app = App("Reports", timezone="Africa/Harare", goals=["order"])
"""


def test_the_cli_counts_sandbox_contacts_only_with_the_flag(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'nyala.db'}"
    app_file = tmp_path / "reports_app.py"
    app_file.write_text(REPORTS_APP)

    async def fill() -> None:
        db = Database(database_url)
        try:
            await migrate(db)
            await load_fixed_events(db)
            await _add_sandbox_sessions(db)
        finally:
            await db.dispose()

    asyncio.run(fill())
    env = {"DATABASE_URL": database_url, "NYALA_APP": str(app_file)}
    args = ("report", "completion", FLOW, "--from", "2026-11-19", "--to", "2026-11-25", "--json")
    plain = nyala(*args, cwd=tmp_path, env=env)
    assert plain.returncode == 0, plain.stderr
    counted = nyala(*args, "--include-sandbox", cwd=tmp_path, env=env)
    assert counted.returncode == 0, counted.stderr
    total = json.loads(plain.stdout)["total_sessions"]
    assert json.loads(counted.stdout)["total_sessions"] == total + SANDBOX_SESSIONS
