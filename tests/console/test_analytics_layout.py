"""The analytics pages in a real Chromium at a laptop's 1280 px and a phone's 390 px
(issue 16.16): the dashboard, a funnel of a ten-step flow, the sessions list and the error
events. Nothing is wider than the screen outside a scroll container, the dashboard's flows
table is whole at 1280 px, every step of the flow is on the diagram and in the table, the
funnel's errors are printed once, and the sidebar runs the page's whole height (a bar on a
phone). Screenshots go to ``$NYALA_SHOTS`` (default /tmp/shots) for a person to look at.

The layout checks are the safari app's (tests/apps/safari/test_console_layout.py), used
here on the framework's own pages with the test café."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from flows import ContactRef, Engine, UserMessage
from storage.operators import OperatorRole
from tests.apps.safari.test_console_layout import WIDTHS, _check
from tests.console.conftest import Console
from tests.console.test_browser import chromium, logged_in

__all__ = ["chromium"]  # the fixture, imported to be used here

SHOTS = Path(os.environ.get("NYALA_SHOTS", "/tmp/shots"))

# Ten steps with long names: the diagram must show them all, not the first four.
TRIP_FLOW = """
flow: trip_planning_flow
description: Plan a trip
timeout: 30m
triggers: [trip]
steps:
  ask_traveller_full_name:
    ask: Your full name?
    expect: person_name
    save: name
  ask_contact_email_address:
    ask: Your e-mail address?
    expect: email
    save: email
  ask_number_of_travellers:
    ask: How many travellers?
    expect: {integer: {min: 1, max: 9}}
    save: count
  ask_preferred_start_date:
    ask: Which day would you like to start?
    expect: date
    save: start
  choose_accommodation_level:
    ask: Which level of comfort?
    buttons: {basic: Basic, lodge: Lodge, luxury: Luxury}
    save: comfort
  ask_special_requirements:
    ask: Anything we should know?
    expect: text
    save: note
  choose_pickup_point_near_hotel:
    ask: Where shall we pick you up?
    buttons: {hotel: Hotel, airport: Airport, town: Town centre}
    save: pickup
  review_trip_and_confirm:
    ask: Shall we book it?
    buttons: {yes: Book it, no: Cancel}
    on:
      yes: finished_trip_booked
      no: cancelled_by_traveller
  finished_trip_booked:
    final: true
    say: Booked!
  cancelled_by_traveller:
    final: true
    say: Cancelled.
"""
STEPS = [
    "ask_traveller_full_name",
    "ask_contact_email_address",
    "ask_number_of_travellers",
    "ask_preferred_start_date",
    "choose_accommodation_level",
    "ask_special_requirements",
    "choose_pickup_point_near_hotel",
    "review_trip_and_confirm",
    "finished_trip_booked",
    "cancelled_by_traveller",
]
# What each traveller answers, in order ("" taps the first button); bad e-mails and
# counts are rejected and retried, so the funnel has errors to print.
ANSWERS = [
    ["trip", "Rudo Moyo", "foo", "bar@", "rudo@example.com", "2", "2027-03-01", "",
     "Vegetarian", "", "yes"],
    ["trip", "Tendai Dube", "not-an-email", "tendai@example.com", "12", "3", "2027-03-05",
     "", "None", "", "no"],
    ["trip", "Chipo Ncube", "chipo@example.com", "1", "2027-04-01"],
    ["trip", "Farai Sibanda", "x" * 300],
]  # fmt: skip
BUTTONS = {
    "choose_accommodation_level": "basic",
    "choose_pickup_point_near_hotel": "hotel",
}


async def _travellers(console: Console) -> None:
    flows_dir = console.app.flows_dir
    assert flows_dir is not None
    (flows_dir / "trip_planning_flow.yaml").write_text(TRIP_FLOW)
    assert list(console.app.flow("trip_planning_flow").steps) == STEPS
    engine = Engine(console.db, console.app, sandbox=True)
    for n, answers in enumerate(ANSWERS):
        who = ContactRef(wa_id=f"26377120000{n}", profile_name=answers[1])
        buttons = iter(BUTTONS.values())
        for m, text in enumerate(answers):
            wamid = f"wamid.trip.{n}.{m}"
            if text:
                message = UserMessage(id=wamid, kind="text", text=text)
            else:
                message = UserMessage(id=wamid, kind="reply", reply_id=next(buttons))
            await engine.handle(who, message)


async def _shot(page: Page, name: str, width: int) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a test, once, local disk
    await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


# Tables wider than their scroll container: (label, full width, visible width).
CUT_TABLES = """() => [...document.querySelectorAll(".table-wrap")]
  .filter(el => el.scrollWidth > el.clientWidth + 1)
  .map(el => [el.getAttribute("aria-label"), el.scrollWidth, el.clientWidth])"""


async def _open(page: Page, console: Console, path: str, name: str, width: int) -> None:
    await page.goto(console.base + path)
    await page.locator("h1").first.wait_for()
    await _check(page, width, path)
    await _shot(page, name, width)
    if width >= 1000:  # on a laptop every table is whole; a phone may scroll them
        assert await page.evaluate(CUT_TABLES) == [], path


@pytest.mark.parametrize("width", WIDTHS)
async def test_analytics_pages_fit_and_show_every_step(
    console: Console, chromium: Browser, width: int
) -> None:
    await _travellers(console)
    page = await logged_in(console, chromium, OperatorRole.VIEWER)
    await page.set_viewport_size({"width": width, "height": 900})

    await _open(page, console, "/console/?flow=trip_planning_flow", "dashboard", width)
    flows_table = page.locator(".table-wrap[aria-label='All flows']")
    rows = flows_table.locator("tbody tr")
    texts = await rows.all_inner_texts()
    assert any("trip_planning_flow" in t for t in texts) and any("order_flow" in t for t in texts)
    if width >= 1000:  # whole (CUT_TABLES), its last column on the screen
        last = await rows.first.locator("td").last.bounding_box()
        assert last is not None and last["x"] + last["width"] <= width

    await _open(page, console, "/console/funnel?flow=trip_planning_flow", "funnel", width)
    # Every step is a node of the diagram, drawn inside the card (not scrolled away).
    diagram = page.locator(".diagram svg")
    shown = {t.strip() for t in await diagram.locator("text").all_text_contents()}
    assert {step.replace("_", " ").capitalize() for step in STEPS} <= shown, shown
    card = await page.locator(".diagram").bounding_box()
    assert card is not None
    for step in STEPS:
        node = diagram.locator(f"a[*|href*='stopped_at={step}&']")
        box = await node.bounding_box()
        assert box is not None, step
        assert card["x"] <= box["x"] and box["x"] + box["width"] <= card["x"] + card["width"]
        assert box["height"] >= 20, (step, box)  # readable, not shrunk to a speck
    # The bars' labels whole (they wrap, never cut), at the page's own text size.
    names = page.locator(".funnel-bars .fbar-name")
    assert [t.strip() for t in await names.all_inner_texts()] == STEPS
    for sizes in await names.evaluate_all(
        "els => els.map(e => [e.scrollWidth, e.clientWidth,"
        " parseFloat(getComputedStyle(e).fontSize)])"
    ):
        assert sizes[0] <= sizes[1] and sizes[2] >= 12, sizes
    table = page.locator(".table-wrap[aria-label='Steps'] tbody tr td:first-child")
    assert [t.strip() for t in await table.all_inner_texts()] == STEPS
    # The errors once: one table, one row per step and kind of error, no notice repeated.
    assert await page.locator("h2", has_text="Errors and rejected answers").count() == 1
    errors = page.locator(".table-wrap[aria-label='Errors and rejected answers'] tbody tr")
    keys = [
        tuple(cells[:3])
        for cells in await errors.evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
        )
    ]
    assert keys and len(keys) == len(set(keys)), keys
    assert any("ask_contact_email_address" in key[0] for key in keys)
    alerts = await page.locator(".alert").all_inner_texts()
    assert len(alerts) == len(set(alerts)), alerts

    await _open(page, console, "/console/sessions?flow=trip_planning_flow", "sessions", width)
    assert await page.locator("tbody tr").count() == len(ANSWERS)
    await _open(
        page, console, "/console/events?flow=trip_planning_flow&action=retry", "errors", width
    )
    assert await page.locator("tbody tr").count() >= 3
