"""Flow files whose static options WhatsApp would reject fail when they are loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import FlowDefinitionError, load_flow_text
from tests.flows.test_loader import MINIMAL, registry


def error_for(text: str) -> FlowDefinitionError:
    with pytest.raises(FlowDefinitionError) as info:
        load_flow_text(text, registry(), path="flows/x.yaml")
    return info.value


@pytest.mark.parametrize(
    ("buttons", "key", "reason"),
    [
        ('{yes: "Yes", no: "Yes"}', "steps.ask_it.buttons", "'Yes' repeats"),
        ('{yes: "Yes  now", no: "Yes now"}', "steps.ask_it.buttons", "repeats"),
        ('{"yes ": "Yes", no: "No"}', "steps.ask_it.buttons.yes ", "leading or trailing"),
        ("{" + "y" * 257 + ': "Yes", no: "No"}', "steps.ask_it.buttons." + "y" * 257, "256"),
    ],
)
def test_static_buttons_meta_rejects_fail_at_load(buttons: str, key: str, reason: str) -> None:
    error = error_for(MINIMAL.replace('{yes: "Yes", no: "No"}', buttons))
    assert error.path == Path("flows/x.yaml")
    assert error.key == key
    assert reason in error.reason


def test_static_list_rows_with_a_long_id_fail_at_load() -> None:
    text = (
        "flow: x\nsteps:\n  a:\n    ask: q\n    choices:\n"
        f"      - {{id: {'r' * 201}, title: One}}\n      - {{id: two, title: Two}}\n"
        "    next: b\n  b:\n    final: true\n"
    )
    error = error_for(text)
    assert error.key == "steps.a.choices." + "r" * 201
    assert "200" in error.reason


def test_distinct_titles_that_fit_still_load() -> None:
    spec = load_flow_text(
        MINIMAL.replace('{yes: "Yes", no: "No"}', '{a: "Victoria Falls A", b: "Victoria Falls B"}')
        .replace("      yes:", "      a:")
        .replace("      no:", "      b:"),
        registry(),
        path="flows/x.yaml",
    )
    assert [o.title for o in spec.step("ask_it").buttons] == [
        "Victoria Falls A",
        "Victoria Falls B",
    ]
