"""``nyala report`` and ``nyala snapshot``: flow analytics from the command line.

Tables for people; ``--json`` prints exactly one JSON document on stdout (notes go to
stderr). Dates are local days in the app's timezone (``App(timezone=...)``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click
from sqlalchemy import select

from analytics import (
    AnalyticsError,
    generate_snapshots,
    get_error_analysis,
    get_flow_completion_rate,
    get_kpis,
    get_step_funnel,
)
from analytics.periods import MAX_DAYS, resolve_period, snapshot_periods, today_in
from bot.cli.common import cli_state, run_with_db
from documents.formatting import format_duration
from flows import App
from storage import Database, FlowMetricSnapshot, FlowSession, SnapshotPeriod, StepAction

T = TypeVar("T")
RELATIVE_DAYS = {"today": 0, "yesterday": 1}


class LocalDate(click.ParamType[dt.date | str, Any]):
    """``YYYY-MM-DD``, ``today`` or ``yesterday`` (resolved in the app's timezone)."""

    name = "DATE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.date | str:
        if isinstance(value, dt.date):
            return value
        text = str(value).strip().lower()
        if text in RELATIVE_DAYS:
            return text
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a date: use YYYY-MM-DD, today or yesterday", param, ctx)


def _resolve(value: dt.date | str | None, app: App) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return today_in(app.timezone) - dt.timedelta(days=RELATIVE_DAYS[value])


def _app(ctx: click.Context) -> App:
    return cli_state(ctx).app()


class UnknownFlow(click.ClickException):
    """A flow name the app does not define and no session was recorded for: one line,
    with the nearest names, and exit status 2 like any other usage error (an empty
    table would say "nothing happened" when the name was wrong)."""

    exit_code = 2


async def known_flows(db: Database, app: App) -> list[str]:
    """The app's flows, then any other flow with recorded sessions (manually tracked)."""
    async with db.read() as session:
        recorded = await session.scalars(select(FlowSession.flow_name).distinct())
        stored = set(recorded)
    return [*app.flows, *sorted(stored - set(app.flows))]


def unknown_flow_message(name: str, known: Sequence[str]) -> str:
    """``no flow 'x'`` with a did-you-mean (difflib) or the list of flows."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif known:
        hint = "the flows are " + ", ".join(known[:10]) + ("…" if len(known) > 10 else "")
    else:
        hint = "no flows yet"
    return f"no flow {name!r}: {hint}"


def _call(
    ctx: click.Context, work: Callable[[Database], Awaitable[T]], flows: Sequence[str] = ()
) -> T:
    app = _app(ctx)

    async def checked(db: Database) -> T:
        if flows:
            known = await known_flows(db, app)
            for name in flows:
                if name not in known:
                    raise UnknownFlow(unknown_flow_message(name, known))
        return await work(db)

    try:
        return run_with_db(checked, ctx)
    except AnalyticsError as exc:  # includes PeriodError: a bad range or filter
        raise click.UsageError(str(exc)) from None


def _emit_json(document: object) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def _notes(notes: Sequence[str]) -> None:
    for note in notes:
        click.echo(f"note: {note}", err=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: set[int]) -> str:
    """A plain-text table; columns in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers], *[["—" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def _heading(flow: str, period: dict[str, Any]) -> str:
    return f"{flow}, {period['date_from']} – {period['date_to']} ({period['timezone']})"


Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def _range_options(command: Callable[..., None]) -> Callable[..., None]:
    options: list[Decorator] = [
        click.argument("flow"),
        click.option(
            "--days",
            type=click.IntRange(1, MAX_DAYS),
            help="The last N local days, today included (default 7)",
        ),
        click.option("--from", "date_from", type=LocalDate(), help="First day (YYYY-MM-DD)"),
        click.option("--to", "date_to", type=LocalDate(), help="Last day (default today)"),
        click.option("--step", help="Only sessions with an event at this step"),
        click.option(
            "--action",
            type=click.Choice([a.value for a in StepAction]),
            help="Only sessions with an event of this action (at --step if given)",
        ),
        click.option("--by-version", is_flag=True, help="Report each flow version apart"),
        click.option(
            "--include-sandbox",
            is_flag=True,
            help="Count sandbox contacts (the console's chat simulator) too",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document"),
        click.pass_context,
    ]
    for option in reversed(options):
        command = option(command)
    return command


class _Range:
    """The parsed range and filter options, resolved against the app."""

    def __init__(
        self,
        ctx: click.Context,
        days: int | None,
        date_from: dt.date | str | None,
        date_to: dt.date | str | None,
    ) -> None:
        if days is not None and (date_from is not None or date_to is not None):
            raise click.UsageError("give either --days or --from/--to, not both")
        if date_to is not None and date_from is None:
            raise click.UsageError("--to needs --from")
        self.app = _app(ctx)
        self.days = days or 7
        self.date_from = _resolve(date_from, self.app)
        self.date_to = _resolve(date_to, self.app)

    def steps(self, flow: str) -> list[str] | None:
        spec = self.app.flows.get(flow)
        return list(spec.steps) if spec is not None else None

    def kwargs(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "date_from": self.date_from,
            "date_to": self.date_to,
            "tz": self.app.timezone,
        }


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def report() -> None:
    """Flow analytics reports: completion, funnel, errors, KPIs."""


@report.command()
@_range_options
def completion(  # noqa: PLR0917 - click passes every option
    ctx: click.Context,
    flow: str,
    days: int | None,
    date_from: dt.date | str | None,
    date_to: dt.date | str | None,
    step: str | None,
    action: str | None,
    by_version: bool,
    include_sandbox: bool,
    as_json: bool,
) -> None:
    """How many of FLOW's sessions completed, and how the others ended."""
    span = _Range(ctx, days, date_from, date_to)
    result = _call(
        ctx,
        lambda db: get_flow_completion_rate(
            flow,
            step=step,
            action=action,
            by_version=by_version,
            include_sandbox=include_sandbox,
            db=db,
            **span.kwargs(),
        ),
        (flow,),
    )
    _notes(result["notes"])
    if as_json:
        _emit_json(result)
        return
    parts = [result, *result.get("versions", [])]
    rows = [
        [
            part.get("flow_version", "all"),
            part["total_sessions"],
            part["completed_sessions"],
            part["abandoned_sessions"],
            part["error_sessions"],
            part["active_sessions"],
            f"{part['completion_rate']:.1f}%",
            format_duration(part["avg_duration_seconds"]),
        ]
        for part in parts
    ]
    click.echo(_heading(flow, dict(result["period"])))
    click.echo(
        _table(
            [
                "version",
                "sessions",
                "completed",
                "abandoned",
                "error",
                "active",
                "completion",
                "avg duration",
            ],
            rows,
            right={1, 2, 3, 4, 5, 6, 7},
        )
    )


@report.command()
@_range_options
def funnel(  # noqa: PLR0917 - click passes every option
    ctx: click.Context,
    flow: str,
    days: int | None,
    date_from: dt.date | str | None,
    date_to: dt.date | str | None,
    step: str | None,
    action: str | None,
    by_version: bool,
    include_sandbox: bool,
    as_json: bool,
) -> None:
    """How many of FLOW's sessions reached each step, in flow order."""
    span = _Range(ctx, days, date_from, date_to)
    rows = _call(
        ctx,
        lambda db: get_step_funnel(
            flow,
            steps=span.steps(flow),
            step=step,
            action=action,
            by_version=by_version,
            include_sandbox=include_sandbox,
            db=db,
            **span.kwargs(),
        ),
        (flow,),
    )
    _notes(rows.notes)
    if as_json:
        _emit_json(list(rows))
        return
    headers = ["step", "sessions", "%", "drop-off", "skipped", "retries", "errors", "avg time"]
    table = [
        [
            r["step_name"],
            r["sessions"],
            f"{r['percentage']:.1f}",
            r["drop_off"],
            r["skipped"],
            r["retries"],
            r["errors"],
            format_duration(r["avg_time_spent"]),
        ]
        for r in rows
    ]
    if by_version:
        headers.insert(0, "version")
        for row, r in zip(table, rows, strict=True):
            row.insert(0, r.get("flow_version", ""))
    click.echo(_heading(flow, _period_of(span)))
    if rows:
        first = 1 if by_version else 0
        click.echo(_table(headers, table, right=set(range(first + 1, len(headers)))))


def _period_of(span: _Range) -> dict[str, Any]:
    period = resolve_period(
        days=span.days, date_from=span.date_from, date_to=span.date_to, tz=span.app.timezone
    )
    return {
        "date_from": period.first_day.isoformat(),
        "date_to": period.last_day.isoformat(),
        "timezone": str(period.tz),
    }


@report.command()
@_range_options
def errors(  # noqa: PLR0917 - click passes every option
    ctx: click.Context,
    flow: str,
    days: int | None,
    date_from: dt.date | str | None,
    date_to: dt.date | str | None,
    step: str | None,
    action: str | None,
    by_version: bool,
    include_sandbox: bool,
    as_json: bool,
) -> None:
    """What went wrong in FLOW: errors and rejected answers per step and type.

    Here --step and --action choose rows (action error or retry), not sessions.
    """
    span = _Range(ctx, days, date_from, date_to)
    rows = _call(
        ctx,
        lambda db: get_error_analysis(
            flow,
            step=step,
            action=action,
            by_version=by_version,
            include_sandbox=include_sandbox,
            db=db,
            **span.kwargs(),
        ),
        (flow,),
    )
    _notes(rows.notes)
    if as_json:
        _emit_json(list(rows))
        return
    headers = ["step", "action", "type", "count", "sessions", "example input"]
    table = [
        [
            r["step_name"],
            r["action"],
            _clip(r["error_type"], 48),
            r["count"],
            r["sessions"],
            _clip(r["example_input"], 24),
        ]
        for r in rows
    ]
    if by_version:
        headers.insert(0, "version")
        for row, r in zip(table, rows, strict=True):
            row.insert(0, r.get("flow_version", ""))
    click.echo(_heading(flow, _period_of(span)))
    if rows:
        offset = 1 if by_version else 0
        click.echo(_table(headers, table, right={3 + offset, 4 + offset}))


def _clip(text: str | None, width: int) -> str | None:
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _kpi_value(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(f"{v['step_name']} ({v['sessions']})" for v in value) or "none"
    if unit == "s":
        return format_duration(float(value))
    if unit == "%":
        return f"{float(value):.1f}%"
    return str(value)


@report.command()
@_range_options
def kpis(  # noqa: PLR0917 - click passes every option
    ctx: click.Context,
    flow: str,
    days: int | None,
    date_from: dt.date | str | None,
    date_to: dt.date | str | None,
    step: str | None,
    action: str | None,
    by_version: bool,
    include_sandbox: bool,
    as_json: bool,
) -> None:
    """FLOW's KPIs, each against its target (exit status 0 either way)."""
    span = _Range(ctx, days, date_from, date_to)
    goals = list(cli_state(ctx).app().goals.values())
    result = _call(
        ctx,
        lambda db: get_kpis(
            flow,
            step=step,
            action=action,
            by_version=by_version,
            include_sandbox=include_sandbox,
            goals=goals,
            db=db,
            **span.kwargs(),
        ),
        (flow,),
    )
    _notes(result["notes"])
    if as_json:
        _emit_json(result)
        return
    verdict = {True: "PASS", False: "FAIL", None: "—"}
    for part in [result, *result.get("versions", [])]:
        title = _heading(flow, dict(result["period"]))
        if "flow_version" in part:
            title += f", version {part['flow_version']}"
        click.echo(f"{title}: {_plural(part['total_sessions'], 'session')}")
        rows = [
            [k["label"], _kpi_value(k["value"], k["unit"]), k["target"], verdict[k["passed"]]]
            for k in part["kpis"]
        ]
        click.echo(_table(["KPI", "value", "target", "result"], rows, right={1}))
        click.echo(f"{part['passed']} passed, {part['failed']} failed\n")


@click.command()
@click.option(
    "--period",
    "kind",
    type=click.Choice([p.value for p in SnapshotPeriod]),
    required=True,
    help="Snapshot length",
)
@click.option(
    "--date",
    "day",
    type=LocalDate(),
    help="A day in the period (default today; also 'yesterday')",
)
@click.option("--flow", "flows", multiple=True, help="Only this flow (repeatable)")
@click.option("--from", "date_from", type=LocalDate(), help="Backfill from this day")
@click.option("--to", "date_to", type=LocalDate(), help="Backfill up to this day (default today)")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshots as one JSON list")
@click.pass_context
def snapshot(  # noqa: PLR0917 - click passes every option
    ctx: click.Context,
    kind: str,
    day: dt.date | str | None,
    flows: tuple[str, ...],
    date_from: dt.date | str | None,
    date_to: dt.date | str | None,
    as_json: bool,
) -> None:
    """Write metric snapshots: one row per flow with sessions (cron-safe: replaces).

    Run it daily for yesterday ('nyala snapshot --period daily --date yesterday'):
    settled daily snapshots make long-range reports fast.
    """
    if day is not None and (date_from is not None or date_to is not None):
        raise click.UsageError("give either --date or --from/--to, not both")
    if date_to is not None and date_from is None:
        raise click.UsageError("--to needs --from")
    app = _app(ctx)
    period_kind = SnapshotPeriod(kind)
    today = today_in(app.timezone)
    if date_from is not None:
        first = _resolve(date_from, app)
        last = _resolve(date_to, app) or today
        assert first is not None
        if first > last:
            raise click.UsageError(
                f"the date range is reversed: {first.isoformat()} is after {last.isoformat()}"
            )
        if (last - first).days + 1 > MAX_DAYS:
            raise click.UsageError(f"the range is longer than {MAX_DAYS} days")
        days = [p.first_day for p in snapshot_periods(period_kind, first, last, app.timezone)]
    else:
        days = [_resolve(day, app) or today]
    wanted = list(flows) or None

    async def work(db: Database) -> list[FlowMetricSnapshot]:
        written: list[FlowMetricSnapshot] = []
        if len(days) == 1:
            return await generate_snapshots(
                period_kind, days[0], flows=wanted, db=db, tz=app.timezone
            )
        with click.progressbar(
            days, label=f"{kind} snapshots", file=sys.stderr, show_pos=True
        ) as bar:
            for first_day in bar:
                written += await generate_snapshots(
                    period_kind, first_day, flows=wanted, db=db, tz=app.timezone
                )
        return written

    written = _call(ctx, work, flows)
    if as_json:
        _emit_json([_snapshot_json(row, app) for row in written])
        return
    for row in written:
        start = row.period_start.astimezone(app.timezone).date().isoformat()
        rate = 100.0 * row.completed_sessions / row.total_sessions if row.total_sessions else 0.0
        click.echo(
            f"{kind} {start} {row.flow_name}: {_plural(row.total_sessions, 'session')}, "
            f"{rate:.1f}% completed, {_plural(row.error_sessions, 'error')}, "
            f"{row.active_sessions} still open"
        )
    if not written:
        scope = f" of {', '.join(flows)}" if flows else ""
        click.echo(f"no sessions{scope} in that period: no snapshot written", err=True)
    elif len(days) > 1:
        click.echo(f"wrote {len(written)} {kind} snapshots over {len(days)} periods", err=True)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _snapshot_json(row: FlowMetricSnapshot, app: App) -> dict[str, Any]:
    return {
        "flow": row.flow_name,
        "period": str(row.period),
        "date_from": row.period_start.astimezone(app.timezone).date().isoformat(),
        "date_to": (
            row.period_end.astimezone(app.timezone).date() - dt.timedelta(days=1)
        ).isoformat(),
        "total_sessions": row.total_sessions,
        "completed_sessions": row.completed_sessions,
        "abandoned_sessions": row.abandoned_sessions,
        "error_sessions": row.error_sessions,
        "active_sessions": row.active_sessions,
        "avg_duration_seconds": row.avg_duration_seconds,
        "total_errors": row.total_errors,
        "error_rate": row.error_rate,
    }
