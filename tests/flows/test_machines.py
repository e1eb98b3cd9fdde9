"""Flow machines reused turn after turn (flows/machines.MachinePool) behave exactly like a
machine built for the turn: same states, same step events, also after a machine ended a
flow in a final state and serves the next contact in the middle of one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analytics.tracking import StepTracker
from flows import App, ContactRef, Engine, UserMessage
from flows.context import EntryRecorder, FlowModel
from flows.machines import MachinePool
from storage import Database
from tests.cafe import build_app

# (state, answer) pairs, visiting final states between the others.
VISITS = [
    ("ask_size", "large"),
    ("confirm", "no"),  # ends in "cancelled", a final state
    ("ask_size", "small"),
    ("ask_count", 2),
    ("confirm", "no"),
    ("ask_count", 3),
]


class _Contact:
    attributes: dict[str, Any] = {}  # noqa: RUF012 - a stand-in read by the name_known guard


class _Ctx:
    contact = _Contact()


def _events(tracker: StepTracker) -> list[tuple[str, str]]:
    return [(e.step_name, e.action.value) for e in tracker.events]


async def test_a_pooled_machine_matches_a_fresh_one_at_every_visit(tmp_path: Path) -> None:
    spec = build_app(tmp_path / "flows").flows["order_flow"]
    pool = MachinePool()
    for state, value in VISITS:
        fresh_tracker = StepTracker()
        model = FlowModel(state, {"name": "Ada"}, _Ctx())  # type: ignore[arg-type]
        fresh = spec.machine(model=model, listeners=[fresh_tracker, EntryRecorder(model)])
        await fresh.send("answer", value=value)

        pooled_tracker = StepTracker()
        with pool.machine(
            spec,
            state,
            data={"name": "Ada"},
            ctx=_Ctx(),  # type: ignore[arg-type]
            tracker=pooled_tracker,
        ) as (machine, pooled_model):
            await machine.send("answer", value=value)
            rested = pooled_model.state
        assert rested == model.state, (state, value)
        assert _events(pooled_tracker) == _events(fresh_tracker)
    # One machine served every visit.
    assert len(pool._idle["order_flow"]) == 1


async def test_a_machine_whose_event_raised_is_not_reused(tmp_path: Path) -> None:
    spec = build_app(tmp_path / "flows").flows["order_flow"]
    pool = MachinePool()
    with (
        pytest.raises(RuntimeError),
        pool.machine(
            spec,
            "ask_size",
            data={},
            ctx=_Ctx(),  # type: ignore[arg-type]
            tracker=StepTracker(),
        ),
    ):
        raise RuntimeError("the turn failed")
    assert pool._idle["order_flow"] == []


async def test_a_contact_mid_flow_after_another_finished_one(cafe: App, db: Database) -> None:
    engine = Engine(db, cafe)
    ada, bob = ContactRef(wa_id="263770000101"), ContactRef(wa_id="263770000102")
    n = 0

    async def say(who: ContactRef, text: str, tap: str | None = None) -> str:
        nonlocal n
        n += 1
        message = (
            UserMessage(id=f"m.{n}", kind="reply", text=text, reply_id=tap)
            if tap
            else UserMessage(id=f"m.{n}", kind="text", text=text)
        )
        replies = await engine.handle(who, message)
        return str(getattr(replies[-1], "body", replies[-1]))

    for text in ("order", "Ada Lovelace", "Large"):
        await say(ada, text)
    for text in ("order", "Bob Marley", "Small"):
        await say(bob, text)
    assert await say(ada, "2") == "2 large for Ada Lovelace. Confirm?"
    assert await say(ada, "Cancel", tap="no") == "Cancelled."  # the machine ended in a final state
    # The same machine, back in the pool, takes Bob's answer in the middle of the flow.
    assert await say(bob, "3") == "3 small for Bob Marley. Confirm?"
    assert len(engine.machines._idle["order_flow"]) == 1


async def test_a_pooled_machine_starts_a_flow_like_a_fresh_one(tmp_path: Path) -> None:
    """Starting a flow takes a machine from the pool too (``state=None``): the initial
    step is entered with the same step events, whether the machine is new, was last used
    in the middle of the flow, or ended it in a final state."""
    spec = build_app(tmp_path / "flows").flows["order_flow"]
    pool = MachinePool()
    fresh_tracker = StepTracker()
    model = FlowModel(None, {}, _Ctx())  # type: ignore[arg-type]
    fresh = spec.machine(model=model, listeners=[fresh_tracker, EntryRecorder(model)])
    await fresh.activate_initial_state()
    assert model.state == spec.initial
    # None: start the flow; a pair: answer at that step (the second ends the flow).
    visits: list[tuple[str, Any] | None] = [None, ("ask_count", 2), None, ("confirm", "no")]
    for visit in [*visits, None]:
        tracker = StepTracker()
        with pool.machine(
            spec,
            None if visit is None else visit[0],
            data={},
            ctx=_Ctx(),  # type: ignore[arg-type]
            tracker=tracker,
        ) as (machine, pooled_model):
            if visit is None:
                await machine.activate_initial_state()
                assert pooled_model.state == model.state
                assert pooled_model.entered == model.entered
                assert _events(tracker) == _events(fresh_tracker)
            else:
                await machine.send("answer", value=visit[1])
    assert len(pool._idle["order_flow"]) == 1
