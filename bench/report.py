"""The results: figures beside their ceilings, as a Markdown table and as JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from bench.stats import Summary

DOCS = Path(__file__).resolve().parent.parent / "docs"
MARKDOWN = DOCS / "benchmarks.md"
JSON_FILE = DOCS / "benchmarks.json"
PROFILE_FILE = DOCS / "benchmarks-profile.txt"
LIBRARIES = ("aiohttp", "asyncpg", "SQLAlchemy", "python-statemachine")


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure, with the ceiling it is compared to."""

    key: str
    label: str
    unit: str
    nyala: Summary
    ceiling_label: str | None = None
    ceiling: Summary | None = None
    better: Literal["higher", "lower"] = "higher"

    @property
    def ratio(self) -> float | None:
        """Nyala's median over the ceiling's (throughput: below 1 is slower; latency:
        above 1 is slower)."""
        if self.ceiling is None or not self.ceiling.median:
            return None
        return self.nyala.median / self.ceiling.median

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "better": self.better,
            "nyala": self.nyala.to_json(),
            "ceiling_label": self.ceiling_label,
            "ceiling": self.ceiling.to_json() if self.ceiling else None,
            "ratio": self.ratio,
        }


@dataclass
class Report:
    """Everything one run produced."""

    mode: str
    command: str
    machine: dict[str, Any]
    config: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None  # pyinstrument text of the hottest path
    sections: list[str] = field(default_factory=list)  # more Markdown below the notes

    def to_json(self) -> dict[str, Any]:
        """The raw results."""
        return {
            "mode": self.mode,
            "command": self.command,
            "machine": self.machine,
            "config": self.config,
            "figures": [f.to_json() for f in self.figures],
            "notes": self.notes,
            "details": self.details,
        }


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(postgresql: str) -> dict[str, Any]:
    """What the figures were measured on."""
    libraries: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": postgresql,
        "libraries": libraries,
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
    }


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(summary: Summary | None, unit: str) -> str:
    if summary is None:
        return "—"
    return f"**{_number(summary.median)}** {unit} ({_number(summary.low)}–{_number(summary.high)})"


def table(figures: list[Figure]) -> str:
    """The Markdown table: each figure beside its ceiling and the ratio."""
    lines = [
        "| figure | Nyala: median (min–max) | ceiling | ceiling: median (min–max) "
        "| Nyala ÷ ceiling |",
        "|---|---|---|---|---|",
    ]
    for figure in figures:
        ratio = figure.ratio
        lines.append(
            f"| {figure.label} | {_cell(figure.nyala, figure.unit)} "
            f"| {figure.ceiling_label or '—'} | {_cell(figure.ceiling, figure.unit)} "
            f"| {'—' if ratio is None else f'{ratio:.2f}×'} |"
        )
    return "\n".join(lines)


TOP_COSTS = """\
## Where the time goes, and what was done

Profiled with pyinstrument before and after (`python -m bench --profile`; a full run
saves the profile below). The top three costs of the message path, and what was done:

1. **SQLAlchemy ORM work per message** (unit of work, identity map, statement building:
   about a third of the process's CPU). Before: 19 statements and 9 transaction statements
   per message, every row an ORM object. Now: inbound rows, replies and step events are
   written with Core statements (one multi-row `INSERT` each, `INSERT … ON CONFLICT DO
   NOTHING RETURNING` for the deduplicated inbound row), the contact, conversation and
   flow session are loaded in one query, the statements are built once, no empty
   transaction is spent to find that nothing is pending, and a message's work runs
   without a savepoint (a failure rolls back and is recorded in a transaction of its
   own). What remains is the ORM unit of work for the rows flow actions receive in their
   context (`ctx.contact`, `ctx.conversation`, the flow session): actions read and change
   them, so replacing them would change the action API.
2. **One transaction and one commit per webhook**, competing with processing for the
   one core and the connection pool. Now: group commit (`bot.whatsapp.inbox.GroupCommit`): the
   deliveries of concurrent requests are stored in one transaction (one query for the
   known contacts, one `INSERT` for new ones, one multi-row `INSERT` for the messages),
   each request answered only after its own rows are committed, a failing group retried
   delivery by delivery; and acknowledgements come first: while webhooks arrive, two
   contacts are processed at a time instead of eight, so the backlog is processed at a
   lower pace and catches up when the flood passes.
3. **python-statemachine building a machine per message** (≈ 0.3–0.4 ms with the
   engine's listeners: the instance registers its callbacks each time). The machine
   classes are built once per flow version; instances cannot be reused across messages
   (the library has no reset to another stored state), so this cost stays.

`send-tour-summaries --dry-run` spends its time in the safari app's
`apps.safari.summaries.plan`: one batched load of every due booking
(`load_many_summary_data`), then the messages of each booking composed in Python (not
rendered or sent), so beyond start-up it grows linearly with the bookings.
"""

_METHOD = """\
## What is measured

- **Webhook ack**: `nyala serve` (`python -m bot serve`, sandbox: no access token, so
  nothing is sent; an app secret, so every signature is checked; PostgreSQL) in its own
  process. An aiohttp client in the benchmark's process keeps {connections} keep-alive
  connections busy for {duration:g} s per repetition (after a {warmup:g} s warm-up); each
  POST is a signed Meta-like payload with one text message from one of
  {webhook_contacts:,} contacts and a unique wamid. Latency is per request, send to
  answer read. Nyala answers 200 after storing the message durably (one transaction),
  and processes it right after in the same process, so acknowledging competes with
  processing. **Ceiling**: a bare aiohttp handler in its own process that reads the body,
  checks the same HMAC, `json.loads` it and answers 200 (no database), driven by the same
  generator in the same run.
- **End-to-end**: {e2e_messages:,} messages from {e2e_contacts} contacts, each sending
  {script_text} (`tests/cafe.py`), through Nyala's `Engine` in the benchmark's process:
  `Engine.receive` stores each message, `Engine.process_pending` processes it (inbound →
  state transition → step events → reply row), at most {concurrency} contacts at once.
  Timed from the first store until the last message is processed. **Ceiling**: the same
  number of messages, same contacts in flight, each one bare asyncpg transaction (pool
  of {concurrency}) of four statements on the same tables: insert the inbound row, update
  the conversation's state, insert a step event, insert a reply row.
- **Webhook → reply row**: the messages of each webhook-ack repetition, from the first
  POST until the server wrote the last one's `processed_at` (the benchmark polls the
  database until none is pending). This is the whole pipeline at saturation in one
  server process.
- **State machine alone**: python-statemachine rebuilds the test café's order-flow
  machine at a stored state and sends it one `answer` event (`ask_size → ask_count`,
  `ask_count → confirm`), {machine_iterations:,} times per repetition; with the
  engine's listeners (step tracker, entry recorder), as the engine does, and without.

- **Webhook ack at {offered_rate:,.0f}/s offered**: the same server and payloads, but an
  open loop: request *i* is due at *i* ÷ {offered_rate:,.0f} s whatever happened to the
  earlier ones ({offered_duration:g} s per repetition); latency counts from the due time.
- **Outbox**: `bot.whatsapp.outbox.Outbox` in the benchmark's process sends
  {outbox_limited_messages:,} queued text replies (one per contact) at the configured limit
  of {send_limit:g}/s, then {outbox_unlimited_messages:,} without a limit, to the fake Graph
  API (`python -m bot fake-graph`, its own process, validating every request against
  Meta's spec). The rate is (n − 1) ÷ (last − first `sent_at`); the busiest second is the
  most messages accepted within any one-second window.
- **Receipts**: the safari app's `apps.safari.documents.receipts.generate_receipt` for paid
  payments without a receipt, one after another ({receipts_per_repetition} per repetition),
  with the app running (its lifespan's renderer) on a database of its own: lock, number,
  data, PDF rendered in the render worker processes, stored with its SHA-256, one
  transaction.
  **Ceiling**: `xhtml2pdf.pisa.pisaDocument` on the same receipt HTML in the benchmark's
  process. Event-loop lag: a task in the same loop sleeps 1 ms at a time while receipts
  render; the lag is how late it wakes up.
- **Summaries**: `python -m bot send-tour-summaries --days-before 7 --dry-run` (a command
  of the safari app, the default app) with {summary_bookings:,} confirmed bookings due
  (seeded with two travellers and a WhatsApp contact each), output to /dev/null.
  **Ceiling**: `python -m bot --help` (start-up).
- **Memory**: RSS of one `nyala serve` (VmRSS, sampled every 0.1 s), idle one second
  after start-up and at its peak under {memory_load_seconds:g} s of webhook load ({connections}
  connections, messages spread over every stored conversation) until every message is
  processed; once with {memory_small:,} conversations stored, then with {memory_large:,}
  more ({memory_repetitions} server start(s) each).

Every figure is the median of {repetitions} repetitions with the range; Nyala and its
ceiling alternate within a run. Throughput ratios below 1 and latency ratios above 1 mean
Nyala is slower than its ceiling. The load generator, the servers and PostgreSQL share
the machine's cores, so the ceilings are ceilings of this set-up, not of the hardware.
"""


def markdown(report: Report) -> str:
    """The whole ``docs/benchmarks.md``."""
    m = report.machine
    libraries = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    parts = [
        "# Benchmarks",
        "",
        f"Generated by `{report.command}` on {m['date']} (raw results: "
        "[`benchmarks.json`](benchmarks.json)). Rerun it from the repository root to "
        "refresh this page: `python -m bench` (the full run, about 30 minutes: it fills "
        "databases with 1M and 10M step events) or `python -m bench --quick` (about 2 "
        "minutes, small sizes); it needs PostgreSQL on 127.0.0.1:5432 (`NYALA_BENCH_PG_URL` "
        "overrides the admin URL) and creates and drops its own databases. "
        "`python -m bench --profile` shows where one end-to-end run's time goes "
        '(pyinstrument: `pip install -e ".[bench]"`).',
        "",
        "`python -m bench.wrk` (about 3 minutes; `--quick`: 2) is the independent load test of "
        "`nyala serve`: `wrk` (`apt-get install -y wrk`) with pre-signed webhooks from 4,000 "
        "contacts against the server and the bare handler, the open-loop ack latency at "
        "1,000/s, end to end in live mode to a lean Graph API stand-in "
        "(`python -m testing.fake_graph --lean`) beside a bare asyncpg transaction per "
        "message (20 tasks), CPU and PostgreSQL transactions per message, the outbox at its "
        "limit, and the load average before and after, all in one run; `--profile` adds "
        "py-spy's top functions of the server (`pip install py-spy`). `python -m bench.ack` "
        "gives the CPU cost of each step of the webhook's acknowledgement (verify, decode, "
        "parse, store, metrics) and the commits per request.",
        "",
        "Performance is measured here only, never by timed assertions in tests.",
        "",
        f"- **Machine**: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, {m['os']}",
        f"- **Software**: Python {m['python']}, PostgreSQL {m['postgresql']}; {libraries}",
        f"- **Mode**: {report.mode}, {report.config['repetitions']} repetitions per figure",
        "",
        table(report.figures),
        "",
    ]
    if report.notes:
        parts += [*(f"- {note}" for note in report.notes), ""]
    parts += [
        "## Against the targets",
        "",
        "The issue's stretch goals for this 2-core machine, where the load generator, the "
        "server and PostgreSQL share the cores (and, during this run, other engineers' "
        "work too: see the load note above).",
        "",
        targets(report),
        "",
    ]
    if report.sections:
        parts += [
            "## Reports and console pages",
            "",
            "From `bench/reports.py` and `bench/console.py`, run by this benchmark; times "
            "in milliseconds.",
            "",
        ]
        for section in report.sections:
            parts += [section, ""]
    parts.append(TOP_COSTS)
    if report.profile is not None:
        parts += [
            "The profile of this run's end-to-end hot path is in "
            "[`benchmarks-profile.txt`](benchmarks-profile.txt) (pyinstrument, "
            f"{report.config['e2e_messages']:,} messages through the `Engine`).",
            "",
        ]
    parts.append(_METHOD.format(**report.config))
    return "\n".join(parts)


def _jsonable(value: object) -> object:
    """Results kept as dataclasses (a phase's raw measurements) as plain dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def write(report: Report) -> tuple[Path, Path]:
    """Write ``docs/benchmarks.md`` and ``docs/benchmarks.json``."""
    DOCS.mkdir(exist_ok=True)
    MARKDOWN.write_text(markdown(report))
    raw = json.dumps(report.to_json(), indent=2, ensure_ascii=False, default=_jsonable)
    JSON_FILE.write_text(raw + "\n")
    if report.profile is not None:
        PROFILE_FILE.write_text(report.profile)
    return MARKDOWN, JSON_FILE


def _median(report: Report, key: str) -> float | None:
    for figure in report.figures:
        if figure.key == key:
            return figure.nyala.median
    return None


def _ratio(report: Report, key: str) -> float | None:
    for figure in report.figures:
        if figure.key == key:
            return figure.ratio
    return None


def _check(met: bool | None, text: str) -> str:
    mark = "—" if met is None else "met" if met else "**missed**"
    return f"| {text} | {mark} |"


def targets(report: Report) -> str:
    """The issue's targets against this run's medians, as a Markdown table."""
    rows = ["| target (issue 8) | this run |", "|---|---|"]

    def add(key: str, text: str, ok: Callable[[float], bool], shown: str) -> None:
        value = _median(report, key)
        if value is None:
            rows.append(_check(None, f"{text}: not measured in this run"))
            return
        rows.append(_check(ok(value), f"{text}: {shown.format(value)}"))

    add("webhook_ack_rate", "Webhook ack ≥ 3,000/s", lambda v: v >= 3000, "{:,.0f}/s")
    offered = report.config.get("offered_rate", 1000)
    add(
        "webhook_offered_p99",
        f"Webhook ack p99 < 20 ms at {offered:,.0f}/s offered",
        lambda v: v < 20,
        "{:,.1f} ms",
    )
    add("end_to_end_rate", "End-to-end ≥ 1,000 msg/s", lambda v: v >= 1000, "{:,.0f} msg/s")
    share = _ratio(report, "end_to_end_rate")
    rows.append(
        _check(
            None if share is None else share >= 0.3,
            "End-to-end ≥ 30% of the bare asyncpg rate: "
            + ("not measured" if share is None else f"{share:.0%}"),
        )
    )
    receipt = _ratio(report, "receipt_p50")
    rows.append(
        _check(
            None if receipt is None else receipt <= 1.3,
            "Receipt end to end ≤ 1.3× bare xhtml2pdf (p50): "
            + ("not measured" if receipt is None else f"{receipt:.2f}×"),
        )
    )
    add("receipt_loop_lag_p99", "Event-loop lag p99 < 10 ms while rendering", lambda v: v < 10,
        "{:,.1f} ms")  # fmt: skip
    limit = report.config.get("send_limit", 80)
    add("outbox_limited_rate", f"Outbox hits its limit ({limit:g}/s)", lambda v: v >= 0.97 * limit,
        "{:,.1f}/s")  # fmt: skip
    add(
        "outbox_limited_busiest_second",
        f"Outbox never exceeds it (busiest second ≤ {limit:g})",
        lambda v: v <= limit,
        "{:,.0f}",
    )
    memory = _ratio(report, "rss_many_conversations")
    rows.append(
        _check(
            None if memory is None else abs(memory - 1) <= 0.1,
            "RSS flat (±10%) from few to many stored conversations: "
            + ("not measured" if memory is None else f"{memory - 1:+.1%}"),
        )
    )
    bookings = report.config.get("summary_bookings", 10_000)
    add("summaries_dry_run", f"`send-tour-summaries --dry-run` over {bookings:,} bookings < 10 s",
        lambda v: v < 10, "{:,.1f} s")  # fmt: skip
    for figure in report.figures:
        if figure.key.startswith("report_") or figure.key == "console_slowest_page":
            goal = 200.0 if figure.key == "console_slowest_page" else None
            if goal is None:
                goal = (
                    500.0
                    if "sqlite" in figure.key
                    else 50.0
                    if "snapshots" in figure.key
                    else 100.0
                )
            rows.append(
                _check(figure.nyala.median < goal if figure.key == "console_slowest_page"
                       else figure.nyala.median <= goal,
                       f"{figure.label}: {figure.nyala.median:,.1f} ms")
            )  # fmt: skip
    return "\n".join(rows)
