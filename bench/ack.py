"""``python -m bench.ack``: the CPU cost of each step of the webhook's acknowledgement.

The server's figures (:mod:`bench.webhook`, :mod:`bench.wrk`) move with the machine's
load and with the processing that shares the process; this measures the acknowledgement
path alone, in this process, as CPU time (``time.process_time``) per request:

* verify: the ``X-Hub-Signature-256`` HMAC and its constant-time compare;
* decode: ``json.loads`` of the body;
* parse: :func:`bot.whatsapp.payloads.parse_webhook`;
* store: :class:`bot.whatsapp.inbox.GroupCommit` with ``--concurrency`` requests at once
  (one text message each, new contacts and known ones) on a fresh PostgreSQL database,
  with the commits per request it needed;
* metrics: the counters and the latency histogram one request updates.

The bare handler does verify + decode only; everything else is Nyala's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.database import ADMIN_URL, bench_database
from bench.servers import APP_SECRET
from bench.webhook import Payloads
from bot.metrics import Metrics
from bot.whatsapp.inbox import GroupCommit
from bot.whatsapp.payloads import parse_webhook
from bot.whatsapp.webhook import SIGNATURE_HEADER, signature
from storage import Database


@dataclass(frozen=True, slots=True)
class AckCost:
    """CPU microseconds per request of each step, and commits per request."""

    verify_us: float
    decode_us: float
    parse_us: float
    store_us: float
    metrics_us: float
    commits_per_request: float

    @property
    def total_us(self) -> float:
        """The whole acknowledgement path, without HTTP."""
        return self.verify_us + self.decode_us + self.parse_us + self.store_us + self.metrics_us

    @property
    def bare_us(self) -> float:
        """What the bare handler does of it (verify + decode)."""
        return self.verify_us + self.decode_us


def _cpu_us(work: Callable[[], object], count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        work()
    return (time.process_time() - started) * 1e6 / count


async def measure(url: str, *, requests: int = 2000, concurrency: int = 32) -> AckCost:
    """Each step's CPU cost per request (``requests`` bodies, ``concurrency`` at once)."""
    tag = f"{secrets.randbelow(10_000):04d}"
    bodies = [Payloads(tag, requests // 2, APP_SECRET)() for _ in range(requests)]
    first_body, first_headers = bodies[0]
    header = first_headers[SIGNATURE_HEADER]

    def verify() -> bool:
        return hmac.compare_digest(header.encode(), signature(APP_SECRET, first_body).encode())

    documents = [json.loads(body) for body, _ in bodies]
    verify_us = _cpu_us(verify, requests)
    decode_us = _cpu_us(lambda: json.loads(first_body.decode("utf-8")), requests)
    parse_us = _cpu_us(lambda: parse_webhook(documents[0]), requests)
    batches = [parse_webhook(document) for document in documents]

    metrics = Metrics()

    def count() -> None:
        metrics.inbound_stored.inc(1)
        metrics.inbound_duplicates.inc(0)
        metrics.ignored_updates.inc(0)
        metrics.webhook_requests.labels(status="200").inc()
        metrics.webhook_latency.observe(0.004)

    metrics_us = _cpu_us(count, requests)

    db = Database(url)
    try:
        group = GroupCommit(db, mark_read=False)
        await group.store(batches[0])  # connect, warm the statement caches
        queue = iter(batches[1:])

        async def worker() -> None:
            for batch in queue:
                await group.store(batch)

        commits = group.commits
        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        store_us = (time.process_time() - started) * 1e6 / (requests - 1)
        commits_per_request = (group.commits - commits) / (requests - 1)
    finally:
        await db.dispose()
    return AckCost(verify_us, decode_us, parse_us, store_us, metrics_us, commits_per_request)


def report(cost: AckCost) -> str:
    """A small table."""
    rows = [
        ("verify (HMAC)", cost.verify_us),
        ("decode (json.loads)", cost.decode_us),
        ("parse_webhook", cost.parse_us),
        ("store (GroupCommit)", cost.store_us),
        ("metrics", cost.metrics_us),
        ("total", cost.total_us),
    ]
    lines = ["| step | CPU µs per request |", "|---|---|"]
    lines += [f"| {name} | {us:,.1f} |" for name, us in rows]
    lines.append(
        f"\nNyala's path is {cost.total_us / cost.bare_us:.1f}× the bare handler's "
        f"(verify + decode, {cost.bare_us:.1f} µs), HTTP excluded; "
        f"{cost.commits_per_request:.3f} commits per request."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run on a fresh PostgreSQL database."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.ack", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    with bench_database(ADMIN_URL) as url:
        cost = asyncio.run(measure(url, requests=args.requests, concurrency=args.concurrency))
    print(report(cost))
    return 0


if __name__ == "__main__":
    sys.exit(main())
