"""A loopback HTTP server that records every request a render makes (none must come)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web


@pytest_asyncio.fixture(name="trap")
async def trap_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback HTTP server recording every request (none must come)."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=b"body{color:red}", content_type="text/css")

    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()
