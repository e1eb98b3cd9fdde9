"""Ids in console URLs and forms are ASCII digits only: Python's ``int()`` also reads
Arabic-Indic "١٢" and full-width "１２" as 12 (and ``isdigit()`` passes "²", which
``int()`` then refuses). Every such id is a 404, never another row and never a 500: real
HTTP against a running console, both backends."""

from __future__ import annotations

import urllib.parse

import pytest

from bot.console.web import parse_id
from storage.operators import OperatorRole
from tests.console.conftest import Console

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")


@pytest.mark.parametrize(
    "value",
    ["١٢", "１２", "१२", "²", "1²", "+1", "-1", " 1", "1 ", "1_000", "0x1", "", "1" * 19, "١"],
)
def test_only_ascii_digits_are_ids(value: str) -> None:
    assert parse_id(value) is None


def test_ascii_ids_parse() -> None:
    assert parse_id("12") == 12
    assert parse_id("0") == 0
    assert parse_id("9" * 18) == int("9" * 18)
    assert parse_id(None) is None


def _quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="")


async def test_unicode_digit_ids_are_404_in_every_route(console: Console) -> None:
    guest = str(await console.guest_id())
    agent = await console.browser(OperatorRole.ADMIN)
    assert (await agent.get(f"/console/conversations/{guest}")).status == 200
    for table in (ARABIC_INDIC, FULL_WIDTH, DEVANAGARI):
        other = _quoted(guest.translate(table))
        for path in (f"/console/conversations/{other}", f"/console/sessions/{other}"):
            page = await agent.get(path)
            assert page.status == 404, (path, page.status)
        for path in (
            f"/console/conversations/{other}/reply",
            f"/console/conversations/{other}/take",
            f"/console/conversations/{other}/release",
            f"/console/outbox/{other}/retry",
        ):
            page = await agent.post(path, {"body": "hello"})
            assert page.status == 404, (path, page.status)
    for odd in ("²", "1²", "%20", "-1", "99999999999999999999"):
        page = await agent.get(f"/console/conversations/{_quoted(odd)}")
        assert page.status == 404, (odd, page.status)


@pytest.mark.parametrize("value", ["²", "١", "１", "2\u0660"])
async def test_a_unicode_page_number_is_ignored_not_a_500(console: Console, value: str) -> None:
    agent = await console.browser(OperatorRole.VIEWER)
    page = await agent.get("/console/sessions?" + urllib.parse.urlencode({"page": value}))
    assert page.status == 200
    assert "use a whole number" in page.text
