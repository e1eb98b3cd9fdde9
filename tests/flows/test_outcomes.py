"""Issue 16, point 6: a completed session says how it ended (goal, cancelled, nothing to
do), declared by the flow file's final step, so completion means the goal was met."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from analytics import get_flow_completion_rate
from flows import (
    App,
    ContactRef,
    Engine,
    FlowContext,
    FlowDefinitionError,
    UserMessage,
    load_flow_text,
)
from storage import Database, FlowSession, SessionOutcome, SessionStatus
from tests.cafe import ORDER_FLOW, build_app
from tests.flows.test_loader import MINIMAL, registry

CANCELLING = ORDER_FLOW.replace(
    "  cancelled:\n    final: true\n", "  cancelled:\n    final: true\n    outcome: cancelled\n"
)

EMPTY_LIST = """
flow: pick_flow
triggers: [pick]
steps:
  pick:
    ask: Which one?
    choices: {from: rows}
    empty: There is nothing to pick yet.
    save: picked
    next: done
  done:
    final: true
"""


def test_a_final_step_declares_its_outcome() -> None:
    spec = load_flow_text(MINIMAL.replace("final: true", "final: true\n    outcome: cancelled"),
                          registry())  # fmt: skip
    assert spec.steps["done"].outcome == "cancelled"
    assert load_flow_text(MINIMAL, registry()).steps["done"].outcome == "goal"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL.replace("final: true", "final: true\n    outcome: won"), "must be one of"),
        (
            MINIMAL.replace("    ask: Yes or no?", "    ask: Yes or no?\n    outcome: cancelled"),
            "only a final step has an outcome",
        ),
    ],
)
def test_a_wrong_outcome_fails_at_load_with_its_key(text: str, message: str) -> None:
    with pytest.raises(FlowDefinitionError, match=message) as failure:
        load_flow_text(text, registry(), path="flows/x.yaml")
    assert "outcome" in str(failure.value)


async def _say(engine: Engine, who: ContactRef, *answers: str) -> None:
    for n, answer in enumerate(answers):
        if answer.startswith("tap:"):
            message = UserMessage(id=f"wamid.{who.wa_id}.{n}", kind="reply", reply_id=answer[4:])
        else:
            message = UserMessage(id=f"wamid.{who.wa_id}.{n}", kind="text", text=answer)
        await engine.handle(who, message)


async def _sessions(db: Database) -> list[FlowSession]:
    async with db.read() as session:
        return list(await session.scalars(select(FlowSession).order_by(FlowSession.id)))


async def test_cancel_at_the_review_is_not_a_completed_order(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.cafe.ORDER_FLOW", CANCELLING)
    app = build_app(tmp_path / "flows")
    engine = Engine(db, app, sandbox=True)
    order = ("order", "Rudo Moyo", "tap:small", "2")
    await _say(engine, ContactRef(wa_id="263771110001"), *order, "tap:no")
    await _say(engine, ContactRef(wa_id="263771110002"), *order, "tap:yes")
    cancelled, ordered = await _sessions(db)
    assert (cancelled.status, cancelled.outcome) == (SessionStatus.COMPLETED, "cancelled")
    assert (ordered.status, ordered.outcome) == (SessionStatus.COMPLETED, "goal")
    report = await get_flow_completion_rate("order_flow", db=db, include_sandbox=True)
    assert report["total_sessions"] == 2
    assert report["completed_sessions"] == 1
    assert report["cancelled_sessions"] == 1
    assert report["completion_rate"] == 50.0


async def test_nothing_to_choose_from_is_nothing_to_do_not_abandoned(
    db: Database, tmp_path: Path
) -> None:
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    (flows_dir / "pick_flow.yaml").write_text(EMPTY_LIST)
    app = App("Picker", flows_dir=flows_dir)

    @app.query()
    def rows(ctx: FlowContext) -> list[tuple[str, str]]:
        return []

    await _say(Engine(db, app, sandbox=True), ContactRef(wa_id="263771110003"), "pick")
    (found,) = await _sessions(db)
    assert found.status is SessionStatus.COMPLETED
    assert found.outcome == SessionOutcome.NOTHING_TO_DO
    report = await get_flow_completion_rate("pick_flow", db=db, include_sandbox=True)
    assert (report["nothing_to_do_sessions"], report["abandoned_sessions"]) == (1, 0)
    assert report["completion_rate"] == 0.0
