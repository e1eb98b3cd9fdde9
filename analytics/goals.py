"""Conversion goals: what an app counts as success, declared by the app.

The framework knows no business: "completion to order" is a café's goal ``order``,
"completion to reservation" a restaurant's ``reservation``. An action
records a goal with ``ctx.reach_goal(name)`` (a :class:`storage.GoalEvent` row in the
message's transaction); reports count a session as converted when a goal was reached in
it, and never read the app's own tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}$")


@dataclass(frozen=True, slots=True)
class Goal:
    """A conversion goal.

    Attributes:
        name: lower_snake_case, as recorded (``reservation``).
        label: the noun reports use ("order" → "Completion to order ratio").
        description: what reaching it means, for the docs and the console.
    """

    name: str
    label: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"goal name {self.name!r} must be lower_snake_case (≤ 60 chars)")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))
