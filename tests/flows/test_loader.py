"""Flow files: compilation to python-statemachine and load-time errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import App, FlowContext, FlowDefinitionError, load_flow_file, load_flow_text
from flows.app import Registry
from tests.cafe import ORDER_FLOW, build_app


def registry() -> Registry:
    app = App("t")

    @app.action()
    def save_it(ctx: FlowContext) -> None: ...

    @app.condition()
    def vip(ctx: FlowContext) -> bool:
        return True

    @app.query()
    def rows(ctx: FlowContext) -> list[tuple[str, str]]:
        return []

    return app.registry


MINIMAL = """
flow: tiny
steps:
  ask_it:
    ask: Yes or no?
    buttons: {yes: "Yes", no: "No"}
    on:
      yes: {do: save_it, next: done}
      no: done
  done:
    final: true
"""


def test_a_flow_file_compiles_to_a_statechart(tmp_path: Path) -> None:
    spec = build_app(tmp_path).flow("order_flow")
    machine = spec.machine
    assert spec.initial == "ask_name"
    assert spec.state_ids == ("ask_name", "ask_size", "ask_count", "confirm", "done", "cancelled")
    assert machine.catch_errors_as_events is False
    assert machine.atomic_configuration_update is True
    confirm = machine.states_map["confirm"]
    targets = [t.target.id if t.target else None for t in confirm.transitions]
    assert targets == ["done", "cancelled", None]  # branches, then the catch-all
    skip = [t for t in machine.states_map["ask_name"].transitions if t.is_eventless]
    assert [t.target.id for t in skip] == ["ask_size"]
    assert spec.step("ask_count").validator.params == {"min": 1, "max": "{stock}"}
    assert spec.triggers == ("order", "coffee")


def test_yes_no_on_are_words_not_booleans() -> None:
    spec = load_flow_text(MINIMAL, registry())
    assert [o.id for o in spec.step("ask_it").buttons] == ["yes", "no"]


def test_the_version_changes_with_the_definition_not_with_comments() -> None:
    one = load_flow_text(MINIMAL, registry())
    two = load_flow_text(MINIMAL + "\n# a comment\n", registry())
    three = load_flow_text(MINIMAL.replace("Yes or no?", "Yes or no!"), registry())
    assert one.version == two.version != three.version


def error_for(text: str) -> FlowDefinitionError:
    with pytest.raises(FlowDefinitionError) as info:
        load_flow_text(text, registry(), path="flows/x.yaml")
    return info.value


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        (
            MINIMAL.replace("ask: Yes", "ak: Yes"),
            5,
            "steps.ask_it.ak",
            "unknown key 'ak' (did you mean 'ask'?)",
        ),
        (
            MINIMAL.replace("do: save_it", "do: sav_it"),
            8,
            "steps.ask_it.on.yes.do",
            "unknown action 'sav_it' (did you mean 'save_it'?)",
        ),
        (
            MINIMAL.replace("no: done", "no: dnoe"),
            9,
            "steps.ask_it.on.no",
            "'dnoe' is not a step of this flow (did you mean 'done'?)",
        ),
        (MINIMAL.replace("final: true", "say: bye"), 10, "steps.done", "a step needs 'ask'"),
        (MINIMAL.replace("flow: tiny", "flow: Tiny Flow"), 2, "flow", "lower_snake_case"),
        (MINIMAL.replace("ask_it:", "send:"), 4, "steps.send", "reserved by the state machine"),
        (
            MINIMAL.replace('{yes: "Yes", no: "No"}', "{a: A, b: B, c: C, d: D}"),
            6,
            "steps.ask_it.buttons",
            "needs 1 to 3 options, has 4",
        ),
        (
            MINIMAL.replace('"Yes"', '"Yes, absolutely please"'),
            6,
            "steps.ask_it.buttons.yes",
            "longer than WhatsApp's 20 characters",
        ),
        (
            MINIMAL.replace("    on:\n", "    expect: {integer: {mni: 1}}\n    on:\n"),
            7,
            "steps.ask_it.expect.integer",
            "bad parameters for integer",
        ),
        (
            MINIMAL.replace("    on:\n", "    skip_if: vip_guest\n    on:\n"),
            7,
            "steps.ask_it.skip_if",
            "unknown condition 'vip_guest'",
        ),
        ("flow: x\nsteps:\n  a:\n    ask: hi\n", 3, "steps.a", "'next' or 'final: true'"),
        ("flow: x\nsteps: [1, 2", 2, None, "not valid YAML"),
        (
            "flow: x\nsteps:\n  a:\n    ask: q\n    choices: {from: nope}\n"
            "  b:\n    final: true\n",
            5,
            "steps.a.choices.from",
            "unknown query 'nope'",
        ),
        (
            MINIMAL.replace("timeout", "x").replace("flow: tiny", "flow: tiny\ntimeout: soon"),
            3,
            "timeout",
            "a duration such as 30m",
        ),
    ],
)
def test_a_wrong_file_fails_with_path_line_key_and_reason(
    text: str, line: int, key: str | None, reason: str
) -> None:
    error = error_for(text)
    assert error.path == Path("flows/x.yaml")
    assert error.line == line
    assert error.key == key
    assert reason in str(error)
    assert str(error).startswith(f"flows/x.yaml:{line}")


def test_a_missing_or_binary_file_is_a_definition_error(tmp_path: Path) -> None:
    with pytest.raises(FlowDefinitionError, match="cannot read the file"):
        load_flow_file(tmp_path / "missing.yaml", registry())
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FlowDefinitionError, match="not UTF-8"):
        load_flow_file(binary, registry())


def test_flows_reload_when_their_file_changes(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    first = app.flow("order_flow")
    assert app.flow("order_flow") is first  # cached
    (tmp_path / "order_flow.yaml").write_text(ORDER_FLOW.replace("How many?", "How many cups?"))
    assert app.flow("order_flow").step("ask_count").ask == "How many cups?"


def test_two_flows_with_one_name_are_refused(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    (tmp_path / "copy.yaml").write_text(ORDER_FLOW)
    with pytest.raises(FlowDefinitionError, match="flow 'order_flow' is also defined"):
        app.check()
