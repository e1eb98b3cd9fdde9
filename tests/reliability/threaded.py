"""A real ``nyala serve`` application on loopback, in a thread of its own.

Hypothesis drives synchronous test functions, so the server under fuzzing runs on its own
event loop in a background thread and the tests speak plain HTTP to it
(:class:`http.client.HTTPConnection`, one keep-alive connection).
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from types import TracebackType

from aiohttp import web

from bot.server import create_app
from bot.settings import Settings
from flows import App

__all__ = ["Answer", "ThreadedServer"]


class Answer:
    """An HTTP answer: status and body."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class ThreadedServer:
    """``create_app(settings, app)`` served on 127.0.0.1 by a background thread."""

    def __init__(self, settings: Settings, app: App) -> None:
        self.settings = settings
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._connection: http.client.HTTPConnection | None = None

    async def _start(self) -> int:
        self.runner = web.AppRunner(create_app(self.settings, self.app), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return int(self.runner.addresses[0][1])

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        future: Future[int] = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        self.port = future.result(60)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            self._connection.close()
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()

    def run(self, coroutine: object) -> object:
        """Run a coroutine on the server's loop (e.g. to wait for its workers)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(120)  # type: ignore[arg-type]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request on the kept-alive connection (reconnecting when it was closed)."""
        for attempt in range(2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self._connection.request(method, path, body=body, headers=dict(headers or {}))
                response = self._connection.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self._connection.close()
                    self._connection = None
                return Answer(response.status, data)
            except (http.client.HTTPException, OSError):
                if self._connection is not None:
                    self._connection.close()
                self._connection = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")
