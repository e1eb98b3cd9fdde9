"""The shipped harness works for a flow author's own project (the pytest plugin)."""

from __future__ import annotations

import pytest

from flows import App, ContactRef, Engine
from storage import Database

pytest_plugins = ["pytester"]

AUTHOR_TEST = '''
from pathlib import Path

from flows import App

FLOW = """
flow: hello_flow
triggers: [hello]
steps:
  ask_name:
    ask: Name?
    expect: person_name
    save: name
  done:
    final: true
    say: Hi {name}
"""


async def test_my_flow(nyala_chat, tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(FLOW)
    chat = await nyala_chat(App("Mine", flows_dir=tmp_path))
    await chat.send("hello")
    await chat.send("Ada")
    assert chat.last_text == "Hi Ada"
    assert await chat.steps() == [
        ("ask_name", "entered"), ("ask_name", "completed"), ("done", "entered"),
    ]
'''


def test_the_plugin_gives_authors_a_database_and_a_chat(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_author=AUTHOR_TEST)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


async def test_a_flow_can_be_started_without_an_inbound_message(cafe: App, db: Database) -> None:
    engine = Engine(db, cafe)
    replies = await engine.start_flow(ContactRef(wa_id="263770001234"), "rating_flow")
    assert [getattr(r, "body", None) for r in replies] == ["Rate us from 1 to 5"]
