"""The base class for flows written in Python instead of a flow definition file."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any, ClassVar

from statemachine import StateChart

from flows.errors import FlowDefinitionError
from flows.spec import DEFAULT_TIMEOUT, FlowSpec, Step, definition_hash, machine_structure

if TYPE_CHECKING:
    from flows.context import FlowContext


class Flow(StateChart[Any]):
    """A conversation written as a python-statemachine ``StateChart``.

    Declare states named for what the bot waits for, transitions on the ``answer`` event
    (guards decide the branch; the accepted value arrives as the ``value`` argument), and
    what to ask in each state in ``steps``::

        class FeedbackFlow(Flow):
            flow_name = "feedback"
            awaiting_rating = State(initial=True)
            thanked = State(final=True)
            answer = awaiting_rating.to(thanked, on="store_rating")
            steps = {
                "awaiting_rating": Step(name="awaiting_rating", ask="Rate us 1-5",
                                        expect=Expect("integer", {"min": 1, "max": 5}),
                                        save="rating"),
                "thanked": Step(name="thanked", final=True, say=("Thank you!",)),
            }

            async def store_rating(self) -> None:
                ...  # self.ctx is the FlowContext: database session, contact, data

    Errors are not swallowed (``catch_errors_as_events = False``) and the configuration
    is updated atomically, so a failing action leaves no half-written state.
    """

    catch_errors_as_events = False
    atomic_configuration_update = True

    flow_name: ClassVar[str] = ""
    steps: ClassVar[dict[str, Step]] = {}
    timeout: ClassVar[dt.timedelta] = DEFAULT_TIMEOUT
    description: ClassVar[str] = ""
    triggers: ClassVar[tuple[str, ...]] = ()
    menu_title: ClassVar[str | None] = None

    @property
    def ctx(self) -> FlowContext:
        """The context of the message being handled."""
        ctx: FlowContext = self.model.ctx
        return ctx

    @classmethod
    def to_spec(cls) -> FlowSpec:
        """Compile the class into the engine's :class:`FlowSpec`, checking it first."""
        name = cls.flow_name or cls.__name__
        state_ids = {str(s.id) for s in cls.states}
        for key in cls.steps:
            if key not in state_ids:
                raise FlowDefinitionError(
                    f"steps names state {key!r}, which {cls.__name__} does not have",
                    path=cls.__module__,
                    key=f"{cls.__name__}.steps.{key}",
                )
        for state in cls.states:
            if getattr(state, "states", None):
                raise FlowDefinitionError(
                    "compound states are not supported in conversations; use flat states",
                    path=cls.__module__,
                    key=f"{cls.__name__}.{state.id}",
                )
        steps = {str(s.id): cls.steps.get(str(s.id)) or Step(name=str(s.id)) for s in cls.states}
        for state in cls.states:
            if state.final:
                steps[str(state.id)] = _as_final(steps[str(state.id)])
        document: Any = [
            machine_structure(cls),
            {k: asdict(v) for k, v in steps.items()},
            cls.__qualname__,
        ]
        return FlowSpec(
            name=name,
            machine=cls,
            steps=steps,
            version=definition_hash(document),
            timeout=cls.timeout,
            description=cls.description or (cls.__doc__ or "").strip().split("\n")[0],
            triggers=cls.triggers,
            menu_title=cls.menu_title,
        )


def _as_final(step: Step) -> Step:
    return step if step.final else replace(step, final=True)
