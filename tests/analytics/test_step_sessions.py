"""The step figures read from the events' own copy of their session's flow, version and
start (migration 0017): a session that reaches a step again counts once, a session
started before the period never, a sandbox contact's only when asked for; per version,
filtered by a step, and the repeat-user KPI from the mark the database keeps. Worked out
by hand, on both databases."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import event

from analytics import get_kpis, get_step_funnel, start_session, track_step
from analytics.aggregates import FlowTotals, Scope, collect
from analytics.periods import resolve_period
from storage import Contact, Database, FlowSession, StepAction
from tests.analytics.fixed_events import HARARE, NOW, utc

FLOW = "ordering"
E, C, S, R = StepAction.ENTERED, StepAction.COMPLETED, StepAction.SKIPPED, StepAction.RETRY


async def _session(
    db: Database,
    contact: Contact,
    at: dt.datetime,
    version: str,
    events: list[tuple[str, StepAction]],
) -> FlowSession:
    async with db.transaction() as session:
        session.add(contact)
        flow_session = await start_session(session, contact, FLOW, flow_version=version, at=at)
        for n, (step, action) in enumerate(events):
            await track_step(
                session, flow_session, step, action, at=at + dt.timedelta(seconds=10 * (n + 1)),
                time_spent=4.0 if action is C else None,
            )  # fmt: skip
    return flow_session


async def _write(db: Database) -> None:
    async with db.transaction() as session:
        ada = Contact(wa_id="263771", profile_name="Ada", attributes={})
        ben = Contact(wa_id="263772", profile_name="Ben", attributes={})
        cy = Contact(wa_id="263773", profile_name="Cy", attributes={})
        sim = Contact(wa_id="000111", profile_name="sim", attributes={}, sandbox=True)
        session.add_all([ada, ben, cy, sim])
    # Ada, v1: enters "size", is told to try again, enters it again, answers; "pay".
    await _session(db, ada, utc(20, 9), "v1", [("size", E), ("size", R), ("size", E),
                                               ("size", C), ("pay", E)])  # fmt: skip
    # Ben, v2: skips "size" (he said it earlier), enters "pay" twice.
    await _session(db, ben, utc(21, 9), "v2", [("size", S), ("pay", E), ("pay", E)])
    # Ada again, v1: a repeat user; enters "size" and leaves.
    await _session(db, ada, utc(22, 9), "v1", [("size", E)])
    # Cy started before the period (the 10th) and came back during it: not counted.
    cy_session = await _session(db, cy, utc(10, 9), "v1", [("size", E)])
    async with db.transaction() as session:
        await track_step(session, cy_session, "size", C, time_spent=99.0, at=utc(21, 10))
        await track_step(session, cy_session, "pay", E, at=utc(21, 10, 1))
    # The simulator: only with include_sandbox.
    await _session(db, sim, utc(23, 9), "v1", [("size", E), ("pay", E)])


def _steps(funnel: Any) -> dict[str, tuple[int, int, int, int]]:
    """step → (sessions, completed, skipped, retries)."""
    return {
        s["step_name"]: (s["sessions"], s["completed"], s["skipped"], s["retries"]) for s in funnel
    }


async def test_step_figures_from_the_events_copy_of_their_session(db: Database) -> None:
    await _write(db)
    shared: dict[str, Any] = {"days": 7, "db": db, "tz": HARARE, "now": NOW}
    funnel = await get_step_funnel(FLOW, use_snapshots=False, **shared)
    assert [s["step_name"] for s in funnel] == ["size", "pay"]  # first reached, first
    # size: Ada twice (two sessions), Ben skipped it: 3; pay: Ada's first, Ben's once.
    assert _steps(funnel) == {"size": (3, 1, 1, 1), "pay": (2, 0, 0, 0)}
    assert {s["step_name"]: s["avg_time_spent"] for s in funnel}["size"] == 4.0

    with_sandbox = await get_step_funnel(FLOW, use_snapshots=False, include_sandbox=True, **shared)
    assert _steps(with_sandbox) == {"size": (4, 1, 1, 1), "pay": (3, 0, 0, 0)}

    per_version = await get_step_funnel(FLOW, use_snapshots=False, by_version=True, **shared)
    assert {(s["flow_version"], s["step_name"]): s["sessions"] for s in per_version} == {
        ("v1", "size"): 2,
        ("v1", "pay"): 1,
        ("v2", "size"): 1,
        ("v2", "pay"): 1,
    }

    # Sessions with an event at "pay": Ada's first and Ben's.
    paying = await get_step_funnel(FLOW, use_snapshots=False, step="pay", **shared)
    assert _steps(paying) == {"size": (2, 1, 1, 1), "pay": (2, 0, 0, 0)}
    retried = await get_step_funnel(FLOW, use_snapshots=False, action="retry", **shared)
    assert _steps(retried) == {"size": (1, 1, 0, 1), "pay": (1, 0, 0, 0)}

    kpis = await get_kpis(FLOW, use_snapshots=False, **shared)
    repeat = {k["name"]: k for k in kpis["kpis"]}["repeat_user_rate"]
    assert repeat["details"] == {"returning_sessions": 1, "started": 3}


async def test_the_kpis_skip_the_pass_that_counts_the_sessions_reaching_each_step(
    db: Database,
) -> None:
    """``collect(reached=False)`` (what the KPIs ask for) leaves out the sessions per step
    and the offsets, and nothing else: every other figure equals the full collection's,
    and the statement counting the distinct (session, step) pairs is not run at all."""
    await _write(db)
    scope = Scope(flow=FLOW)
    period = resolve_period(days=7, tz=HARARE, now=NOW)
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))  # (conn, cursor, statement, ...)

    collected: dict[bool, FlowTotals] = {}
    for reached in (True, False):
        statements.clear()
        event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        try:
            async with db.read() as session:
                result = await collect(
                    session, scope, period, use_snapshots=False, reached=reached
                )
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
        collected[reached] = result.overall
        pairs = [s for s in statements if "GROUP BY flow_step_events.session_started_at" in s]
        assert len(pairs) == (1 if reached else 0)
    full, lean = collected[True], collected[False]
    assert {n: s.sessions for n, s in full.steps.items()} == {"size": 3, "pay": 2}
    assert {n: (s.sessions, s.offset_count) for n, s in lean.steps.items()} == {
        "size": (0, 0),
        "pay": (0, 0),
    }
    # Offsets of the entered events: Ada's first session 10 s and 30 s ("size"), 50 s
    # ("pay"); Ada's second 10 s; Ben's "pay" 20 s and 30 s.
    assert full.steps["size"].offset_count == 3 and full.steps["size"].offset_total == 50.0
    assert full.steps["pay"].offset_count == 3 and full.steps["pay"].offset_total == 100.0
    for name, step in full.steps.items():
        kept = lean.steps[name]
        step.sessions, step.offset_total, step.offset_count = 0, 0.0, 0
        assert kept == step, name
    full.steps, lean.steps = {}, {}
    assert lean == full
    assert lean.total == 3 and lean.retries == 1 and lean.returning == 1
