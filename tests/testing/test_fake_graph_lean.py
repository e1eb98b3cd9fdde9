"""The lean fake Graph API (load tests): answers like Meta, checks and records nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from testing.fake_graph import FakeGraph
from tests.testing.test_fake_graph import AUTH, PHONE_ID, READ, TEXT, TO


@pytest.fixture
async def lean() -> AsyncIterator[FakeGraph]:
    graph = FakeGraph(token="test-token", lean=True)
    await graph.start()
    yield graph
    await graph.stop()


async def test_a_message_gets_metas_answer_and_nothing_is_recorded(lean: FakeGraph) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{lean.base_url}/{PHONE_ID}/messages"
        async with http.post(url, json=TEXT, headers=AUTH) as response:
            assert response.status == 200
            answer = await response.json()
        async with http.post(url, json=READ, headers=AUTH) as response:
            assert (response.status, await response.json()) == (200, {"success": True})
    assert answer["contacts"] == [{"input": TO, "wa_id": "263771234567"}]
    assert answer["messages"][0]["id"].startswith("wamid.")
    assert (lean.accepted, lean.sent, lean.requests) == (2, [], [])


async def test_the_token_is_still_required(lean: FakeGraph) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{lean.base_url}/{PHONE_ID}/messages", json=TEXT) as response,
    ):
        assert response.status == 401
    assert lean.accepted == 0
