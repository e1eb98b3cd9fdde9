"""Flow machines, built once and reused: the part of the engine that runs a flow.

Building a python-statemachine machine registers every callback of every state and
transition (measured: about 10× the cost of the event it then handles), and the engine
used to build one per message. A machine reads its current state from its model at every
event, so one machine per flow version can serve turn after turn: the pool keeps idle
machines, and each turn gets one with the model reset to the contact's state, data and
context, and the step tracker of the turn behind a relay listener.

A machine whose event raised is never returned to the pool (its queues may hold the
failed event's leftovers). Flows written in Python (:class:`flows.Flow`) must keep what a
conversation needs in ``ctx.data``, never on ``self``: the instance serves many contacts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from statemachine import StateChart

from analytics.tracking import StepTracker
from flows.context import EntryRecorder, FlowContext, FlowModel
from flows.spec import FlowSpec

# Idle machines kept per flow: enough for the batches running at once in a process.
IDLE_PER_FLOW = 8


class _TrackerRelay:
    """The listener a pooled machine is built with: passes each hook to the tracker of
    the turn the machine serves now (listeners can only be given at construction)."""

    def __init__(self) -> None:
        self.tracker: StepTracker | None = None

    def on_enter_state(self, state: Any, **_: Any) -> None:
        if self.tracker is not None:
            self.tracker.on_enter_state(state)

    def on_exit_state(
        self,
        state: Any,
        transition: Any = None,
        input_value: str | None = None,
        output_value: str | None = None,
        **_: Any,
    ) -> None:
        if self.tracker is not None:
            self.tracker.on_exit_state(
                state, transition, input_value=input_value, output_value=output_value
            )

    def after_transition(self, transition: Any = None, source: Any = None, **_: Any) -> None:
        if self.tracker is not None:
            self.tracker.after_transition(transition, source)


class _Pooled:
    """One reusable machine with its model and relay."""

    def __init__(self, spec: FlowSpec, state: str) -> None:
        self.spec = spec
        # Built at a state, so that construction activates nothing (no on_enter runs).
        self.model = FlowModel(state, {}, None)  # type: ignore[arg-type]  # set per turn
        self.relay = _TrackerRelay()
        self.machine: StateChart[Any] = spec.machine(
            model=self.model, listeners=[self.relay, EntryRecorder(self.model)]
        )

    def reset(
        self, state: str | None, data: dict[str, Any], ctx: FlowContext, tracker: StepTracker
    ) -> None:
        self.model.state = state
        self.model.data = data
        self.model.ctx = ctx
        self.model.entered = set()
        self.relay.tracker = tracker
        # A machine that reached a final state stops its engine; the next contact's
        # conversation is elsewhere in the flow.
        self.machine._engine.running = True
        if state is None:
            # A flow starting: queue the initial transition as a new machine's
            # constructor does (a model without a state); activate_initial_state takes it.
            self.machine._engine.start()

    def release(self) -> None:
        self.model.ctx = None  # type: ignore[assignment]  # no turn outlives its transaction
        self.model.data = {}
        self.relay.tracker = None


class MachinePool:
    """Idle machines by flow; one engine (and so one worker process) owns a pool."""

    def __init__(self) -> None:
        self._idle: dict[str, list[_Pooled]] = {}

    @contextmanager
    def machine(
        self,
        spec: FlowSpec,
        state: str | None,
        *,
        data: dict[str, Any],
        ctx: FlowContext,
        tracker: StepTracker,
    ) -> Iterator[tuple[StateChart[Any], FlowModel]]:
        """A machine of ``spec`` resting at ``state`` with the turn's data, context and
        tracker; back in the pool afterwards unless the block raised. With ``state``
        None the flow starts: ``activate_initial_state()`` enters its initial step."""
        idle = self._idle.setdefault(spec.name, [])
        pooled = idle.pop() if idle else None
        if pooled is None or pooled.spec is not spec:  # none idle, or the flow changed
            if pooled is not None:
                idle.clear()
            pooled = _Pooled(spec, state or spec.initial)
        pooled.reset(state, data, ctx, tracker)
        yield pooled.machine, pooled.model
        pooled.release()
        if len(idle) < IDLE_PER_FLOW:
            idle.append(pooled)
