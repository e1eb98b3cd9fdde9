"""``python -m bench.wrk``: an independent load test of ``nyala serve``, every figure of
issue 17 beside its ceiling in one run.

The Python generator of :mod:`bench.load` is one process: it bounds the bare handler's
figure well below what aiohttp can do. ``wrk`` (C, several threads) does not. One run:

1. the ceiling: a bare asyncpg transaction per message (4 statements, ``--tasks`` at once,
   :func:`bench.end_to_end.asyncpg_rate`);
2. ``nyala serve`` in live mode (an app secret, the benchmark café on a fresh PostgreSQL
   database, its outbox sending to a lean Graph API stand-in, ``python -m
   testing.fake_graph --lean``), the bare aiohttp handler (:mod:`bench.bare_server`) and
   the stand-in, each in its own process;
3. end to end: ``--messages`` signed webhooks in (16 connections), until every reply was
   accepted by the stand-in; the server's CPU time and PostgreSQL's transactions
   (``pg_stat_database``) per message over that run;
4. the outbox at an 80/s limit (:func:`bench.outbox.send_run`, against the stand-in);
5. open loop at ``--offered-rate`` (the bare handler, then Nyala): p50/p99, and the inbox
   commits per request from the server's ``/metrics``;
6. ``wrk`` against both with pre-signed bodies from 4,000 contacts (a Lua script rotates
   over them, every wamid unique; ``wrk`` cannot compute an HMAC itself), while Nyala
   still processes the backlog.

The machine's load average is printed before and after. ``--profile`` records the server
and its child processes with ``py-spy`` during its ``wrk`` run (``--profile e2e``: its
end-to-end run) and prints the top functions (``.venv/bin/pip install py-spy``). ``wrk``
is required: ``apt-get install -y wrk`` (Debian/Ubuntu) or
``brew install wrk``.
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
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import cpu
from bench.cpu import process_seconds, tree_pids, tree_seconds
from bench.database import ADMIN_URL, bench_database
from bench.end_to_end import Processed, asyncpg_rate
from bench.load import LoadResult, drive_rate, post_count
from bench.outbox import PHONE_NUMBER_ID, SendResult, send_run
from bench.outbox import TOKEN as GRAPH_TOKEN
from bench.phases import Phase
from bench.report import Figure
from bench.servers import (
    APP_SECRET,
    Server,
    bare_command,
    bare_env,
    free_port,
    nyala_command,
    nyala_env,
    running,
)
from bench.stats import Summary
from bench.webhook import Payloads, inbound_mark
from bot.whatsapp.outbox import MARK_READ
from storage import Database

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
         "--subprocesses",
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


async def _counters(url: str) -> dict[str, float]:
    """Webhook requests and inbox commits so far, from the server's ``/metrics``."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    found = {"requests": 0.0, "commits": 0.0}
    for line in text.splitlines():
        if line.startswith("nyala_webhook_requests_total{"):
            found["requests"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("nyala_inbound_commits_total "):
            found["commits"] = float(line.rsplit(" ", 1)[1])
    return found


async def _transactions(conn: asyncpg.Connection) -> int:
    """Transactions PostgreSQL counted in this database (committed and rolled back)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(
        await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    )


async def _progress(
    conn: asyncpg.Connection, in_mark: int = 0, out_mark: int = 0
) -> tuple[int, int]:
    """Messages processed and replies sent (after the marks): how far a run got, and how
    far processing got during ``wrk``, which makes way for the acknowledgements but never
    stops."""
    row = await conn.fetchrow(
        f"""
        SELECT (SELECT count(*) FROM inbound_messages WHERE id > $1 AND status <> 'pending')
                   AS processed,
               (SELECT count(*) FROM outbound_messages
                WHERE id > $2 AND status = 'sent' AND kind <> '{MARK_READ}') AS replies
        """,
        in_mark,
        out_mark,
    )
    assert row is not None
    return int(row["processed"]), int(row["replies"])


async def _outbound_mark(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbound_messages"))


@dataclass(frozen=True, slots=True)
class Delivered:
    """An end-to-end run through the server: webhooks in, replies accepted by the fake."""

    messages: int  # inbound messages processed
    replies: int  # replies the Graph API stand-in accepted (read receipts not counted)
    seconds: float  # from the first POST to the last reply accepted
    cpu_seconds: float  # the server process's CPU time over the run
    transactions: int  # PostgreSQL transactions over the run (the benchmark's own excluded)
    complete: bool
    cores: dict[str, float]  # cores busy on average per role (cpu.Monitor) over the run

    @property
    def rate(self) -> float:
        """Messages taken from webhook to accepted reply per second."""
        return self.messages / self.seconds if self.seconds else 0.0


async def _delivered(
    conn: asyncpg.Connection, in_mark: int, out_mark: int, within: float
) -> tuple[dt.datetime | None, bool, int]:
    """Wait until every message after ``in_mark`` is processed and every outbound row
    after ``out_mark`` sent (or ``within`` passed): the last ``sent_at``, whether it
    completed, and the transactions this polling made."""
    deadline = time.monotonic() + within
    polls = 0
    while True:
        polls += 1
        waiting = await conn.fetchval(
            """
            SELECT (SELECT count(*) FROM inbound_messages WHERE id > $1 AND status = 'pending')
                 + (SELECT count(*) FROM outbound_messages WHERE id > $2 AND status = 'queued')
            """,
            in_mark,
            out_mark,
        )
        if not waiting:
            break
        if time.monotonic() > deadline:
            return None, False, polls
        await asyncio.sleep(0.05)
    last = await conn.fetchval(
        f"SELECT max(sent_at) FROM outbound_messages WHERE id > $1 AND kind <> '{MARK_READ}'",
        out_mark,
    )
    return last, True, polls + 1


async def end_to_end(
    nyala: Server,
    graph: Server,
    conn: asyncpg.Connection,
    payloads: Payloads,
    *,
    count: int,
    within: float,
) -> Delivered:
    """POST ``count`` signed messages (16 connections) and wait until every reply was
    accepted by the Graph API stand-in; the server's CPU time and PostgreSQL's
    transactions over the run, and the cores each part of the machine kept busy."""
    in_mark, out_mark = await inbound_mark(conn), await _outbound_mark(conn)
    transactions = await _transactions(conn)
    cpu_before = tree_seconds(nyala.process.pid)
    roles: cpu.Roles = {
        "nyala": cpu.tree_pids(nyala.process.pid),
        "postgresql": None,
        "graph": [graph.process.pid],
        "generator": [os.getpid()],
    }
    started = dt.datetime.now(dt.UTC)
    async with cpu.Monitor(roles) as monitor:
        await post_count(f"{nyala.url}/webhook", payloads, count=count, connections=16)
        last, complete, polls = await _delivered(conn, in_mark, out_mark, within)
    spent = tree_seconds(nyala.process.pid) - cpu_before
    messages, replies = await _progress(conn, in_mark, out_mark)
    # Our own statements: the marks and counts above, and one per poll.
    transactions = await _transactions(conn) - transactions - polls - 5
    seconds = (last - started).total_seconds() if last is not None else 0.0
    return Delivered(
        messages,
        replies,
        seconds,
        spent,
        transactions,
        complete,
        monitor.cores,
    )


async def _ceiling(url: str, *, contacts: int, tasks: int) -> Processed:
    """The bare asyncpg transaction per message (4 statements), ``tasks`` at once."""
    conn = await asyncpg.connect(url)
    pool = await asyncpg.create_pool(url, min_size=tasks, max_size=tasks)
    try:
        await asyncpg_rate(pool, conn, contacts=tasks, conversations=1, concurrency=tasks)
        return await asyncpg_rate(
            pool, conn, contacts=contacts, conversations=1, concurrency=tasks
        )
    finally:
        await pool.close()
        await conn.close()


def live_env(database_url: str, flows_dir: Path, graph_base: str) -> dict[str, str]:
    """``nyala serve`` in live mode against the Graph API stand-in, no send limit to speak of."""
    return nyala_env(database_url, flows_dir) | {
        "WHATSAPP_ACCESS_TOKEN": GRAPH_TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_API_BASE": graph_base,
        "NYALA_SEND_RATE": "100000",
    }


def lean_graph_command(port: int) -> list[str]:
    """The fake Graph API as a fast stand-in (no spec checks, nothing recorded)."""
    return [
        sys.executable, "-m", "testing.fake_graph", "--port", str(port), "--token", GRAPH_TOKEN,
        "--lean",
    ]  # fmt: skip


async def _measure(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, Any]:
    script = workdir / "signed.lua"
    script.write_text(_LUA)
    nyala_bodies = workdir / "nyala.bodies"
    bare_bodies = workdir / "bare.bodies"
    write_bodies(nyala_bodies, args.bodies, args.contacts)
    write_bodies(bare_bodies, min(args.bodies, 20_000), args.contacts)
    nyala_port, bare_port, graph_port = free_port(), free_port(), free_port()
    graph_base = f"http://127.0.0.1:{graph_port}/v23.0"
    env = live_env(url, workdir / "server-flows", graph_base)
    r: dict[str, Any] = {"load_before": os.getloadavg()}
    say = _say
    say(f"ceiling: bare asyncpg transaction per message, {args.tasks} tasks…")
    r["ceiling"] = await _ceiling(url, contacts=args.ceiling_contacts, tasks=args.tasks)
    runs = {"threads": args.threads, "connections": args.connections, "seconds": args.seconds}
    offered = {"rate": args.offered_rate, "duration": args.offered_seconds}
    tag = f"{secrets.randbelow(10_000):04d}"
    async with (
        running(
            "graph", lean_graph_command(graph_port), graph_port, {}, workdir, health_path="/"
        ) as graph,
        running("nyala", _serve(nyala_port, args.processors), nyala_port, env, workdir) as nyala,
        running("bare", bare_command(bare_port), bare_port, bare_env(), workdir) as bare,
    ):
        conn = await asyncpg.connect(url)
        try:
            say("warm-up…")
            short = runs | {"seconds": 1}
            warm = workdir / "warm.bodies"
            write_bodies(warm, 400, 200)
            await asyncio.to_thread(run_wrk, nyala.url, warm, script, **short)
            await _delivered(conn, 0, 0, args.drain_timeout)
            await asyncio.to_thread(run_wrk, bare.url, bare_bodies, script, **short)

            say(f"end to end through nyala serve: {args.messages:,} messages…")
            e2e_payloads = Payloads(f"{tag}1", args.contacts, APP_SECRET, stride=7)
            spy = None
            if args.profile == "e2e":
                spy = _py_spy(nyala.process.pid, args.drain_timeout, workdir / "nyala.spy")
            r["e2e"] = await end_to_end(
                nyala, graph, conn, e2e_payloads, count=args.messages, within=args.drain_timeout
            )
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait, 60)

            say("outbox at its limit…")
            db = Database(url)
            try:
                r["outbox"] = await send_run(
                    db, conn, graph_base, messages=args.outbox_messages, rate=80.0, within=60
                )
            finally:
                await db.dispose()

            say(f"open loop at {args.offered_rate:g}/s: bare, then Nyala…")
            bare_payloads = Payloads(f"{tag}2", args.contacts, APP_SECRET)
            r["bare_offered"] = await drive_rate(f"{bare.url}/webhook", bare_payloads, **offered)
            before = await _counters(nyala.url)
            progress = await _progress(conn)
            nyala_payloads = Payloads(f"{tag}3", args.contacts, APP_SECRET)
            r["offered"] = await drive_rate(f"{nyala.url}/webhook", nyala_payloads, **offered)
            after = await _counters(nyala.url)
            done = await _progress(conn)
            r["offered_processed"] = done[0] - progress[0]
            r["offered_replies"] = done[1] - progress[1]
            requests = after["requests"] - before["requests"]
            r["commits_per_request"] = (
                (after["commits"] - before["commits"]) / requests if requests else 0.0
            )

            say(f"wrk: bare, then Nyala ({args.seconds:g} s each)…")
            r["bare"] = await asyncio.to_thread(run_wrk, bare.url, bare_bodies, script, **runs)
            spy = None
            if args.profile == "wrk":
                spy = _py_spy(nyala.process.pid, args.seconds, workdir / "nyala.spy")
            pids = [pid for pid in tree_pids(nyala.process.pid) if not _bookkeeping(pid)]
            cpu = process_seconds(pids)
            progress = await _progress(conn)
            r["nyala"] = await asyncio.to_thread(run_wrk, nyala.url, nyala_bodies, script, **runs)
            spent = process_seconds(pids)
            done = await _progress(conn)
            r["wrk_processed"] = done[0] - progress[0]
            r["wrk_replies"] = done[1] - progress[1]
            r["wrk_cpu_by_process"] = [
                spent[pid] - cpu[pid] for pid in sorted(cpu) if pid in spent
            ]
            r["wrk_cpu"] = sum(r["wrk_cpu_by_process"])
            if spy is not None:
                await asyncio.to_thread(spy.wait, 60)
        finally:
            await conn.close()
    r["load_after"] = os.getloadavg()
    if args.profile and (workdir / "nyala.spy").exists():
        r["profile"] = top_functions(workdir / "nyala.spy")
        if args.profile_out:
            shutil.copyfile(workdir / "nyala.spy", args.profile_out)
    return r


def _serve(port: int, processors: int) -> list[str]:
    """``nyala serve``, with ``--processors`` when asked for."""
    extra = ["--processors", str(processors)] if processors else []
    return [*nyala_command(port), *extra]


def _flag(processors: int) -> str:
    return f" --processors {processors}" if processors else ""


def _ratio(now: float, ceiling: float) -> str:
    return f"{now / ceiling:.3f}×" if ceiling else "—"


def _per_message_cpu(e: Delivered) -> str:
    """Each part's CPU milliseconds per message (cores busy × seconds ÷ messages)."""
    if not e.messages:
        return "nothing processed"
    names = {
        "nyala": "nyala serve",
        "postgresql": "PostgreSQL",
        "graph": "Graph API stand-in",
        "generator": "load generator",
        "other": "the rest of the machine",
    }
    parts = [
        f"{names.get(role, role)} {1000 * cores * e.seconds / e.messages:.2f} ms"
        for role, cores in e.cores.items()
    ]
    return ", ".join(parts)


def _bookkeeping(pid: int) -> bool:
    """Whether a process is multiprocessing's resource tracker (not the server's work)."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def _by_process(processors: int, seconds: list[float]) -> str:
    """The server's CPU seconds by process, named by role: ``serve`` (the parent, idle
    with ``--processors``), then its children in the order it starts them (web,
    processing, sending)."""
    roles = ["serve"] if not processors else ["serve", "web", *["processing"] * processors]
    roles += ["sending"] * (len(seconds) - len(roles))
    return ", ".join(f"{role} {value:.1f} s" for role, value in zip(roles, seconds, strict=False))


def _report(args: argparse.Namespace, r: dict[str, Any]) -> str:
    n: WrkResult = r["nyala"]
    b: WrkResult = r["bare"]
    o: LoadResult = r["offered"]
    bo: LoadResult = r["bare_offered"]
    e: Delivered = r["e2e"]
    c: Processed = r["ceiling"]
    out: SendResult = r["outbox"]
    before = ", ".join(f"{x:.2f}" for x in r["load_before"])
    after = ", ".join(f"{x:.2f}" for x in r["load_after"])
    rate = f"{args.offered_rate:,.0f}/s"
    cpu_ms = 1000 * e.cpu_seconds / e.messages if e.messages else 0.0
    lines = [
        f"nyala serve{f' --processors {args.processors}' if args.processors else ''} "
        "(live mode, outbox on, Graph API stand-in) vs its ceilings, one run; "
        f"{os.cpu_count()} cores; load average before {before}, after {after}",
        "",
        "| figure | now | ceiling | ratio | goal |",
        "|---|---|---|---|---|",
        f"| webhook ack, wrk {args.threads} threads × {args.connections} connections "
        f"(processing goes on) | {n.rate:,.0f} req/s | bare aiohttp handler {b.rate:,.0f} "
        f"req/s | {_ratio(n.rate, b.rate)} | ≥ 0.25× |",
        f"| webhook ack p50 / p99, wrk | {n.p50_ms:.1f} / {n.p99_ms:.1f} ms | "
        f"{b.p50_ms:.1f} / {b.p99_ms:.1f} ms | {_ratio(n.p99_ms, b.p99_ms)} (p99) | |",
        f"| webhook ack p50 at {rate} offered, open loop | {o.p50_ms:.1f} ms | "
        f"{bo.p50_ms:.1f} ms | {_ratio(o.p50_ms, bo.p50_ms)} | |",
        f"| webhook ack p99 at {rate} offered, open loop | {o.p99_ms:.1f} ms | "
        f"{bo.p99_ms:.1f} ms | {_ratio(o.p99_ms, bo.p99_ms)} | ≤ 50 ms |",
        f"| inbox commits per webhook request at {rate} offered | "
        f"{r['commits_per_request']:.2f} | — | — | < 1 |",
        f"| end to end: signed webhook → reply accepted by the stand-in | {e.rate:,.0f} msg/s "
        f"| bare asyncpg txn/message, {args.tasks} tasks: {c.rate:,.0f} msg/s | "
        f"{_ratio(e.rate, c.rate)} | ≥ 0.33× |",
        f"| CPU per message, server processes (ack + processing + outbox) | {cpu_ms:.2f} ms | "
        "— | — | ≤ 1.5 ms |",
        f"| PostgreSQL transactions per message (ack + processing + outbox) | "
        f"{e.transactions / e.messages if e.messages else 0:.2f} | 1 | — | |",
        f"| outbox at an 80/s limit | {out.rate:.1f} msg/s | 80 | "
        f"{_ratio(out.rate, 80.0)} | ≥ 0.98× |",
        "",
        f"End to end: {e.messages:,} messages processed of {args.messages:,} posted, "
        f"{e.replies:,} replies accepted, in {e.seconds:.1f} s"
        f"{'' if e.complete else ' (NOT complete: gave up waiting)'}. wrk: {n.errors} "
        f"errors from Nyala, {b.errors} from the bare handler; open loop: {o.errors} / "
        f"{bo.errors}. Server CPU during Nyala's wrk run: {r['wrk_cpu']:.1f} s of "
        f"{args.seconds:g} s ({_by_process(args.processors, r['wrk_cpu_by_process'])}); "
        f"meanwhile {r['wrk_processed']:,} messages processed "
        f"({r['wrk_processed'] / args.seconds:,.0f}/s) and {r['wrk_replies']:,} replies sent. "
        f"During the open loop ({o.ok:,} requests in {args.offered_seconds:g} s): "
        f"{r['offered_processed']:,} messages processed, {r['offered_replies']:,} replies sent.",
        "",
        f"Where the machine's CPU went end to end, per message: {_per_message_cpu(e)}.",
    ]
    if "profile" in r:
        lines += ["", f"py-spy, nyala serve during its {args.profile} run: own % / total %"]
        lines += [f"  {own:5.1f}% {total:5.1f}%  {name}" for name, own, total in r["profile"]]
    return "\n".join(lines)


def options(mode: str) -> argparse.Namespace:
    """This module's settings for a :mod:`bench.runner` mode (``full``, ``quick``, ``tiny``)."""
    args = _parser().parse_args([])
    # On PostgreSQL the README recommends `--processors 1` (processing and sending in
    # processes of their own): the runner measures that. (The tiny mode, the runner's
    # smoke test, keeps one process: fewer processes to start.)
    args.processors = 1
    if mode == "quick":  # about 80 s, so that `python -m bench --quick` stays near 4 minutes
        args.seconds, args.messages, args.offered_seconds, args.bodies = 4.0, 300, 1.0, 20_000
    elif mode == "tiny":
        args.seconds, args.messages, args.bodies, args.contacts = 1.0, 20, 300, 20
        args.tasks, args.ceiling_contacts, args.offered_rate = 2, 4, 50.0
        args.offered_seconds, args.outbox_messages = 0.2, 8
        args.processors = 0
    return args


async def phase(mode: str, url: str, workdir: Path) -> Phase:
    """The run as a :mod:`bench.runner` phase: its figures, and its table as a section."""
    args = options(mode)
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    r = await _measure(args, url, workdir)
    n: WrkResult = r["nyala"]
    b: WrkResult = r["bare"]
    e: Delivered = r["e2e"]
    c: Processed = r["ceiling"]
    bare = "bare aiohttp handler (HMAC + `json.loads`), wrk"
    per = e.messages or 1

    def one(value: float) -> Summary:
        return Summary.of([value])

    figures = [
        Figure("wrk_ack_rate", f"Webhook ack, wrk {args.connections} connections, "
               f"nyala serve{_flag(args.processors)} in live mode (processing goes on)",
               "req/s", one(n.rate), bare,
               one(b.rate)),
        Figure("wrk_ack_p99", "Webhook ack p99, wrk", "ms", one(n.p99_ms), bare,
               one(b.p99_ms), better="lower"),
        Figure("serve_end_to_end_rate", "End to end through nyala serve: signed webhook → "
               "reply accepted by the Graph API stand-in", "msg/s", one(e.rate),
               f"bare asyncpg transaction per message, {args.tasks} tasks", one(c.rate)),
        Figure("serve_cpu_per_message_ms", "CPU per message, nyala serve's processes (ack + "
               "processing + outbox)", "ms", one(1000 * e.cpu_seconds / per), better="lower"),
        Figure("serve_transactions_per_message", "PostgreSQL transactions per message "
               "through nyala serve", "transactions", one(e.transactions / per),
               "bare asyncpg transaction per message", one(1.0), better="lower"),
        Figure("serve_commits_per_request", f"Inbox commits per webhook request at "
               f"{args.offered_rate:,.0f}/s offered", "commits", one(r["commits_per_request"]),
               better="lower"),
    ]  # fmt: skip
    return Phase(
        figures=figures,
        details={"wrk": {k: v for k, v in r.items() if k not in {"profile"}}},
        sections=["## nyala serve under wrk (`python -m bench.wrk`)", "", _report(args, r)],
    )


_STARTED = time.monotonic()


def _say(line: str) -> None:
    print(f"[{time.monotonic() - _STARTED:5.0f} s] {line}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.wrk", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="each wrk run")
    parser.add_argument("--contacts", type=int, default=4000)
    parser.add_argument("--bodies", type=int, default=60_000, help="unique signed bodies")
    parser.add_argument("--messages", type=int, default=2000, help="end to end")
    parser.add_argument("--tasks", type=int, default=20, help="the ceiling's concurrent tasks")
    parser.add_argument("--ceiling-contacts", type=int, default=400)
    parser.add_argument("--offered-rate", type=float, default=1000.0)
    parser.add_argument("--offered-seconds", type=float, default=3.0)
    parser.add_argument("--outbox-messages", type=int, default=160)
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--quick", action="store_true", help="shorter runs (about a minute)")
    parser.add_argument(
        "--processors",
        type=int,
        default=0,
        help="run nyala serve --processors N (processing in processes of its own)",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="wrk",
        choices=("wrk", "e2e"),
        help="py-spy the server during its wrk run (default) or its end-to-end run",
    )
    parser.add_argument("--profile-out", type=Path, help="keep py-spy's raw stacks here")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run; 0 on success, 1 without ``wrk``."""
    args = _parser().parse_args(argv)
    if args.quick:
        quick = options("quick")
        args.seconds, args.messages = quick.seconds, quick.messages
        args.offered_seconds, args.bodies = quick.offered_seconds, min(args.bodies, quick.bodies)
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
