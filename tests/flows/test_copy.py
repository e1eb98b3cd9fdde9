"""The app's copy: every framework text a customer sees comes from it, overridable by key,
and a wrong override fails when the app is made, not in a chat."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import App
from flows.copy import DEFAULT_COPY, CopyError
from flows.testing import ChatFactory
from tests.cafe import build_app

TIP_FLOW = """
flow: tip_flow
triggers: [tip]
steps:
  ask_amount:
    ask: How much would you like to tip?
    expect: {integer: {min: 1, max: 20}}
    save: amount
  thanked:
    final: true
"""


def _cafe(tmp_path: Path, copy: dict[str, str] | None = None) -> App:
    app = build_app(tmp_path / "flows", copy=copy)
    tip = tmp_path / "tip_flow.yaml"
    tip.write_text(TIP_FLOW)
    app.add_flow_file(tip)
    return app


async def test_the_defaults_reach_the_customer(tmp_path: Path, nyala_chat: ChatFactory) -> None:
    chat = await nyala_chat(_cafe(tmp_path))
    await chat.send("tip")
    await chat.send("50")
    assert chat.texts[0] == (
        "Sorry, 50 is more than the 20 available. "
        "Please send a whole number between 1 and 20, for example 1."
    )
    await chat.send("5")
    assert chat.texts == [DEFAULT_COPY["flow.done"]]


async def test_an_override_reaches_the_customer(tmp_path: Path, nyala_chat: ChatFactory) -> None:
    app = _cafe(
        tmp_path,
        copy={
            "flow.done": "Obrigado! Escreva *menu* para mais.",
            "integer.too_large": "Só temos {max}. {hint}",
            "integer.hint": "Envie um número {range}.",
            "range.between": "de {min} a {max}",
            "cancel.nothing": "Não há nada para cancelar.",
            "menu.greeting": "Olá! Bem-vindo ao {business}.",
        },
    )
    chat = await nyala_chat(app)
    await chat.send("cancel")
    assert chat.texts[0] == "Não há nada para cancelar."
    await chat.send("hi")
    assert chat.texts[0].startswith("Olá! Bem-vindo ao Test Café.")
    await chat.send("tip")
    await chat.send("50")
    assert chat.texts[0] == "Só temos 20. Envie um número de 1 a 20."
    events = await chat.events("tip_flow")
    assert events[-1].error_code == "integer.too_large"
    await chat.send("5")
    assert chat.texts == ["Obrigado! Escreva *menu* para mais."]


def test_an_unknown_key_fails_when_the_app_is_made() -> None:
    with pytest.raises(CopyError, match=r"copy key 'flow.finished' is not a framework text"):
        App("Typo", copy={"flow.finished": "Done!"})
    with pytest.raises(CopyError, match=r"keys like it: .*flow\.done"):
        App("Typo", copy={"flow.finished": "Done!"})


def test_a_changed_field_fails_when_the_app_is_made() -> None:
    with pytest.raises(CopyError, match=r"copy 'integer.too_large' uses \{maximum\}"):
        App("Renamed", copy={"integer.too_large": "No more than {maximum}. {hint}"})
    with pytest.raises(CopyError, match="must be a non-empty text"):
        App("Blank", copy={"flow.done": "  "})


def test_leaving_a_field_out_is_allowed() -> None:
    app = App("Terse", copy={"integer.too_large": "Too many."})
    assert app.copy.text("integer.too_large", value=9, max=5, hint="") == "Too many."
