"""Runs every benchmark in order and collects the figures."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import asyncpg
from sqlalchemy import event

from bench import cpu, phases
from bench.database import server_version, settle
from bench.end_to_end import (
    Processed,
    asyncpg_rate,
    engine_rate,
    machine_us,
    order_flow,
    script,
    script_text,
)
from bench.load import LoadResult
from bench.report import Figure, Report, machine_info
from bench.servers import (
    APP_SECRET,
    bare_command,
    bare_env,
    free_port,
    nyala_command,
    nyala_env,
    running,
)
from bench.stats import Summary
from bench.webhook import (
    Drained,
    Payloads,
    ack_run,
    inbound_mark,
    offered_run,
    wait_processed,
)
from bot.settings import Settings
from flows import Engine
from storage import Database
from tests.cafe import build_app


@dataclass(frozen=True, slots=True)
class Config:
    """How much of everything one mode does."""

    mode: str
    repetitions: int
    connections: int
    warmup: float
    duration: float
    webhook_contacts: int
    drain_timeout: float
    e2e_contacts: int
    e2e_conversations: int
    concurrency: int
    machine_iterations: int
    offered_rate: float
    offered_duration: float
    send_limit: float
    outbox_limited_messages: int
    outbox_unlimited_messages: int
    receipts_per_repetition: int
    summary_bookings: int
    memory_small: int
    memory_large: int
    memory_load_seconds: float
    memory_repetitions: int
    report_sizes: tuple[tuple[str, int], ...]
    console_events: int
    profile: bool


QUICK = Config(
    mode="quick",
    repetitions=3,
    connections=16,
    warmup=1.0,
    duration=1.5,
    webhook_contacts=500,
    drain_timeout=30.0,
    e2e_contacts=128,
    e2e_conversations=1,
    concurrency=8,
    machine_iterations=1000,
    offered_rate=1000.0,
    offered_duration=0.5,
    send_limit=80.0,
    outbox_limited_messages=100,
    outbox_unlimited_messages=300,
    receipts_per_repetition=5,
    summary_bookings=500,
    memory_small=1_000,
    memory_large=10_000,
    memory_load_seconds=1.0,
    memory_repetitions=1,
    report_sizes=(("postgresql", 20_000),),
    console_events=0,
    profile=False,
)
FULL = Config(
    mode="full",
    repetitions=5,
    connections=16,
    warmup=2.0,
    duration=5.0,
    webhook_contacts=2000,
    drain_timeout=90.0,
    e2e_contacts=256,
    e2e_conversations=2,
    concurrency=8,
    machine_iterations=3000,
    offered_rate=1000.0,
    offered_duration=2.0,
    send_limit=80.0,
    outbox_limited_messages=400,
    outbox_unlimited_messages=1_500,
    receipts_per_repetition=20,
    summary_bookings=10_000,
    memory_small=1_000,
    memory_large=1_000_000,
    memory_load_seconds=3.0,
    memory_repetitions=5,
    report_sizes=(("postgresql", 1_000_000), ("sqlite", 1_000_000), ("postgresql", 10_000_000)),
    console_events=1_000_000,
    profile=True,
)

TINY = Config(
    mode="tiny",
    repetitions=1,
    connections=4,
    warmup=0.2,
    duration=0.3,
    webhook_contacts=20,
    drain_timeout=30.0,
    e2e_contacts=4,
    e2e_conversations=1,
    concurrency=2,
    machine_iterations=20,
    offered_rate=50.0,
    offered_duration=0.2,
    send_limit=40.0,
    outbox_limited_messages=8,
    outbox_unlimited_messages=8,
    receipts_per_repetition=1,
    summary_bookings=5,
    memory_small=10,
    memory_large=20,
    memory_load_seconds=0.2,
    memory_repetitions=1,
    report_sizes=(("postgresql", 2_000),),
    console_events=2_000,
    profile=True,
)
"""Proves the runner works end to end in well under a minute (the smoke test); its
figures mean nothing."""

Progress = Callable[[str], None]


_STARTED = time.monotonic()


def _say(line: str) -> None:
    print(f"[{time.monotonic() - _STARTED:5.0f} s] {line}", file=sys.stderr, flush=True)


class _Batching(TypedDict):
    batch: int
    workers: int


def _batching() -> _Batching:
    """The server's batch size and batches at once, from its settings' defaults."""
    fields = Settings.model_fields
    return {
        "batch": int(fields["batch_size"].default),
        "workers": int(fields["processing_workers"].default),
    }


async def _statements_per_message(
    db: Database, engine: Engine, conn: asyncpg.Connection
) -> dict[str, float]:
    """SQL round trips Nyala makes per message (an untimed, instrumented run): storing
    (``Engine.receive``, a transaction a message; the server's webhook shares one among
    the requests that arrive together) and processing (the turns, in batches)."""
    counts = {
        "statements": 0,
        "transaction_control": 0,
        "store_statements": 0,
        "store_transaction_control": 0,
    }
    phase = {"now": ""}

    def statement(*_: Any) -> None:
        counts["store_statements" if phase["now"] == "store" else "statements"] += 1

    def control(*_: Any) -> None:
        store = phase["now"] == "store"
        counts["store_transaction_control" if store else "transaction_control"] += 1

    def begin(name: str) -> None:
        phase["now"] = name

    sync = db.engine.sync_engine
    controls = ("begin", "commit", "rollback", "savepoint", "release_savepoint")
    event.listen(sync, "before_cursor_execute", statement)
    for name in controls:
        event.listen(sync, name, control)
    try:
        processed = await engine_rate(
            engine, conn, contacts=64, conversations=2, concurrency=8, on_phase=begin,
            **_batching(),
        )  # fmt: skip
    finally:
        event.remove(sync, "before_cursor_execute", statement)
        for name in controls:
            event.remove(sync, name, control)
    return {k: round(v / processed.messages, 2) for k, v in counts.items()}


async def _machine(
    cfg: Config, workdir: Path, say: Progress
) -> tuple[list[float], list[float], list[float]]:
    spec = order_flow(build_app(workdir / "machine-flows"))
    await machine_us(spec, 200, listeners=True)  # warm-up
    with_listeners: list[float] = []
    bare: list[float] = []
    pooled: list[float] = []
    for rep in range(cfg.repetitions):
        with_listeners.append(await machine_us(spec, cfg.machine_iterations, listeners=True))
        bare.append(await machine_us(spec, cfg.machine_iterations, listeners=False))
        pooled.append(await machine_us(spec, cfg.machine_iterations, listeners=True, pooled=True))
        say(
            f"  machine {rep + 1}/{cfg.repetitions}: {with_listeners[-1]:.0f} µs with "
            f"listeners, {bare[-1]:.0f} µs without, {pooled[-1]:.0f} µs pooled"
        )
    return with_listeners, bare, pooled


async def _end_to_end(
    cfg: Config, url: str, workdir: Path, say: Progress
) -> tuple[list[Processed], list[Processed], dict[str, Any]]:
    app = build_app(workdir / "e2e-flows")
    db = Database(url)
    engine = Engine(db, app, sandbox=True)
    conn = await asyncpg.connect(url)
    pool = await asyncpg.create_pool(url, min_size=cfg.concurrency, max_size=cfg.concurrency)
    nyala: list[Processed] = []
    ceiling: list[Processed] = []
    extra: dict[str, Any] = {"cores_busy_nyala": [], "cores_busy_ceiling": []}
    roles: dict[str, list[int] | None] = {"python": [os.getpid()], "postgresql": None}
    size = {"contacts": cfg.e2e_contacts, "conversations": cfg.e2e_conversations}
    try:
        # Warm-up: connections, statement caches, flow loading.
        await engine_rate(
            engine, conn, contacts=64, conversations=1, concurrency=cfg.concurrency, **_batching()
        )
        await asyncpg_rate(pool, conn, contacts=8, conversations=1, concurrency=cfg.concurrency)
        extra["per_message"] = await _statements_per_message(db, engine, conn)
        for rep in range(cfg.repetitions):
            async with cpu.Monitor(roles) as on_nyala:
                nyala.append(
                    await engine_rate(
                        engine,
                        conn,
                        concurrency=cfg.concurrency,
                        contacts=cfg.e2e_contacts,
                        conversations=cfg.e2e_conversations,
                        **_batching(),
                    )
                )
            async with cpu.Monitor(roles) as on_ceiling:
                ceiling.append(await asyncpg_rate(pool, conn, concurrency=cfg.concurrency, **size))
            extra["cores_busy_nyala"].append(on_nyala.cores)
            extra["cores_busy_ceiling"].append(on_ceiling.cores)
            say(
                f"  end-to-end {rep + 1}/{cfg.repetitions}: Nyala {nyala[-1].rate:.0f} msg/s, "
                f"asyncpg {ceiling[-1].rate:.0f} msg/s"
            )
    finally:
        await pool.close()
        await conn.close()
        await db.dispose()
    return nyala, ceiling, extra


@dataclass
class WebhookRuns:
    """The webhook benchmark's repetitions."""

    nyala: list[LoadResult]
    bare: list[LoadResult]
    drained: list[Drained]
    cores_nyala: list[dict[str, float]]
    cores_bare: list[dict[str, float]]
    postgres_started: list[int]
    offered: list[LoadResult] = field(default_factory=list)
    bare_offered: list[LoadResult] = field(default_factory=list)


async def _webhook(cfg: Config, url: str, workdir: Path, say: Progress) -> WebhookRuns:
    nyala_port, bare_port = free_port(), free_port()
    runs = WebhookRuns([], [], [], [], [], [])
    payloads = Payloads(f"{secrets.randbelow(10_000):04d}", cfg.webhook_contacts, APP_SECRET)
    env = nyala_env(url, workdir / "server-flows")
    async with (
        running("nyala", nyala_command(nyala_port), nyala_port, env, workdir) as nyala,
        running("bare", bare_command(bare_port), bare_port, bare_env(), workdir) as bare,
    ):
        conn = await asyncpg.connect(url)
        try:
            await ack_run(nyala.url, payloads, connections=cfg.connections, duration=cfg.warmup)
            await wait_processed(conn, 0, dt.datetime.now(dt.UTC), cfg.drain_timeout)
            await ack_run(bare.url, payloads, connections=cfg.connections, duration=cfg.warmup)
            for rep in range(cfg.repetitions):
                mark = await inbound_mark(conn)
                nyala_roles = {
                    "server": [nyala.process.pid],
                    "postgresql": None,
                    "generator": [os.getpid()],
                }
                started = dt.datetime.now(dt.UTC)
                async with cpu.Monitor(nyala_roles) as on_nyala:
                    runs.nyala.append(
                        await ack_run(
                            nyala.url, payloads, connections=cfg.connections, duration=cfg.duration
                        )
                    )
                runs.cores_nyala.append(on_nyala.cores)
                runs.postgres_started.append(on_nyala.postgres_started)
                runs.drained.append(await wait_processed(conn, mark, started, cfg.drain_timeout))
                bare_roles = {"server": [bare.process.pid], "generator": [os.getpid()]}
                async with cpu.Monitor(bare_roles) as on_bare:
                    runs.bare.append(
                        await ack_run(
                            bare.url, payloads, connections=cfg.connections, duration=cfg.duration
                        )
                    )
                runs.cores_bare.append(on_bare.cores)
                # Open loop at the offered rate: latency when the server is not saturated.
                mark = await inbound_mark(conn)
                started = dt.datetime.now(dt.UTC)
                runs.offered.append(
                    await offered_run(
                        nyala.url, payloads, rate=cfg.offered_rate, duration=cfg.offered_duration
                    )
                )
                await wait_processed(conn, mark, started, cfg.drain_timeout)
                runs.bare_offered.append(
                    await offered_run(
                        bare.url, payloads, rate=cfg.offered_rate, duration=cfg.offered_duration
                    )
                )
                n, b, d = runs.nyala[-1], runs.bare[-1], runs.drained[-1]
                o = runs.offered[-1]
                say(
                    f"  webhook {rep + 1}/{cfg.repetitions}: Nyala {n.rate:.0f} req/s "
                    f"(p50 {n.p50_ms:.1f} ms, p99 {n.p99_ms:.1f} ms), {d.done + d.failed} "
                    f"processed in {d.seconds:.1f} s, {runs.postgres_started[-1]} PostgreSQL "
                    f"processes started; bare {b.rate:.0f} req/s "
                    f"(p50 {b.p50_ms:.1f} ms, p99 {b.p99_ms:.1f} ms); at {cfg.offered_rate:g}/s "
                    f"offered: Nyala p50 {o.p50_ms:.1f} ms, p99 {o.p99_ms:.1f} ms"
                )
        finally:
            await conn.close()
    return runs


def _mean_cores(samples: list[dict[str, float]]) -> dict[str, float]:
    if not samples:
        return {}
    return {k: round(sum(s.get(k, 0.0) for s in samples) / len(samples), 2) for k in samples[0]}


def _cores_text(cores: dict[str, float]) -> str:
    return ", ".join(f"{role} {value:.2f}" for role, value in cores.items())


async def run(cfg: Config, url: str, workdir: Path, command: str, say: Progress = _say) -> Report:
    """Every benchmark; the report (not yet written)."""
    postgresql = await server_version(url)
    script_length = len(script(cfg.e2e_conversations))
    config = {
        **asdict(cfg),
        "script_length": script_length,
        "e2e_messages": cfg.e2e_contacts * script_length,
        "script_text": script_text(cfg.e2e_conversations),
    }
    report = Report(cfg.mode, command, machine_info(postgresql), config)

    say("state machine alone…")
    async with cpu.Monitor({"python": [os.getpid()]}) as on_machine:
        with_listeners, bare_machine, pooled_machine = await _machine(cfg, workdir, say)
    cores_machine = on_machine.cores
    say("end-to-end (Engine vs bare asyncpg)…")
    nyala, ceiling, e2e = await _end_to_end(cfg, url, workdir, say)
    say("webhook ack (nyala serve vs bare aiohttp)…")
    web = await _webhook(cfg, url, workdir, say)
    extra: list[tuple[str, phases.Phase]] = []
    failures: list[str] = []

    async def phase(name: str, title: str, work: Awaitable[phases.Phase | None]) -> None:
        # One failing phase must not lose the others' figures (a full run is long).
        say(title)
        try:
            result = await work
        except Exception as exc:  # reported in the notes, with the error
            error = f"{type(exc).__name__}: {exc}"
            failures.append(f"**Warning**: the {name} benchmark failed: {error}")
            say(f"  {name} failed: {type(exc).__name__}: {exc}")
            return
        if result is not None:
            extra.append((name, result))

    await phase(
        "outbox",
        "outbox (sender vs its configured limit; fake Graph API)…",
        phases.outbox(cfg, url, workdir, say),
    )
    await phase(
        "receipts",
        "receipts (generate_receipt vs bare xhtml2pdf)…",
        phases.receipts(cfg, say),
    )
    await phase(
        "summaries",
        f"send-tour-summaries --dry-run ({cfg.summary_bookings:,} bookings)…",
        phases.summaries(cfg, say),
    )
    await phase(
        "memory",
        f"memory ({cfg.memory_small:,} and {cfg.memory_large:,} stored conversations)…",
        phases.memory(cfg, url, workdir, say),
    )
    if phases.reports_module_available():
        await phase("reports", "report latencies (bench/reports.py)…", phases.reports(cfg, say))
    if phases.console_module_available() and cfg.console_events:
        await phase("console", "console pages (bench/console.py)…", phases.console(cfg, say))
    from bench import wrk

    if wrk.available():
        await settle(url)  # the report phases wrote millions of rows: let that settle
        await phase(
            "server",
            "nyala serve under wrk, every issue-17 figure beside its ceiling (bench.wrk)…",
            wrk.phase(cfg.mode, url, workdir / "wrk"),
        )
    else:
        failures.append(f"nyala serve under wrk is not measured: {wrk.INSTALL_HINT}.")
    if cfg.profile:
        say("profile of the end-to-end hot path (pyinstrument)…")
        report.profile = await _profile_text(cfg, url, workdir)

    ack_label = "bare aiohttp handler: HMAC + `json.loads`, 200"
    report.figures = [
        Figure(
            "webhook_ack_rate",
            f"Webhook ack throughput ({cfg.connections} connections)",
            "req/s",
            Summary.of([r.rate for r in web.nyala]),
            ack_label,
            Summary.of([r.rate for r in web.bare]),
        ),
        Figure(
            "webhook_ack_p50",
            "Webhook ack latency p50",
            "ms",
            Summary.of([r.p50_ms for r in web.nyala]),
            ack_label,
            Summary.of([r.p50_ms for r in web.bare]),
            better="lower",
        ),
        Figure(
            "webhook_ack_p99",
            "Webhook ack latency p99",
            "ms",
            Summary.of([r.p99_ms for r in web.nyala]),
            ack_label,
            Summary.of([r.p99_ms for r in web.bare]),
            better="lower",
        ),
        Figure(
            "webhook_offered_p50",
            f"Webhook ack latency p50 at {cfg.offered_rate:,.0f}/s offered (open loop)",
            "ms",
            Summary.of([r.p50_ms for r in web.offered]),
            ack_label,
            Summary.of([r.p50_ms for r in web.bare_offered]),
            better="lower",
        ),
        Figure(
            "webhook_offered_p99",
            f"Webhook ack latency p99 at {cfg.offered_rate:,.0f}/s offered (open loop)",
            "ms",
            Summary.of([r.p99_ms for r in web.offered]),
            ack_label,
            Summary.of([r.p99_ms for r in web.bare_offered]),
            better="lower",
        ),
        Figure(
            "end_to_end_rate",
            "End-to-end processed messages (Engine: stored, then turns in batches as the "
            f"server runs them, {_batching()['batch']} contacts a batch, "
            f"{_batching()['workers']} at once)",
            "msg/s",
            Summary.of([p.rate for p in nyala]),
            "bare asyncpg transaction per message: 4 statements",
            Summary.of([p.rate for p in ceiling]),
        ),
        Figure(
            "server_pipeline_rate",
            "Webhook → reply row through the server (flood, one process)",
            "msg/s",
            Summary.of([d.rate for d in web.drained]),
        ),
        Figure(
            "machine_us",
            "State machine alone: rebuild at a state + 1 event, with the engine's listeners",
            "µs/msg",
            Summary.of(with_listeners),
            better="lower",
        ),
        Figure(
            "machine_bare_us",
            "State machine alone, without listeners",
            "µs/msg",
            Summary.of(bare_machine),
            better="lower",
        ),
        Figure(
            "machine_pooled_us",
            "State machine as the engine runs it: a pooled machine reset to the state + 1 "
            "event, with the listeners",
            "µs/msg",
            Summary.of(pooled_machine),
            better="lower",
        ),
    ]

    # CPU per message: the benchmark process's CPU time over each Engine run ÷ messages.
    cpu_ms = [
        1000 * cores.get("python", 0.0) * p.seconds / p.messages
        for cores, p in zip(e2e["cores_busy_nyala"], nyala, strict=True)
        if p.messages
    ]
    per_sql = e2e["per_message"]
    report.figures += [
        Figure(
            "cpu_per_message_ms",
            "CPU per processed message (Engine, process CPU time ÷ messages)",
            "ms",
            Summary.of(cpu_ms or [0.0]),
            better="lower",
        ),
        Figure(
            "sql_per_message",
            "SQL round trips per processed message, turns in batches (statements + "
            "BEGIN/COMMIT/SAVEPOINT; storing not included, see the notes)",
            "round trips",
            Summary.of([per_sql["statements"] + per_sql["transaction_control"]]),
            "bare asyncpg transaction per message: 4 statements + BEGIN/COMMIT",
            Summary.of([6.0]),
            better="lower",
        ),
    ]
    by_key = {f.key: f for f in report.figures}
    engine_median = by_key["end_to_end_rate"].nyala.median
    per_message_us = 1e6 / engine_median
    machine_median = by_key["machine_pooled_us"].nyala.median
    per = e2e["per_message"]
    replies = sum(p.replies for p in nyala) / sum(p.messages for p in nyala)
    events = sum(p.step_events for p in nyala) / sum(p.messages for p in nyala)
    cores_e2e = _mean_cores(e2e["cores_busy_nyala"])
    cores_ceiling = _mean_cores(e2e["cores_busy_ceiling"])
    cores_ack = _mean_cores(web.cores_nyala)
    cores_bare = _mean_cores(web.cores_bare)
    other = [
        cores_machine.get("other", 0.0),
        *(c.get("other", 0.0) for c in e2e["cores_busy_nyala"] + e2e["cores_busy_ceiling"]),
        *(c.get("other", 0.0) for c in web.cores_nyala + web.cores_bare),
    ]
    other_mean = sum(other) / len(other)
    report.notes = [
        f"End-to-end, Nyala's process spends {per_message_us:,.0f} µs per message at its "
        f"median rate (1 ÷ rate, on one core); the state machine (pooled, as the engine "
        "runs it) is "
        f"{machine_median:,.0f} µs of that ({machine_median / per_message_us:.0%}). Per "
        "message it makes "
        f"{per['statements']:g} SQL statements plus {per['transaction_control']:g} "
        "BEGIN/COMMIT/SAVEPOINT/RELEASE to process it (the turns share one transaction a "
        f"batch), and {per['store_statements']:g} plus "
        f"{per['store_transaction_control']:g} to store it with `Engine.receive` (one "
        "transaction a message; the server's webhook shares one among the requests that "
        "arrive together). The ceiling makes 4 plus BEGIN/COMMIT for both.",
        f"Each message wrote {replies:.2f} reply rows and {events:.2f} step events on "
        "average (the ceiling: 1 and 1).",
        "Cores busy (mean over repetitions; `python` is the benchmark's process, `other` "
        f"the rest of the machine). End-to-end, Nyala: {_cores_text(cores_e2e)}; ceiling: "
        f"{_cores_text(cores_ceiling)}. Webhook ack, Nyala: {_cores_text(cores_ack)}; bare "
        f"handler: {_cores_text(cores_bare)}.",
        f"PostgreSQL processes started during each of Nyala's webhook-ack repetitions (new "
        f"connections, autovacuum workers): {', '.join(map(str, web.postgres_started))}.",
    ]
    generator = cores_bare.get("generator", 0.0)
    if generator >= 0.85:
        report.notes.append(
            f"The bare handler's figures are bounded by the load generator ({generator:.2f} "
            "cores: one Python process), so its true ceiling is higher; Nyala's server "
            f"({cores_ack.get('server', 0.0):.2f} cores) is the bound of its own figures."
        )
    if other_mean > 0.15:
        report.notes.append(
            f"**Warning**: other processes kept {other_mean:.2f} cores busy on average "
            f"(up to {max(other):.2f}) while this ran: the figures are lower than on a "
            "quiet machine."
        )
    else:
        report.notes.append(
            f"Other processes used {other_mean:.2f} cores on average while this ran."
        )
    problems = _problems(web, nyala + ceiling)
    report.notes += problems
    for name, done in extra:
        report.figures += done.figures
        report.notes += done.notes
        report.details[name] = done.details
        report.sections += done.sections
    report.notes += failures
    if not phases.reports_module_available():
        report.notes.append(
            "Report latencies (1M/10M step events on PostgreSQL, 1M on SQLite) are not "
            "measured: `bench/reports.py` (issue 6) is not in the tree."
        )
    if not phases.console_module_available():
        report.notes.append(
            "Console pages are not measured: `bench/console.py` is not in the tree."
        )
    elif not cfg.console_events:
        report.notes.append(
            f"Console pages are measured in full mode only ({FULL.console_events:,} step events)."
        )
    report.details |= {
        "end_to_end": {
            "nyala": [asdict(p) | {"rate": p.rate} for p in nyala],
            "ceiling": [asdict(p) | {"rate": p.rate} for p in ceiling],
            **e2e,
        },
        "webhook": {
            "nyala": [_load_json(r) for r in web.nyala],
            "bare": [_load_json(r) for r in web.bare],
            "processed": [asdict(d) | {"rate": d.rate} for d in web.drained],
            "cores_busy_nyala": web.cores_nyala,
            "cores_busy_bare": web.cores_bare,
            "postgres_processes_started_nyala": web.postgres_started,
            "offered": [_load_json(r) for r in web.offered],
            "bare_offered": [_load_json(r) for r in web.bare_offered],
        },
        "machine": {
            "with_listeners_us": with_listeners,
            "without_listeners_us": bare_machine,
            "pooled_us": pooled_machine,
            "cores_busy": cores_machine,
        },
    }
    return report


def _load_json(result: LoadResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "errors": result.errors,
        "seconds": result.seconds,
        "rate": result.rate,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "statuses": result.statuses,
    }


def _problems(web: WebhookRuns, processed: list[Processed]) -> list[str]:
    notes = []
    errors = sum(r.errors for r in web.nyala) + sum(r.errors for r in web.bare)
    if errors:
        notes.append(f"**Warning**: {errors} webhook requests did not get a 200 (see JSON).")
    if not all(d.complete for d in web.drained):
        notes.append("**Warning**: the server had not processed every message in time.")
    failed = sum(d.failed for d in web.drained) + sum(p.failed for p in processed)
    missing = sum(p.messages - p.done - p.failed for p in processed)
    if failed or missing:
        notes.append(f"**Warning**: {failed} messages failed, {missing} were not processed.")
    stored = sum(d.stored for d in web.drained)
    acked = sum(r.ok for r in web.nyala)
    if stored != acked:
        notes.append(f"**Warning**: {acked} webhooks acknowledged but {stored} rows stored.")
    return notes


def main_async(cfg: Config, url: str, command: str) -> Report:
    """Run everything in a fresh event loop with a temporary working folder."""
    with tempfile.TemporaryDirectory(prefix="nyala-bench-") as workdir:
        return asyncio.run(run(cfg, url, Path(workdir), command))


async def _profile_text(cfg: Config, url: str, workdir: Path) -> str | None:
    """The pyinstrument profile of one end-to-end run (``None`` without pyinstrument)."""
    from bench import profiling

    if not profiling.available():
        return None
    return await profiling.profile_async(cfg, url, workdir / "profile")
