"""``python -m bench.wrk``: an independent load test of ``nyala serve`` with ``wrk``.

The Python generator of :mod:`bench.load` is one process: it bounds the bare handler's
figure well below what aiohttp can do. ``wrk`` (C, several threads) does not, so this
measures both servers with it, in the same run, and prints the ratio:

* ``nyala serve`` (sandbox mode, an app secret, the benchmark café on a fresh PostgreSQL
  database, its outbox running) and the bare aiohttp handler
  (:mod:`bench.bare_server`: HMAC + ``json.loads``, 200), each in its own process;
* pre-signed bodies, one text message each from 4,000 contacts in turn, every wamid
  unique (a Lua script rotates over them; ``wrk`` cannot compute an HMAC itself);
* after Nyala's run, the time until every stored message was processed (webhook →
  reply row through the server), and the machine's load average before and after.

``--profile`` records the server with ``py-spy`` during its run and prints the top
functions (``.venv/bin/pip install py-spy``). ``wrk`` is required: ``apt-get install -y
wrk`` (Debian/Ubuntu) or ``brew install wrk``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.database import ADMIN_URL, bench_database
from bench.servers import (
    APP_SECRET,
    bare_command,
    bare_env,
    free_port,
    nyala_command,
    nyala_env,
    running,
)
from bench.webhook import Payloads, inbound_mark, wait_processed

INSTALL_HINT = (
    "wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu), `brew install wrk` "
    "(macOS), or build it from https://github.com/wg/wrk"
)
PY_SPY_HINT = "py-spy is not installed: `.venv/bin/pip install py-spy`"

# Each thread rotates over the bodies from its own offset; `done` prints one JSON line
# (wrk's own summary is text). Latencies are in microseconds.
_LUA = r"""
local bodies, sigs = {}, {}
local n, i, step = 0, 0, 1
local counter = 0

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end

function init(args)
  step = tonumber(args[2]) or 1
  i = offset or 0
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    n = n + 1
    sigs[n] = line:sub(1, tab - 1)
    bodies[n] = line:sub(tab + 1)
  end
end

function request()
  local k = (i % n) + 1
  i = i + step
  return wrk.format("POST", "/webhook",
    {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = sigs[k]}, bodies[k])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One ``wrk`` run."""

    requests: int
    seconds: float
    errors: int  # non-2xx answers, timeouts, socket errors
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """Answered requests per second (errors excluded)."""
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0


def available() -> bool:
    """Whether ``wrk`` is on the PATH."""
    return shutil.which("wrk") is not None


def write_bodies(path: Path, count: int, contacts: int) -> None:
    """``count`` pre-signed one-message payloads (``signature\\tbody`` lines), contact
    ``j % contacts`` sending message ``j``; every wamid unique."""
    payloads = Payloads(f"{secrets.randbelow(10_000):04d}", contacts, APP_SECRET)
    with path.open("wb") as out:
        for _ in range(count):
            body, headers = payloads()
            assert b"\n" not in body, "one body per line"
            assert b"\t" not in body, "the tab separates the signature"
            out.write(headers["X-Hub-Signature-256"].encode() + b"\t" + body + b"\n")


def run_wrk(
    url: str, bodies: Path, script: Path, *, threads: int, connections: int, seconds: float
) -> WrkResult:
    """Run ``wrk`` against ``url``/webhook and parse its JSON line."""
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
        "-s", str(script), f"{url}/webhook", "--", str(bodies), str(threads),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            data: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
            errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                errors=errors,
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")


def _py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        print(PY_SPY_HINT, file=sys.stderr)
        return None
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


FOCUS = (
    "Webhook.receive ",
    "Webhook._receive ",
    "GroupCommit._write ",
    "parse_webhook ",
    "_store ",
    "signature ",
    "Inbox.",
    "Engine.",
    "Outbox.",
    "run_rounds ",
)
"""Functions whose total share the profile lists (where the server's time goes)."""

_LINE = re.compile(r":\d+\)$")


def top_functions(raw: Path, limit: int = 15) -> list[tuple[str, float, float]]:
    """From a ``py-spy --format raw`` file (collapsed stacks): the functions with the most
    own samples, as (function, own %, total %)."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        # "function (file:line)": one entry per function, whatever the line.
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    if not samples:
        return []
    ranked = sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:limit]
    top = [(f, 100 * c / samples, 100 * total[f] / samples) for f, c in ranked]
    focus = [
        (f, 100 * own.get(f, 0) / samples, 100 * c / samples)
        for f, c in sorted(total.items(), key=lambda kv: kv[1], reverse=True)
        if any(f.startswith(name) for name in FOCUS)
    ]
    return [*top, ("--- entry points (own % / total %) ---", 0.0, 0.0), *focus]


async def _measure(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, Any]:
    script = workdir / "signed.lua"
    script.write_text(_LUA)
    nyala_bodies = workdir / "nyala.bodies"
    bare_bodies = workdir / "bare.bodies"
    write_bodies(nyala_bodies, args.bodies, args.contacts)
    write_bodies(bare_bodies, min(args.bodies, 20_000), args.contacts)
    nyala_port, bare_port = free_port(), free_port()
    env = nyala_env(url, workdir / "server-flows")
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    runs = {"threads": args.threads, "connections": args.connections, "seconds": args.seconds}
    async with (
        running("nyala", nyala_command(nyala_port), nyala_port, env, workdir) as nyala,
        running("bare", bare_command(bare_port), bare_port, bare_env(), workdir) as bare,
    ):
        conn = await asyncpg.connect(url)
        try:
            # Warm-up (connections, statement caches, flow loading), then drain it.
            warm = workdir / "warm.bodies"
            write_bodies(warm, 400, 200)
            short = runs | {"seconds": 1}
            await asyncio.to_thread(run_wrk, nyala.url, warm, script, **short)
            await wait_processed(conn, 0, dt.datetime.now(dt.UTC), 60)
            await asyncio.to_thread(run_wrk, bare.url, bare_bodies, script, **short)
            # The bare handler first: Nyala's processing may go on after its own run.
            b = await asyncio.to_thread(run_wrk, bare.url, bare_bodies, script, **runs)
            mark = await inbound_mark(conn)
            started = dt.datetime.now(dt.UTC)
            spy = None
            if args.profile:
                spy = _py_spy(nyala.process.pid, args.seconds, workdir / "nyala.spy")
            n = await asyncio.to_thread(run_wrk, nyala.url, nyala_bodies, script, **runs)
            if spy is not None:
                await asyncio.to_thread(spy.wait, 60)
            within = args.drain_timeout if args.drain else 0.0
            drained = await wait_processed(conn, mark, started, within)
        finally:
            await conn.close()
    results |= {"nyala": n, "bare": b, "drained": drained, "load_after": os.getloadavg()}
    if args.profile and (workdir / "nyala.spy").exists():
        results["profile"] = top_functions(workdir / "nyala.spy")
        if args.profile_out:
            shutil.copyfile(workdir / "nyala.spy", args.profile_out)
    return results


def _report(args: argparse.Namespace, r: dict[str, Any]) -> str:
    n: WrkResult = r["nyala"]
    b: WrkResult = r["bare"]
    d = r["drained"]
    ratio = n.rate / b.rate if b.rate else 0.0
    before = ", ".join(f"{x:.2f}" for x in r["load_before"])
    after = ", ".join(f"{x:.2f}" for x in r["load_after"])
    lines = [
        f"wrk, {args.threads} threads, {args.connections} connections, {args.seconds:g} s, "
        f"pre-signed bodies from {args.contacts:,} contacts (unique wamids)",
        f"load average before: {before}; after: {after}",
        "",
        "| figure | nyala serve | bare aiohttp handler | ratio |",
        "|---|---|---|---|",
        f"| webhook ack | {n.rate:,.0f} req/s | {b.rate:,.0f} req/s | {ratio:.3f}× |",
        f"| ack p50 | {n.p50_ms:.1f} ms | {b.p50_ms:.1f} ms | "
        f"{n.p50_ms / b.p50_ms if b.p50_ms else 0:.1f}× |",
        f"| ack p99 | {n.p99_ms:.1f} ms | {b.p99_ms:.1f} ms | "
        f"{n.p99_ms / b.p99_ms if b.p99_ms else 0:.1f}× |",
        f"| errors | {n.errors} | {b.errors} | |",
        "",
        f"Processed through the server: {d.done + d.failed:,} of {d.stored:,} stored messages "
        f"in {d.seconds:.1f} s from the first request ({d.rate:,.0f} msg/s"
        f"{'' if d.complete else ', NOT complete'}; {d.failed} failed).",
    ]
    if "profile" in r:
        lines += ["", "py-spy, nyala serve during its run: own % / total %"]
        lines += [f"  {own:5.1f}% {total:5.1f}%  {name}" for name, own, total in r["profile"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run; 0 on success, 1 without ``wrk``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.wrk", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--contacts", type=int, default=4000)
    parser.add_argument("--bodies", type=int, default=60_000, help="unique signed bodies")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--profile", action="store_true", help="py-spy the server's run")
    parser.add_argument("--profile-out", type=Path, help="keep py-spy's raw stacks here")
    parser.add_argument(
        "--no-drain",
        dest="drain",
        action="store_false",
        help="do not wait until the server has processed every stored message",
    )
    args = parser.parse_args(argv)
    if not available():
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    started = time.monotonic()
    with bench_database(ADMIN_URL) as url, tempfile.TemporaryDirectory(prefix="nyala-wrk-") as tmp:
        results = asyncio.run(_measure(args, url, Path(tmp)))
    print(_report(args, results))
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
