"""Core problems found while writing the restaurant example, kept as regression tests.

They use small apps of their own, without tables, so they get a database with the
framework's tables only (this module overrides the folder's ``database_url``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import App, FlowContext, Option, load_flow_text
from flows.testing import ChatFactory
from tests.conftest import BACKENDS, Databases


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, databases: Databases) -> str:
    """An empty database with the framework's tables only."""
    return databases.url(str(request.param), tmp_path)


# known core problems (see the report of the example's author) ----------------------------


async def test_core_skip_if_known_keeps_the_answer(nyala_chat: ChatFactory) -> None:
    mini = App("Mini")
    spec = load_flow_text(
        "flow: known_demo\n"
        "steps:\n"
        "  ask_email:\n"
        "    skip_if: known\n"
        "    ask: Your e-mail?\n"
        "    expect: email\n"
        "    save: email\n"
        "  ask_note:\n"
        "    ask: A note?\n"
        "    save: note\n"
        "  done:\n"
        "    final: true\n"
        "    say: Thanks\n",
        mini.registry,
    )
    mini.add_flow(spec)
    mini.add_menu_item("Demo", flow="known_demo")
    chat = await nyala_chat(mini)
    await chat.send("hi")
    await chat.send(tap="Demo")
    await chat.send("a@example.com")
    assert chat.texts == ["A note?"]


async def test_core_tapped_option_titled_like_an_intent(nyala_chat: ChatFactory) -> None:
    mini = App("Mini")
    mini.add_flow(
        load_flow_text(
            "flow: tap_demo\n"
            "menu: Demo\n"
            "steps:\n"
            "  review:\n"
            "    ask: Sure?\n"
            "    buttons: {confirm: Confirm, cancel: Cancel}\n"
            "    on: {confirm: booked, cancel: dropped}\n"
            "  booked: {final: true, say: Booked}\n"
            "  dropped: {final: true, say: Dropped}\n",
            mini.registry,
        )
    )
    chat = await nyala_chat(mini)
    await chat.send("hi")
    await chat.send(tap="Demo")
    await chat.send(tap="Cancel")
    assert chat.texts == ["Dropped"]


async def test_core_default_branch_action_runs_only_on_the_default(
    nyala_chat: ChatFactory,
) -> None:
    mini = App("Mini")

    @mini.condition()
    def big(ctx: FlowContext) -> bool:
        return int(ctx.data["n"]) > 5

    @mini.action()
    def note_small(ctx: FlowContext) -> None:
        ctx.reply("noted a small number")

    mini.add_flow(
        load_flow_text(
            "flow: branch_demo\n"
            "menu: Demo\n"
            "steps:\n"
            "  n:\n"
            "    ask: A number?\n"
            "    expect: integer\n"
            "    save: n\n"
            "    next:\n"
            "      - {if: big, next: big_end}\n"
            "      - {next: small_end, do: note_small}\n"
            "  big_end: {final: true, say: Big}\n"
            "  small_end: {final: true, say: Small}\n",
            mini.registry,
        )
    )
    chat = await nyala_chat(mini)
    await chat.send("hi")
    await chat.send(tap="Demo")
    await chat.send("9")
    assert chat.texts == ["Big"]


async def test_core_empty_text_is_a_template(nyala_chat: ChatFactory) -> None:
    mini = App("Mini")

    @mini.query()
    def no_rows(ctx: FlowContext) -> list[Option]:
        del ctx
        return []

    mini.add_flow(
        load_flow_text(
            "flow: empty_demo\n"
            "menu: Demo\n"
            "steps:\n"
            "  pick:\n"
            "    ask: Pick one\n"
            "    choices: {from: no_rows}\n"
            "    empty: Nothing at {business} today\n"
            "  done: {final: true}\n",
            mini.registry,
        )
    )
    chat = await nyala_chat(mini)
    await chat.send("hi")
    await chat.send(tap="Demo")
    assert chat.texts == ["Nothing at Mini today"]
