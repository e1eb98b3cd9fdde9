"""The benchmarks beyond the message path: outbox, receipts, summaries, memory, reports.

Each phase returns its figures, notes and raw details; :mod:`bench.runner` runs them after
the message-path benchmarks and puts everything in one report. The safari app's phases
(receipts, summaries) make a database of the app's own (:func:`bench.database.app_database`):
a database holds the tables of one app.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from apps.safari import app as safari
from apps.safari.documents import SafariDocuments
from bench import seed
from bench.database import app_database
from bench.load import LoadResult
from bench.memory import PeakRSS, rss_mib
from bench.outbox import TOKEN, SendResult, send_run
from bench.receipts import bare_render_ms, nyala_render_ms, receipt_html
from bench.report import Figure
from bench.servers import (
    APP_SECRET,
    fake_graph_command,
    free_port,
    nyala_command,
    nyala_env,
    running,
)
from bench.stats import Summary, percentile
from bench.summaries import dry_run_seconds, due_date, startup_seconds
from bench.webhook import Payloads, ack_run, inbound_mark, wait_processed
from flows.runtime import Runtime
from storage import Database

Progress = Callable[[str], None]


class PhaseConfig(Protocol):
    """What the phases read from :class:`bench.runner.Config`."""

    @property
    def repetitions(self) -> int: ...
    @property
    def connections(self) -> int: ...
    @property
    def drain_timeout(self) -> float: ...
    @property
    def send_limit(self) -> float: ...
    @property
    def outbox_limited_messages(self) -> int: ...
    @property
    def outbox_unlimited_messages(self) -> int: ...
    @property
    def receipts_per_repetition(self) -> int: ...
    @property
    def summary_bookings(self) -> int: ...
    @property
    def memory_small(self) -> int: ...
    @property
    def memory_large(self) -> int: ...
    @property
    def memory_load_seconds(self) -> float: ...
    @property
    def memory_repetitions(self) -> int: ...
    @property
    def report_sizes(self) -> tuple[tuple[str, int], ...]: ...
    @property
    def console_events(self) -> int: ...


@dataclass
class Phase:
    """What one phase produced."""

    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)  # Markdown shown below the table


# --- outbox -----------------------------------------------------------------------------


async def outbox(cfg: PhaseConfig, url: str, workdir: Path, say: Progress) -> Phase:
    """The sender's rate at the configured limit and without one."""
    port = free_port()
    db = Database(url)
    conn = await asyncpg.connect(url)
    limited: list[SendResult] = []
    unlimited: list[SendResult] = []
    try:
        async with running(
            "fake-graph", fake_graph_command(port, TOKEN), port, {}, workdir, health_path="/"
        ):
            base = f"http://127.0.0.1:{port}/v23.0"
            await send_run(db, conn, base, messages=50, rate=None, within=60)  # warm-up
            for rep in range(cfg.repetitions):
                limited.append(
                    await send_run(
                        db,
                        conn,
                        base,
                        messages=cfg.outbox_limited_messages,
                        rate=cfg.send_limit,
                        within=cfg.outbox_limited_messages / cfg.send_limit * 3 + 30,
                    )
                )
                unlimited.append(
                    await send_run(
                        db, conn, base, messages=cfg.outbox_unlimited_messages, rate=None,
                        within=120,
                    )
                )  # fmt: skip
                say(
                    f"  outbox {rep + 1}/{cfg.repetitions}: limit {cfg.send_limit:g}/s → "
                    f"{limited[-1].rate:.1f}/s (busiest second {limited[-1].busiest_second}), "
                    f"unlimited {unlimited[-1].rate:.0f}/s"
                )
    finally:
        await conn.close()
        await db.dispose()
    limit = Summary.of([cfg.send_limit] * len(limited))
    phase = Phase()
    phase.figures = [
        Figure(
            "outbox_limited_rate",
            f"Outbox send rate, limit {cfg.send_limit:g}/s (fake Graph API)",
            "msg/s",
            Summary.of([r.rate for r in limited]),
            "the configured limit (`NYALA_SEND_RATE`)",
            limit,
        ),
        Figure(
            "outbox_limited_busiest_second",
            "Outbox: most messages accepted in any one second, at that limit",
            "msg",
            Summary.of([float(r.busiest_second) for r in limited]),
            "the configured limit",
            limit,
            better="lower",
        ),
        Figure(
            "outbox_unlimited_rate",
            "Outbox send rate without a limit (fake Graph API)",
            "msg/s",
            Summary.of([r.rate for r in unlimited]),
        ),
    ]
    over = [r.busiest_second for r in limited if r.busiest_second > cfg.send_limit]
    undelivered = sum(r.messages - r.sent for r in limited + unlimited)
    phase.notes.append(
        f"Outbox at its limit: {'never above it' if not over else f'above it in {len(over)} of {len(limited)} repetitions (busiest seconds {over})'}; "  # noqa: E501
        f"{'every message was sent' if not undelivered else f'**{undelivered} messages were not sent**'}."  # noqa: E501
    )
    phase.details = {
        "limited": [asdict(r) for r in limited],
        "unlimited": [asdict(r) for r in unlimited],
    }
    return phase


# --- receipts ---------------------------------------------------------------------------


async def receipts(cfg: PhaseConfig, say: Progress) -> Phase:
    """Receipt issue end to end vs bare xhtml2pdf; event-loop lag while rendering.

    On a database of the safari app's own (the framework's and the safari branch), with
    the app running on it (its lifespan starts the PDF renderer)."""
    per = cfg.receipts_per_repetition
    total = per * cfg.repetitions + 2
    async with app_database(safari.migration_locations) as url:
        db = Database(url)
        try:
            async with Runtime.start(safari, db, sandbox=True) as runtime:
                documents = runtime.services.get(SafariDocuments)
                figures = await _receipt_runs(cfg, db, documents, total, say)
        finally:
            await db.dispose()
    nyala_p50, nyala_p99, bare_p50, bare_p99, lag_p99, lag_max = figures
    label = "bare xhtml2pdf, same HTML, in-process"
    phase = Phase()
    phase.figures = [
        Figure(
            "receipt_p50", "Receipt issued end to end, p50", "ms",
            Summary.of(nyala_p50), label, Summary.of(bare_p50), better="lower",
        ),
        Figure(
            "receipt_p99", "Receipt issued end to end, p99", "ms",
            Summary.of(nyala_p99), label, Summary.of(bare_p99), better="lower",
        ),
        Figure(
            "receipt_loop_lag_p99", "Event-loop lag p99 while receipts render", "ms",
            Summary.of(lag_p99), better="lower",
        ),
    ]  # fmt: skip
    phase.details = {"loop_lag_max_ms": lag_max, "receipts_per_repetition": per}
    return phase


async def _receipt_runs(
    cfg: PhaseConfig, db: Database, documents: SafariDocuments, total: int, say: Progress
) -> tuple[list[float], ...]:
    """(Nyala p50, p99, bare p50, p99, loop lag p99, max) per repetition."""
    per = cfg.receipts_per_repetition
    seeded = await seed.bookings(
        db,
        total,
        tag=f"{secrets.randbelow(1000):03d}",
        departure=dt.datetime.now(dt.UTC).date() + dt.timedelta(days=40),
        last_inbound_ago=dt.timedelta(minutes=5),
    )
    payments = seeded.payment_ids
    html = await receipt_html(db, documents, payments[0])
    bare_render_ms(html)  # warm-up: imports, fonts
    await nyala_render_ms(db, documents, payments[:2])  # warm-up: the workers start
    nyala_p50: list[float] = []
    nyala_p99: list[float] = []
    bare_p50: list[float] = []
    bare_p99: list[float] = []
    lag_p99: list[float] = []
    lag_max: list[float] = []
    for rep in range(cfg.repetitions):
        batch = payments[2 + rep * per : 2 + (rep + 1) * per]
        latencies, lags = await nyala_render_ms(db, documents, batch)
        bare = [bare_render_ms(html) for _ in range(per)]
        nyala_p50.append(percentile(latencies, 50))
        nyala_p99.append(percentile(latencies, 99))
        bare_p50.append(percentile(bare, 50))
        bare_p99.append(percentile(bare, 99))
        lag_p99.append(percentile(lags, 99) if lags else 0.0)
        lag_max.append(max(lags, default=0.0))
        say(
            f"  receipts {rep + 1}/{cfg.repetitions}: Nyala p50 {nyala_p50[-1]:.0f} ms "
            f"p99 {nyala_p99[-1]:.0f} ms; bare xhtml2pdf p50 {bare_p50[-1]:.0f} ms; "
            f"loop lag p99 {lag_p99[-1]:.1f} ms"
        )
    return nyala_p50, nyala_p99, bare_p50, bare_p99, lag_p99, lag_max


# --- summaries --------------------------------------------------------------------------


async def summaries(cfg: PhaseConfig, say: Progress) -> Phase:
    """``send-tour-summaries --dry-run`` with ``summary_bookings`` bookings due, on a
    database of the safari app's own."""
    async with app_database(safari.migration_locations) as url:
        return await _summaries(cfg, url, say)


async def _summaries(cfg: PhaseConfig, url: str, say: Progress) -> Phase:
    db = Database(url)
    try:
        say(f"  seeding {cfg.summary_bookings:,} bookings…")
        await seed.bookings(
            db,
            cfg.summary_bookings,
            tag=f"{secrets.randbelow(1000):03d}",
            departure=due_date(safari.timezone),
            last_inbound_ago=dt.timedelta(minutes=5),
        )
    finally:
        await db.dispose()
    await startup_seconds(url)  # warm-up: bytecode caches
    runs: list[float] = []
    startup: list[float] = []
    for rep in range(cfg.repetitions):
        runs.append(await dry_run_seconds(url))
        startup.append(await startup_seconds(url))
        say(
            f"  summaries {rep + 1}/{cfg.repetitions}: {runs[-1]:.2f} s "
            f"(start-up alone {startup[-1]:.2f} s)"
        )
    phase = Phase()
    phase.figures = [
        Figure(
            "summaries_dry_run",
            f"`send-tour-summaries --days-before 7 --dry-run`, {cfg.summary_bookings:,} "
            "bookings due",
            "s",
            Summary.of(runs),
            "`python -m bot --help` (start-up alone)",
            Summary.of(startup),
            better="lower",
        )
    ]
    phase.details = {"bookings": cfg.summary_bookings}
    return phase


# --- memory -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryRun:
    """One server start: RSS idle, at the peak of a load, and after it."""

    conversations: int
    idle_mib: float
    peak_mib: float
    after_mib: float
    requests: int


async def _memory_run(
    cfg: PhaseConfig, url: str, workdir: Path, tag: str, conversations: int
) -> MemoryRun:
    port = free_port()
    env = nyala_env(url, workdir / "memory-flows")
    async with running("nyala-memory", nyala_command(port), port, env, workdir) as server:
        await asyncio.sleep(1.0)  # settle after start-up
        idle = rss_mib(server.process.pid) or 0.0
        # Spread the messages over every stored conversation (a stride coprime with it).
        stride = 7_919 if conversations % 7_919 else 7_907
        payloads = Payloads(tag, conversations, APP_SECRET, stride=stride)
        conn = await asyncpg.connect(url)
        try:
            mark = await inbound_mark(conn)
            started = dt.datetime.now(dt.UTC)
            async with PeakRSS(server.process.pid) as rss:
                load: LoadResult = await ack_run(
                    server.url,
                    payloads,
                    connections=cfg.connections,
                    duration=cfg.memory_load_seconds,
                )
                await wait_processed(conn, mark, started, cfg.drain_timeout)
        finally:
            await conn.close()
        after = rss_mib(server.process.pid) or 0.0
    return MemoryRun(conversations, idle, rss.peak, after, load.ok)


async def memory(cfg: PhaseConfig, url: str, workdir: Path, say: Progress) -> Phase:
    """RSS of one ``nyala serve``: idle and under load, with few and many conversations."""
    runs: dict[int, list[MemoryRun]] = {}
    conn = await asyncpg.connect(url)
    try:
        stored = 0
        for size in (cfg.memory_small, cfg.memory_large):
            tag = f"{secrets.randbelow(10_000):04d}"
            say(f"  seeding {size:,} conversations…")
            await seed.conversations(conn, size, prefix=f"2637{tag}")
            stored += size
            runs[size] = []
            for rep in range(cfg.memory_repetitions):
                run = await _memory_run(cfg, url, workdir, tag, size)
                runs[size].append(run)
                say(
                    f"  memory {size:,} {rep + 1}/{cfg.memory_repetitions}: "
                    f"idle {run.idle_mib:.0f} MiB, peak {run.peak_mib:.0f} MiB, "
                    f"after {run.after_mib:.0f} MiB "
                    f"({run.requests:,} webhooks; {stored:,} conversations stored)"
                )
    finally:
        await conn.close()
    small, large = runs[cfg.memory_small], runs[cfg.memory_large]
    phase = Phase()
    phase.figures = [
        Figure(
            "rss_idle", "`nyala serve` RSS idle (after start-up)", "MiB",
            Summary.of([r.idle_mib for r in small]), better="lower",
        ),
        Figure(
            "rss_load", f"`nyala serve` RSS peak under webhook load ({cfg.connections} "
            "connections)", "MiB", Summary.of([r.peak_mib for r in small]), better="lower",
        ),
        Figure(
            "rss_many_conversations",
            f"`nyala serve` RSS peak under load, {cfg.memory_large:,} conversations stored "
            f"(beside {cfg.memory_small:,})",
            "MiB",
            Summary.of([r.peak_mib for r in large]),
            f"the same with {cfg.memory_small:,} conversations stored",
            Summary.of([r.peak_mib for r in small]),
            better="lower",
        ),
    ]  # fmt: skip
    growth = (
        Summary.of([r.peak_mib for r in large]).median
        / Summary.of([r.peak_mib for r in small]).median
        - 1
    )
    phase.notes.append(
        f"Memory: the peak RSS under load changed by {growth:+.1%} from {cfg.memory_small:,} "
        f"to {cfg.memory_large:,} stored conversations (target: within ±10%); the load "
        "spreads its messages over every stored conversation."
    )
    phase.details = {str(size): [asdict(r) for r in rows] for size, rows in runs.items()}
    return phase


# --- reports (bench/reports.py, when present) --------------------------------------------


def reports_module_available() -> bool:
    """Whether ``bench/reports.py`` (issue 6) is in the tree."""
    return importlib.util.find_spec("bench.reports") is not None


def _slowest(timings: list[Any], source_prefix: str) -> Any | None:
    chosen = [t for t in timings if t.range == "7 days" and t.source.startswith(source_prefix)]
    return max(chosen, key=lambda t: t.median_ms, default=None)


async def reports(cfg: PhaseConfig, say: Progress) -> Phase | None:
    """Report latencies via ``bench.reports.run_report_bench`` (``None`` if it is absent).

    Each size gets its own database, filled set-based, timed, dropped. The main table
    shows the slowest report over 7 days, from the events and from the snapshots; every
    report and range is in the section below it.
    """
    if not reports_module_available():
        return None
    from bench.reports import run_report_bench

    phase = Phase()
    sections: list[str] = []
    details: list[dict[str, Any]] = []
    for backend, events in cfg.report_sizes:
        say(f"  reports: {backend}, {events:,} step events (generating…)")
        result = await run_report_bench(events=events, backend=backend, reps=cfg.repetitions)
        shown = "PostgreSQL" if backend == "postgresql" else "SQLite"
        target = 500 if backend == "sqlite" else 100
        for prefix, label, goal in (
            ("events", "from the events", target),
            ("snapshots", "snapshot-backed", 50 if backend == "postgresql" else target),
        ):
            slowest = _slowest(result.timings, prefix)
            if slowest is None:
                continue
            phase.figures.append(
                Figure(
                    f"report_{backend}_{events}_{prefix}",
                    f"Slowest report over 7 days, {label} ({shown}, {result.events:,} step "
                    f"events; `{slowest.report}`; target ≤ {goal} ms)",
                    "ms",
                    Summary(slowest.median_ms, slowest.min_ms, slowest.max_ms, ()),
                    better="lower",
                )
            )
        week = [t.median_ms for t in result.timings if t.range == "7 days"]
        say(
            f"  reports: {shown} {result.events:,} events generated in "
            f"{result.generate_seconds:.0f} s; slowest 7-day report {max(week, default=0):.0f} ms"
        )
        sections.append(result.table())
        details.append(asdict(result))
    phase.details = {"runs": details}
    phase.sections = sections
    return phase


# --- console (bench/console.py, when present) --------------------------------------------


def console_module_available() -> bool:
    """Whether ``bench/console.py`` (the operator console's page benchmark) is in the tree."""
    return importlib.util.find_spec("bench.console") is not None


async def console(cfg: PhaseConfig, say: Progress) -> Phase | None:
    """Console page latencies via ``bench.console.run`` (``None`` if it is absent): its own
    database filled with ``console_events`` step events, the real server, a logged-in
    admin, every page timed."""
    if not console_module_available() or cfg.console_events <= 0:
        return None
    from bench import console as console_bench

    say(f"  console: {cfg.console_events:,} step events (generating…)")
    pages = await console_bench.run(cfg.console_events, cfg.repetitions)
    slowest = max(pages, key=lambda p: p[1])
    page, median, low, high = slowest
    phase = Phase()
    phase.figures.append(
        Figure(
            "console_slowest_page",
            f"Slowest console page, logged in ({cfg.console_events:,} step events; `{page}`; "
            "target < 200 ms)",
            "ms",
            Summary(median, low, high, ()),
            better="lower",
        )
    )
    lines = [
        f"Console pages with {cfg.console_events:,} step events (`bench/console.py`), "
        f"{cfg.repetitions} requests per page after one warm-up:",
        "",
        "| page | median ms | min–max ms |",
        "|---|---:|---:|",
        *(f"| `{p}` | {m:.1f} | {lo:.1f}–{hi:.1f} |" for p, m, lo, hi in pages),
    ]
    phase.sections.append("\n".join(lines))
    phase.details = {"events": cfg.console_events, "pages": [list(p) for p in pages]}
    say(f"  console: {len(pages)} pages, slowest {median:.0f} ms ({page})")
    return phase
