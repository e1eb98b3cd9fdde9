"""Flow definition files: YAML in conversation vocabulary, compiled to python-statemachine.

A flow file says what to ask, what to expect, where to save it, when to skip, where to
go next and which named actions to run. It compiles to the library's own declarative
definition (:func:`statemachine.io.create_machine_class_from_definition`): each step is a
state, each accepted answer is the ``answer`` event, branches are guarded transitions,
``skip_if`` is an eventless transition and ``do``/``enter`` are callbacks that call the
application's registered actions. See ``docs/flows.md`` for the format.

Everything is checked at load; a wrong file fails with its path, line, key and reason.
"""

from __future__ import annotations

import datetime as dt
import difflib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from statemachine import State, StateChart
from statemachine.exceptions import InvalidDefinition
from statemachine.io import create_machine_class_from_definition

from flows.errors import FlowDefinitionError
from flows.messages import (
    BUTTON_ID_MAX,
    BUTTON_TITLE_MAX,
    MAX_BUTTONS,
    MAX_LIST_ROWS,
    ROW_ID_MAX,
    ROW_TITLE_MAX,
    Option,
    check_option_id,
    fit_titles,
)
from flows.spec import ANSWER_EVENT, DEFAULT_TIMEOUT, Expect, FlowSpec, Step, definition_hash
from flows.validators import BUILTIN_VALIDATORS

if TYPE_CHECKING:
    from flows.app import Registry

Path_ = tuple[str | int, ...]

FLOW_KEYS = ("flow", "description", "timeout", "triggers", "menu", "start", "steps")
STEP_KEYS = (
    "ask", "say", "buttons", "choices", "list_button", "expect", "save", "skip_if",
    "next", "on", "do", "enter", "final", "empty", "outcome",
)  # fmt: skip
# What a final step's ``outcome`` may say (storage.SessionOutcome's values).
OUTCOMES = ("goal", "cancelled", "nothing_to_do")
BRANCH_KEYS = ("next", "do", "if", "unless")
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _reserved_names() -> frozenset[str]:
    """Names a step may not take: the machine's own attributes, class and instance."""

    class _Probe(StateChart[Any]):
        start = State(initial=True)
        end = State(final=True)
        go = start.to(end)

    class _Model:
        state = None

    probe = _Probe(model=_Model())
    own = {"start", "end", "go"}
    return frozenset(dir(StateChart)) | (frozenset(vars(probe)) - own) | {ANSWER_EVENT, "ctx"}


_RESERVED_NAMES = _reserved_names()


class _FlowYamlLoader(yaml.SafeLoader):
    """SafeLoader that reads ``on``/``off``/``yes``/``no`` as words, not booleans.

    In flow files they are keys (``on:``) and button ids (``yes: Confirm``); YAML 1.1
    would silently turn them into ``True``/``False``.
    """


_FlowYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_FlowYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _line_map(text: str) -> dict[Path_, int]:
    """Map each key path of the document to its 1-based line."""
    lines: dict[Path_, int] = {}
    root = yaml.compose(text, Loader=_FlowYamlLoader)

    def walk(node: yaml.Node | None, path: Path_) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value)
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    walk(root, ())
    return lines


def parse_duration(value: Any) -> dt.timedelta:
    """``"30m"``, ``"2h"``, ``"90s"``, ``"1d"`` or a number of minutes."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30m, 2h or 1d")
    if isinstance(value, int | float) and value > 0:
        return dt.timedelta(minutes=value)
    match = _DURATION.match(str(value))
    if not match or int(match.group(1)) <= 0:
        raise ValueError("a duration such as 30m, 2h or 1d")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True, slots=True)
class _Branch:
    target: str
    actions: tuple[str, ...]
    if_: tuple[str, ...]
    unless: tuple[str, ...]
    choice: str | None = None


class _Compiler:
    """Checks one parsed flow document and builds its :class:`FlowSpec`."""

    def __init__(self, document: Any, path: Path, lines: dict[Path_, int], registry: Registry):
        self.doc = document
        self.path = path
        self.lines = lines
        self.registry = registry
        self.methods: dict[str, Callable[..., Any]] = {}
        self.choice_methods: dict[str, str] = {}

    # error reporting ------------------------------------------------------------------
    def fail(self, message: str, *path: str | int) -> FlowDefinitionError:
        line = None
        for depth in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:depth]))
            if line is not None:
                break
        key = ".".join(str(p) for p in path) or None
        return FlowDefinitionError(message, path=self.path, key=key, line=line)

    def unknown_keys(self, mapping: Mapping[str, Any], allowed: Sequence[str], *path: str) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(allowed)
                raise self.fail(f"unknown key {key!r}{hint}; known keys: {known}", *path, key)

    def names(self, value: Any, *path: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise self.fail("must be a name or a list of names", *path)
        return tuple(items)

    def text(self, value: Any, *path: str | int) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail("must be text", *path)
        text = str(value)
        if not text.strip():
            raise self.fail("must not be empty", *path)
        return text

    # compilation ------------------------------------------------------------------------
    def compile(self) -> FlowSpec:
        doc = self.doc
        if not isinstance(doc, dict):
            raise self.fail("a flow file must be a mapping with 'flow' and 'steps'")
        self.unknown_keys(doc, FLOW_KEYS)
        name = doc.get("flow")
        if not isinstance(name, str) or not _IDENT.match(name):
            raise self.fail(
                "'flow' must be the flow's name in lower_snake_case, e.g. order_flow", "flow"
            )
        try:
            timeout = parse_duration(doc["timeout"]) if "timeout" in doc else DEFAULT_TIMEOUT
        except ValueError as exc:
            raise self.fail(f"must be {exc}", "timeout") from None
        triggers = tuple(self.names(doc["triggers"], "triggers")) if "triggers" in doc else ()
        menu = self.text(doc["menu"], "menu") if "menu" in doc else None
        description = self.text(doc["description"], "description") if "description" in doc else ""
        raw_steps = doc.get("steps")
        if not isinstance(raw_steps, dict) or not raw_steps:
            raise self.fail("'steps' must be a mapping of step names to steps", "steps")
        order = [str(k) for k in raw_steps]
        for step_name in order:
            if not _IDENT.match(step_name):
                raise self.fail("step names are lower_snake_case identifiers", "steps", step_name)
            if step_name in _RESERVED_NAMES:
                raise self.fail(
                    f"{step_name!r} is reserved by the state machine; choose another name",
                    "steps",
                    step_name,
                )
        start = doc.get("start", order[0])
        if not isinstance(start, str) or start not in raw_steps:  # a list is unhashable
            raise self.fail(f"start step {start!r} is not one of the steps", "start")

        steps: dict[str, Step] = {}
        states: dict[str, Any] = {}
        for index, step_name in enumerate(order):
            raw = raw_steps[step_name]
            if not isinstance(raw, dict):
                raise self.fail(
                    "a step must be a mapping (ask, expect, save, ...)", "steps", step_name
                )
            following = order[index + 1] if index + 1 < len(order) else None
            step, state = self.compile_step(step_name, raw, following, order)
            if step_name == start:
                state["initial"] = True
            steps[step_name] = step
            states[step_name] = state
        if not any(s.final for s in steps.values()):
            raise self.fail("a flow needs at least one step with 'final: true'", "steps")

        attrs: dict[str, Any] = {
            "catch_errors_as_events": False,
            "atomic_configuration_update": True,
            **self.methods,
        }
        class_name = "".join(part.capitalize() for part in name.split("_")) or "Flow"
        try:
            machine = create_machine_class_from_definition(class_name, states=states, **attrs)
        except (InvalidDefinition, KeyError, ValueError, TypeError) as exc:
            raise self.fail(f"the flow is not a valid state machine: {exc}", "steps") from exc
        return FlowSpec(
            name=name,
            machine=machine,
            steps=steps,
            version=definition_hash(doc),
            timeout=timeout,
            description=description,
            triggers=triggers,
            menu_title=menu,
            source=self.path,
        )

    def compile_step(
        self, name: str, raw: dict[str, Any], following: str | None, order: list[str]
    ) -> tuple[Step, dict[str, Any]]:
        at = ("steps", name)
        self.unknown_keys(raw, STEP_KEYS, *at)
        final = raw.get("final", False)
        if not isinstance(final, bool):
            raise self.fail("must be true or false", *at, "final")
        say = raw.get("say", ())
        if not isinstance(say, list | tuple):
            say = [say]  # one text; anything else (null, a mapping) fails as "must be text"
        says = tuple(self.text(s, *at, "say") for s in say)
        state: dict[str, Any] = {}
        if "enter" in raw:
            entered = self.names(raw["enter"], *at, "enter")
            state["enter"] = self.action_method(f"on_{name}", entered, *at, "enter")
        if final:
            for key in (
                "ask",
                "expect",
                "save",
                "next",
                "on",
                "do",
                "buttons",
                "choices",
                "skip_if",
            ):
                if key in raw:
                    raise self.fail(
                        f"a final step ends the flow and cannot have {key!r}", *at, key
                    )
            outcome = raw.get("outcome", "goal")
            if outcome not in OUTCOMES:
                raise self.fail(f"must be one of {', '.join(OUTCOMES)}", *at, "outcome")
            state["final"] = True
            return Step(name=name, say=says, final=True, outcome=outcome), state
        if "outcome" in raw:
            raise self.fail("only a final step has an outcome", *at, "outcome")

        if "ask" not in raw:
            raise self.fail("a step needs 'ask' (the question) unless it is 'final: true'", *at)
        ask = self.text(raw["ask"], *at, "ask")
        buttons = (
            self.options(raw["buttons"], MAX_BUTTONS, BUTTON_TITLE_MAX, *at, "buttons")
            if "buttons" in raw
            else ()
        )
        choices: tuple[Option, ...] = ()
        choices_from = None
        if "choices" in raw:
            value = raw["choices"]
            if isinstance(value, dict) and set(value) == {"from"}:
                choices_from = self.text(value["from"], *at, "choices", "from")
                if choices_from not in self.registry.queries:
                    raise self.unknown_name(
                        "query", choices_from, self.registry.queries, *at, "choices", "from"
                    )
            else:
                choices = self.options(value, MAX_LIST_ROWS, ROW_TITLE_MAX, *at, "choices")
        if buttons and (choices or choices_from):
            raise self.fail("use either 'buttons' or 'choices', not both", *at, "choices")
        expect = self.expect(raw["expect"], *at, "expect") if "expect" in raw else None
        if (
            expect is not None
            and expect.kind == "choice"
            and not (buttons or choices or choices_from)
        ):
            raise self.fail("'expect: choice' needs 'buttons' or 'choices'", *at, "expect")
        save = raw.get("save")
        if save is not None and (not isinstance(save, str) or not _IDENT.match(save)):
            raise self.fail("must be a lower_snake_case data key", *at, "save")
        list_button = (
            self.text(raw["list_button"], *at, "list_button") if "list_button" in raw else None
        )
        empty = self.text(raw["empty"], *at, "empty") if "empty" in raw else None

        # Where an answer leads: choice branches, then 'next' branches, then the default.
        option_ids = [o.id for o in (*buttons, *choices)]
        branches: list[_Branch] = []
        if "on" in raw:
            if not (buttons or choices or choices_from):
                raise self.fail(
                    "'on' branches on a choice; the step needs buttons or choices", *at, "on"
                )
            if not isinstance(raw["on"], dict):
                raise self.fail("must map option ids to steps", *at, "on")
            for option_id, branch in raw["on"].items():
                if option_ids and str(option_id) not in option_ids:
                    raise self.fail(
                        f"{option_id!r} is not one of the options ({', '.join(option_ids)})",
                        *at,
                        "on",
                        str(option_id),
                    )
                branches.append(
                    self.branch(branch, order, str(option_id), *at, "on", str(option_id))
                )
        default_target = following
        default_actions: tuple[str, ...] = ()
        do = self.names(raw["do"], *at, "do") if "do" in raw else ()
        self.check_names("action", do, self.registry.actions, *at, "do")
        if "next" in raw:
            nxt = raw["next"]
            if isinstance(nxt, str):
                self.target(nxt, order, *at, "next")
                default_target = nxt
            elif isinstance(nxt, list) and nxt:
                default_target = None
                for i, branch in enumerate(nxt):
                    built = self.branch(branch, order, None, *at, "next", i)
                    if not built.if_ and not built.unless:
                        if i != len(nxt) - 1:
                            raise self.fail(
                                "only the last branch may have no 'if'", *at, "next", i
                            )
                        default_target = built.target
                        default_actions = built.actions
                    else:
                        branches.append(built)
            else:
                raise self.fail("must be a step name or a list of branches", *at, "next")
        elif following is None and not branches:
            raise self.fail("the last step needs 'next' or 'final: true'", *at)
        elif option_ids and {b.choice for b in branches} >= set(option_ids):
            default_target = None  # every option has its branch: no fall-through needed

        transitions: list[dict[str, Any]] = []
        for branch in branches:
            transitions.append(self.transition(name, branch, do))
        if default_target is not None:
            default = _Branch(default_target, default_actions, (), ())
            transitions.append(self.transition(name, default, do))
        else:
            # Valid answer, but no branch accepted it: a target-less catch-all makes that
            # visible to the tracker (recorded as a retry) instead of silently ignored.
            transitions.append({"target": None})
        state["on"] = {ANSWER_EVENT: transitions}

        if "skip_if" in raw:
            skip = self.names(raw["skip_if"], *at, "skip_if")
            conds = [self.arrived_method(name)]
            for cond in skip:
                if cond == "known":
                    if save is None:
                        raise self.fail("'skip_if: known' needs 'save'", *at, "skip_if")
                    conds.append(self.known_method(save))
                else:
                    conds.append(self.condition_method(cond, *at, "skip_if"))
            skip_target = default_target or (branches[0].target if branches else None)
            if skip_target is None:
                raise self.fail("a skipped step needs a default 'next'", *at, "skip_if")
            state["transitions"] = [{"target": skip_target, "cond": conds}]

        step = Step(
            name=name,
            ask=ask,
            say=says,
            buttons=buttons,
            choices=choices,
            choices_from=choices_from,
            list_button=list_button,
            expect=expect,
            save=save,
            empty=empty,
        )
        return step, state

    def transition(self, step: str, branch: _Branch, do: tuple[str, ...]) -> dict[str, Any]:
        conds: list[str] = []
        if branch.choice is not None:
            conds.append(self.choice_method(branch.choice))
        conds.extend(self.condition_method(c, "steps", step) for c in branch.if_)
        result: dict[str, Any] = {"target": branch.target}
        if conds:
            result["cond"] = conds
        if branch.unless:
            result["unless"] = [self.condition_method(c, "steps", step) for c in branch.unless]
        actions = (*do, *branch.actions)
        if actions:
            result["on"] = self.action_method(
                "do_" + "_and_".join(actions), actions, "steps", step
            )
        return result

    def branch(
        self, value: Any, order: list[str], choice: str | None, *path: str | int
    ) -> _Branch:
        if isinstance(value, str):
            return _Branch(self.target(value, order, *path), (), (), (), choice)
        if not isinstance(value, dict):
            raise self.fail("must be a step name or a mapping with 'next'", *path)
        at = [str(p) for p in path]
        self.unknown_keys(value, BRANCH_KEYS, *at)
        if "next" not in value:
            raise self.fail("a branch needs 'next' (the step to go to)", *path)
        listed = {
            key: self.names(value[key], *at, key) if key in value else ()
            for key in ("do", "if", "unless")
        }
        self.check_names("action", listed["do"], self.registry.actions, *at, "do")
        for key in ("if", "unless"):
            self.check_names("condition", listed[key], self.registry.conditions, *at, key)
        return _Branch(
            self.target(value["next"], order, *path, "next"),
            listed["do"],
            listed["if"],
            listed["unless"],
            choice,
        )

    def check_names(
        self, what: str, names: Sequence[str], known: Mapping[str, Any], *path: str
    ) -> None:
        for name in names:
            if name not in known:
                raise self.unknown_name(what, name, known, *path)

    def target(self, value: Any, order: list[str], *path: str | int) -> str:
        if not isinstance(value, str) or value not in order:
            close = difflib.get_close_matches(str(value), order, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail(f"{value!r} is not a step of this flow{hint}", *path)
        return value

    def options(self, value: Any, limit: int, title_max: int, *path: str) -> tuple[Option, ...]:
        options: list[Option] = []
        if isinstance(value, dict):
            for key, title in value.items():
                options.append(Option(str(key), self.text(title, *path, str(key))))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, dict) or "id" not in item or "title" not in item:
                    raise self.fail("each option needs 'id' and 'title'", *path, i)
                self.unknown_keys(item, ("id", "title", "description"), *path, str(i))
                description = item.get("description")
                options.append(
                    Option(
                        str(item["id"]),
                        self.text(item["title"], *path, i, "title"),
                        self.text(description, *path, i, "description") if description else None,
                    )
                )
        else:
            raise self.fail("must map option ids to titles", *path)
        if not 1 <= len(options) <= limit:
            raise self.fail(f"needs 1 to {limit} options, has {len(options)}", *path)
        for option in options:
            if len(option.title) > title_max:
                raise self.fail(
                    f"title {option.title!r} is longer than WhatsApp's {title_max} characters",
                    *path,
                    option.id,
                )
        if len({o.id for o in options}) != len(options):
            raise self.fail("option ids must be unique", *path)
        id_max = BUTTON_ID_MAX if title_max == BUTTON_TITLE_MAX else ROW_ID_MAX
        for option in options:
            try:
                check_option_id(option.id, id_max)
            except ValueError as exc:
                raise self.fail(str(exc), *path, option.id) from None
        try:
            fit_titles([o.title for o in options], title_max)
        except ValueError as exc:  # WhatsApp rejects repeated titles
            raise self.fail(str(exc), *path) from None
        return tuple(options)

    def expect(self, value: Any, *path: str) -> Expect:
        params: Any
        if isinstance(value, str):
            kind, params = value, {}
        elif isinstance(value, dict) and len(value) == 1:
            kind, params = next(iter(value.items()))
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise self.fail("parameters must be a mapping, e.g. {min: 1, max: 8}", *path, kind)
        else:
            raise self.fail("must be a validator name or {name: {parameters}}", *path)
        factories = {**BUILTIN_VALIDATORS, **self.registry.validators}
        if kind not in factories:
            raise self.unknown_name("validator", kind, factories, *path)
        if kind in BUILTIN_VALIDATORS:
            # Build once with placeholder-free parameters to catch wrong names at load.
            static = {k: v for k, v in params.items() if not (isinstance(v, str) and "{" in v)}
            try:
                BUILTIN_VALIDATORS[kind](**static)
            except (TypeError, ValueError) as exc:
                raise self.fail(f"bad parameters for {kind}: {exc}", *path, kind) from None
        return Expect(kind, dict(params))

    def unknown_name(
        self, what: str, name: str, known: Mapping[str, Any], *path: str | int
    ) -> FlowDefinitionError:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = ", ".join(sorted(known)) or "none registered"
        return self.fail(f"unknown {what} {name!r}{hint}; known: {listing}", *path)

    # generated callbacks ----------------------------------------------------------------
    def action_method(self, method: str, actions: Sequence[str], *path: str) -> str:
        functions = []
        for action in actions:
            if action not in self.registry.actions:
                raise self.unknown_name("action", action, self.registry.actions, *path)
            functions.append(self.registry.actions[action])

        # One callback runs the actions in order: callbacks of one phase may run
        # concurrently, and actions share one database session.
        async def run_actions(self: StateChart[Any]) -> None:
            for function in functions:
                result = function(self.model.ctx)
                if inspect.isawaitable(result):
                    await result

        run_actions.__name__ = method
        self.methods[method] = run_actions
        return method

    def condition_method(self, name: str, *path: str | int) -> str:
        if name not in self.registry.conditions:
            raise self.unknown_name("condition", name, self.registry.conditions, *path)
        function = self.registry.conditions[name]
        method = f"if_{name}"

        async def check(self: StateChart[Any]) -> bool:
            result = function(self.model.ctx)
            if inspect.isawaitable(result):
                result = await result
            return bool(result)

        check.__name__ = method
        self.methods[method] = check
        return method

    def choice_method(self, option_id: str) -> str:
        if option_id in self.choice_methods:
            return self.choice_methods[option_id]
        method = "chose_" + re.sub(r"\W+", "_", option_id).strip("_").lower()
        if method in self.methods:  # two option ids that differ only in punctuation
            method = f"{method}_{len(self.methods)}"
        self.choice_methods[option_id] = method

        def chose(self: StateChart[Any], value: Any = None) -> bool:
            return bool(value == option_id)

        chose.__name__ = method
        self.methods[method] = chose
        return method

    def arrived_method(self, step: str) -> str:
        method = f"just_entered_{step}"

        def arrived(self: StateChart[Any]) -> bool:
            # python-statemachine checks eventless transitions of a rebuilt state before
            # the inbound event; a skip must only happen on arrival at the step.
            return step in getattr(self.model, "entered", ())

        arrived.__name__ = method
        self.methods[method] = arrived
        return method

    def known_method(self, key: str) -> str:
        method = f"known_{key}"

        def known(self: StateChart[Any]) -> bool:
            return bool(self.model.data.get(key) not in (None, "", []))

        known.__name__ = method
        self.methods[method] = known
        return method


def load_flow_text(text: str, registry: Registry, *, path: Path | str = "<string>") -> FlowSpec:
    """Compile the YAML ``text`` of one flow file."""
    source = Path(path)
    try:
        document = yaml.load(text, Loader=_FlowYamlLoader)  # noqa: S506 - a SafeLoader subclass
        lines = _line_map(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FlowDefinitionError(f"not valid YAML: {problem}", path=source, line=line) from None
    return _Compiler(document, source, lines, registry).compile()


def load_flow_file(path: Path | str, registry: Registry) -> FlowSpec:
    """Compile one flow file."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowDefinitionError(f"cannot read the file: {exc.strerror}", path=source) from None
    except UnicodeDecodeError:
        raise FlowDefinitionError("the file is not UTF-8 text", path=source) from None
    return load_flow_text(text, registry, path=source)
