"""The compiled form of a flow: its machine class plus what to ask at each step.

Both kinds of flow end up here: a flow definition file (:mod:`flows.loader`) and a
hand-written :class:`flows.Flow` class. The engine only ever works with a
:class:`FlowSpec`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statemachine import StateChart

from flows.messages import Option

DEFAULT_TIMEOUT = dt.timedelta(minutes=30)
ANSWER_EVENT = "answer"


@dataclass(frozen=True, slots=True)
class Expect:
    """What kind of answer a step takes: a validator name and its parameters.

    Parameter values may be templates (``"{stock_left}"``), filled from the conversation
    data when the answer arrives.
    """

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What the bot says and expects while a flow rests in one state.

    Attributes:
        name: the state id (also the step name in analytics).
        ask: the question, a template such as ``"How many of you, {name}?"``.
        say: messages sent when the step is entered, before the question (for a final
            step, the closing words).
        buttons: up to three reply buttons.
        choices: list rows (up to ten).
        choices_from: name of a query that provides the rows at run time.
        list_button: label of the button that opens a list.
        expect: the validator; defaults to ``choice`` when options are shown, else text.
        save: the data key the accepted value is saved under.
        empty: what to say when ``choices_from`` returns no rows.
        final: whether the flow ends here.
        outcome: for a final step, what reaching it means for the session: ``goal``
            (the flow did its job: counts as completion), ``cancelled`` (the customer
            said no) or ``nothing_to_do``; reports count each apart.
    """

    name: str
    ask: str | None = None
    say: tuple[str, ...] = ()
    buttons: tuple[Option, ...] = ()
    choices: tuple[Option, ...] = ()
    choices_from: str | None = None
    # The label of the button that opens the options list (default: copy ``list.button``).
    list_button: str | None = None
    expect: Expect | None = None
    save: str | None = None
    empty: str | None = None
    final: bool = False
    outcome: str = "goal"

    @property
    def has_options(self) -> bool:
        """Whether the step shows buttons or a list."""
        return bool(self.buttons or self.choices or self.choices_from)

    @property
    def validator(self) -> Expect:
        """The effective validator spec."""
        if self.expect is not None:
            return self.expect
        return Expect("choice") if self.has_options else Expect("text")

    @property
    def waits(self) -> bool:
        """Whether the conversation rests here waiting for an answer."""
        return not self.final


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowSpec:
    """A ready-to-run flow.

    Attributes:
        name: the flow's name (``order_flow``); sessions are recorded under it.
        machine: the python-statemachine class; one instance per message.
        steps: step specs by state id, in flow order.
        version: hash of the definition, stored with each session.
        timeout: idle time after which a session is abandoned.
        description: one line for listings and the menu.
        triggers: words that start this flow from anywhere (global intents).
        menu_title: title in the main menu, if the flow is listed there.
        source: the flow file, for file-based flows.
    """

    name: str
    machine: type[StateChart[Any]]
    steps: Mapping[str, Step]
    version: str
    timeout: dt.timedelta = DEFAULT_TIMEOUT
    description: str = ""
    triggers: tuple[str, ...] = ()
    menu_title: str | None = None
    source: Path | None = None

    @property
    def initial(self) -> str:
        """The id of the initial state."""
        initial = self.machine.initial_state
        assert initial is not None
        return str(initial.id)

    @property
    def state_ids(self) -> tuple[str, ...]:
        """Every state id, in flow order."""
        return tuple(str(s.id) for s in self.machine.states)

    def step(self, state_id: str) -> Step:
        """The step spec of ``state_id`` (an empty one for a state without a spec)."""
        found = self.steps.get(state_id)
        if found is not None:
            return found
        state = self.machine.states_map[state_id]
        return Step(name=state_id, final=bool(state.final))


def definition_hash(document: Any) -> str:
    """A short, stable hash of a definition (JSON-serialisable data)."""
    canonical = json.dumps(document, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def machine_structure(machine: type[StateChart[Any]]) -> list[Any]:
    """The states and transitions of a machine class as plain data (for hashing)."""
    structure: list[Any] = []
    for state in machine.states:
        transitions = [
            [
                str(t.event),
                t.target.id if t.target is not None else None,
                # Callback names, never the objects' reprs (those carry memory addresses).
                [str(spec) for spec in t.cond],
                [str(spec) for spec in t.on],
            ]
            for t in state.transitions
        ]
        structure.append([state.id, bool(state.initial), bool(state.final), transitions])
    return structure
