"""The HTTP load generator: N keep-alive connections posting as fast as answers come."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from bench.stats import percentile

Request = tuple[bytes, dict[str, str]]
"""A raw body and its headers."""


@dataclass
class LoadResult:
    """One timed run of the generator."""

    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        """Median latency in milliseconds."""
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        """99th percentile latency in milliseconds."""
        return percentile(self.latencies, 99) * 1000


async def _post(
    http: aiohttp.ClientSession,
    url: str,
    next_request: Callable[[], Request],
    result: LoadResult,
    *,
    due: float | None = None,
) -> None:
    """POST the next request and count its answer in ``result``; a 200's latency runs
    from when it was sent, or from ``due`` in an open loop (queueing included)."""
    body, headers = next_request()
    since = time.perf_counter() if due is None else due
    try:
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        result.errors += 1
        key = type(exc).__name__
        result.statuses[key] = result.statuses.get(key, 0) + 1
        return
    result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1
    if status == 200:
        result.ok += 1
        result.latencies.append(time.perf_counter() - since)
    else:
        result.errors += 1


async def drive(
    url: str,
    next_request: Callable[[], Request],
    *,
    connections: int,
    duration: float,
) -> LoadResult:
    """POST to ``url`` from ``connections`` workers for ``duration`` seconds.

    Each worker sends its next request as soon as its previous answer is read (a closed
    loop); requests started before the deadline are awaited and counted. Bodies are made
    by ``next_request`` (cheap: one ``json.dumps`` and one HMAC).
    """
    result = LoadResult()
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        started = time.perf_counter()
        deadline = started + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await _post(http, url, next_request, result)

        await asyncio.gather(*(worker() for _ in range(connections)))
        result.seconds = time.perf_counter() - started
    return result


async def drive_rate(
    url: str,
    next_request: Callable[[], Request],
    *,
    rate: float,
    duration: float,
    connections: int = 64,
) -> LoadResult:
    """POST to ``url`` at a fixed offered ``rate`` (requests/s) for ``duration`` seconds.

    An open loop: request ``i`` is due at ``i / rate`` whatever happened to the earlier
    ones, so a slow server meets a queue, as it would in production. Latency is measured
    from the request's due time (queueing in the generator included) to its answer.
    """
    result = LoadResult()
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=60)
    total = int(rate * duration)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        started = time.perf_counter()

        async def one(due: float) -> None:
            await _post(http, url, next_request, result, due=due)

        tasks: list[asyncio.Task[None]] = []
        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
        result.seconds = time.perf_counter() - started
    return result


async def post_count(
    url: str,
    next_request: Callable[[], Request],
    *,
    count: int,
    connections: int,
) -> LoadResult:
    """POST exactly ``count`` requests to ``url`` from ``connections`` workers, each sending
    its next request as soon as its previous answer is read (a closed loop)."""
    result = LoadResult()
    left = iter(range(count))
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        started = time.perf_counter()

        async def worker() -> None:
            for _ in left:
                await _post(http, url, next_request, result)

        await asyncio.gather(*(worker() for _ in range(connections)))
        result.seconds = time.perf_counter() - started
    return result
