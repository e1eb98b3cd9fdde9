"""A wrong answer is met with what was wrong first, a short piece of what was typed, and
a pointer back to a long list instead of the list again (issue 16, point 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import App
from flows.messages import ListMenu, Text, graphemes, reply_text
from flows.testing import ChatFactory

TRIP_FLOW = """
flow: trip_flow
triggers: [trip]
steps:
  where:
    say: ["Here are our ten parks."]
    ask: Which park?
    choices: {p1: Hwange, p2: Mana Pools, p3: Matobo, p4: Gonarezhou, p5: Nyanga,
              p6: Chimanimani, p7: Kazuma Pan, p8: Victoria Falls, p9: Chizarira, p10: Zambezi}
    save: park
  when:
    ask: Which day?
    expect: date
    save: day
  email:
    ask: Your e-mail?
    expect: email
    save: email
  size:
    ask: Which size?
    buttons: {small: Small, large: Large}
    save: size
  done:
    final: true
    say: ["Thanks!"]
"""


@pytest.fixture
def trips(tmp_path: Path) -> App:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "trip_flow.yaml").write_text(TRIP_FLOW)
    return App("Parks", flows_dir=flows)


async def test_a_long_list_is_pointed_to_not_sent_again(
    trips: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(trips)
    replies = await chat.send("trip")
    assert any(isinstance(r, ListMenu) and len(r.options) == 10 for r in replies)
    replies = await chat.send("Lake Kariba")
    assert not any(isinstance(r, ListMenu) for r in replies)
    assert chat.texts == [
        "I didn't recognise “Lake Kariba”. Please tap one of the options or reply with "
        "its number (1–10)."
    ]
    assert "Hwange" not in " ".join(chat.texts)
    # Not a choice at all: the error, then where the list is.
    await chat.send(kind="sticker")
    assert chat.texts[0].startswith("Thanks for the sticker!")
    assert chat.texts[1] == (
        "The choices are in the list above: tap *Choose* to open it, "
        "or reply with a number from 1 to 10."
    )
    assert "Here are our ten parks." not in chat.texts
    # The list above still answers, by tap or by number.
    await chat.send(tap_id="p8")
    assert chat.last_text == "Which day?"
    assert (await chat.conversation()).data["park"] == "p8"


async def test_an_impossible_day_is_named(trips: App, nyala_chat: ChatFactory) -> None:
    chat = await nyala_chat(trips)
    await chat.send("trip")
    await chat.send("3")
    await chat.send("31 February")
    assert chat.texts[0].startswith("31 February is not a date: February 20")
    assert "has 28 days" in chat.texts[0] or "has 29 days" in chat.texts[0]
    assert chat.texts[-1] == "Which day?"  # a short question is asked again
    await chat.send("31/04/2030")
    assert chat.texts[0] == (
        "31 April is not a date: April 2030 has 30 days. Please write it like 24/12/2026."
    )
    events = await chat.events("trip_flow")
    codes = [e.error_code for e in events if e.error_code]
    assert codes == ["date.no_such_day", "date.no_such_day"]


async def test_a_long_answer_is_echoed_as_a_short_piece(
    trips: App, nyala_chat: ChatFactory
) -> None:
    chat = await nyala_chat(trips)
    await chat.send("trip")
    await chat.send("1")
    await chat.send("24/12/2030")
    typed = "👩🏽‍🚀" + "x" * 300 + "@"
    replies = await chat.send(typed)
    error = reply_text(replies[0])
    quoted = error[error.index("“") + 1 : error.index("”")]
    assert quoted.endswith("…")
    assert len(quoted) <= 31
    assert quoted.startswith("👩🏽‍🚀")  # the astronaut whole, not cut inside
    assert all(g in graphemes(typed) or g == "…" for g in graphemes(quoted))
    assert typed not in " ".join(chat.texts)
    assert isinstance(replies[-1], Text) and replies[-1].body == "Your e-mail?"


async def test_short_buttons_are_asked_again(trips: App, nyala_chat: ChatFactory) -> None:
    chat = await nyala_chat(trips)
    for answer in ("trip", "1", "24/12/2030", "rudo@example.com"):
        await chat.send(answer)
    await chat.send("medium")
    assert chat.texts[0] == (
        "I didn't recognise “medium”. Please tap one of the options or reply with its "
        "number (1. Small, 2. Large)."
    )
    assert chat.options == ["Small", "Large"]
