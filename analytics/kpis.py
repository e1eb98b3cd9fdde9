"""The seed's key performance indicators, each judged against its target.

=====================  ===========================================================  ==========
KPI                    value                                                        target
=====================  ===========================================================  ==========
completion_rate        sessions completed / sessions started, %                     > 80 %
top_abandonment_points the 3 steps where most abandoned sessions stopped            top 3
avg_flow_duration      mean seconds from start to completion (completed sessions)   < 5 min
avg_time_per_step      mean seconds at a step, over every completed step            < 5 min
error_rate             sessions that ended in an error / sessions started, %        < 10 %
retry_recovery_rate    sessions that hit a retry and still completed / with retry   —
conversion_<goal>      completed sessions in which the goal was reached / completed, %  —
repeat_user_rate       sessions by a contact who had used the flow before, %        —
support_correlation    sessions handed to a person, %, and at which steps           —
=====================  ===========================================================  ==========

The conversion KPI is one per goal the caller names (``goals=app.goals.values()``:
``conversion_order``, labelled "Completion to order ratio" from the goal's label),
counted from the goal events recorded with ``ctx.reach_goal``; without goals it is one
``conversion`` KPI over any goal reached. No KPI reads an app's own tables.

A KPI without a target is informational (``passed`` is ``None``), as is every KPI of a
period without sessions.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NotRequired, TypedDict

from analytics import config
from analytics.aggregates import Collected, FlowTotals, Scope, collect
from analytics.goals import Goal
from analytics.periods import resolve_period
from analytics.reports import (
    PeriodInfo,
    Source,
    empty_notes,
    parse_action,
    percent,
    period_info,
    rounded,
    versions_in_order,
)
from storage import Database, StepAction

FIVE_MINUTES = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A KPI's target, e.g. ``> 80 %``."""

    comparison: str
    threshold: float
    unit: str

    def check(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        compare: Callable[[float, float], bool] = {
            ">": operator.gt,
            ">=": operator.ge,
            "<": operator.lt,
            "<=": operator.le,
        }[self.comparison]
        return compare(value, self.threshold)

    def __str__(self) -> str:
        threshold = f"{self.threshold:g}"
        return f"{self.comparison} {threshold}{' ' + self.unit if self.unit else ''}"


TARGETS: Mapping[str, Target] = MappingProxyType(
    {
        "completion_rate": Target(comparison=">", threshold=80.0, unit="%"),
        "avg_flow_duration": Target(comparison="<", threshold=FIVE_MINUTES, unit="s"),
        "avg_time_per_step": Target(comparison="<", threshold=FIVE_MINUTES, unit="s"),
        "error_rate": Target(comparison="<", threshold=10.0, unit="%"),
    }
)


class Kpi(TypedDict):
    """One KPI: its value, its target and whether the value meets it."""

    name: str
    label: str
    value: Any
    unit: str
    target: str | None
    passed: bool | None
    details: dict[str, Any]


class KpiReport(TypedDict):
    """The result of :func:`get_kpis`."""

    flow: str
    flow_version: NotRequired[str]
    period: PeriodInfo
    total_sessions: int
    kpis: list[Kpi]
    passed: int
    failed: int
    source: Source
    notes: list[str]
    versions: NotRequired[list[KpiReport]]


def _kpi(
    name: str,
    label: str,
    value: Any,
    unit: str,
    *,
    judged: bool,
    details: dict[str, Any] | None = None,
    target: str | None = None,
) -> Kpi:
    goal = TARGETS.get(name)
    passed: bool | None = None
    if goal is not None and judged and isinstance(value, int | float):
        passed = goal.check(float(value))
    return {
        "name": name,
        "label": label,
        "value": value,
        "unit": unit,
        "target": str(goal) if goal else target,
        "passed": passed,
        "details": details or {},
    }


def conversion_rows(totals: FlowTotals, goals: Sequence[Goal]) -> list[Kpi]:
    """The conversion KPIs: one per goal, or one over any goal without goals."""
    if not goals:
        return [
            _kpi(
                "conversion",
                "Completion to goal ratio",
                percent(totals.converted, totals.completed),
                "%",
                judged=False,
                details={"completed": totals.completed, "converted": totals.converted},
            )
        ]
    rows = []
    for goal in goals:
        converted = totals.goals.get(goal.name, 0)
        rows.append(
            _kpi(
                f"conversion_{goal.name}",
                f"Completion to {goal.label} ratio",
                percent(converted, totals.completed),
                "%",
                judged=False,
                details={"goal": goal.name, "completed": totals.completed, "converted": converted},
            )
        )
    return rows


def as_goals(goals: Iterable[Goal | str] | None) -> list[Goal]:
    """``goals`` as :class:`Goal` objects (a name becomes a goal labelled by it)."""
    found: dict[str, Goal] = {}
    for goal in goals or ():
        declared = goal if isinstance(goal, Goal) else Goal(goal)
        found.setdefault(declared.name, declared)
    return list(found.values())


def kpi_rows(totals: FlowTotals, goals: Sequence[Goal] = ()) -> list[Kpi]:
    """Every KPI of ``totals`` (a conversion KPI per goal in ``goals``)."""
    started = totals.total
    steps = sorted(totals.steps.values(), key=lambda s: s.step_name)
    abandoned = sorted(
        (s for s in steps if s.abandoned_here), key=lambda s: (-s.abandoned_here, s.step_name)
    )
    top = [
        {
            "step_name": s.step_name,
            "sessions": s.abandoned_here,
            "percentage": percent(s.abandoned_here, totals.abandoned),
        }
        for s in abandoned[:3]
    ]
    time_total = sum(s.time_spent_total for s in steps)
    time_count = sum(s.time_spent_count for s in steps)
    per_step = {
        s.step_name: rounded(s.avg_time_spent) for s in steps if s.avg_time_spent is not None
    }
    slowest = max(per_step.items(), key=lambda item: item[1] or 0.0, default=None)
    handed = sorted(
        (s for s in steps if s.handed_off_here),
        key=lambda s: (-s.handed_off_here, s.step_name),
    )
    errors_by_step = {s.step_name: s.errors for s in steps if s.errors}
    return [
        _kpi(
            "completion_rate",
            "Completion rate",
            percent(totals.completed, started),
            "%",
            judged=started > 0,
            details={"completed": totals.completed, "started": started},
        ),
        _kpi(
            "top_abandonment_points",
            "Top 3 abandonment points",
            top,
            "",
            judged=False,
            target="top 3",
            details={"abandoned_sessions": totals.abandoned},
        ),
        _kpi(
            "avg_flow_duration",
            "Average flow duration",
            rounded(totals.avg_duration),
            "s",
            judged=totals.avg_duration is not None,
            details={"completed_sessions": totals.duration_count},
        ),
        _kpi(
            "avg_time_per_step",
            "Average time per step",
            rounded(time_total / time_count) if time_count else None,
            "s",
            judged=time_count > 0,
            details={
                "steps": per_step,
                "slowest_step": slowest[0] if slowest else None,
                "slowest_seconds": slowest[1] if slowest else None,
            },
        ),
        _kpi(
            "error_rate",
            "Error rate",
            percent(totals.error, started),
            "%",
            judged=started > 0,
            details={
                "error_sessions": totals.error,
                "error_events": totals.errors,
                "retry_events": totals.retries,
                "errors_by_step": errors_by_step,
            },
        ),
        _kpi(
            "retry_recovery_rate",
            "Retry recovery rate",
            percent(totals.recovered_sessions, totals.retried_sessions),
            "%",
            judged=False,
            details={
                "sessions_with_retries": totals.retried_sessions,
                "recovered": totals.recovered_sessions,
            },
        ),
        *conversion_rows(totals, goals),
        _kpi(
            "repeat_user_rate",
            "Repeat user rate",
            percent(totals.returning, started),
            "%",
            judged=False,
            details={"returning_sessions": totals.returning, "started": started},
        ),
        _kpi(
            "support_correlation",
            "Sessions handed to a person",
            percent(totals.handed_off, started),
            "%",
            judged=False,
            details={
                "handed_off": totals.handed_off,
                "by_step": {s.step_name: s.handed_off_here for s in handed},
            },
        ),
    ]


def _report(
    flow: str,
    info: PeriodInfo,
    *,
    totals: FlowTotals,
    source: Source,
    notes: list[str],
    goals: Sequence[Goal],
) -> KpiReport:
    rows = kpi_rows(totals, goals)
    return {
        "flow": flow,
        "period": info,
        "total_sessions": totals.total,
        "kpis": rows,
        "passed": sum(1 for k in rows if k["passed"] is True),
        "failed": sum(1 for k in rows if k["passed"] is False),
        "source": source,
        "notes": notes,
    }


async def get_kpis(
    flow: str,
    days: int = 7,
    *,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    step: str | None = None,
    action: StepAction | str | None = None,
    by_version: bool = False,
    goals: Iterable[Goal | str] | None = None,
    db: Database | None = None,
    tz: dt.tzinfo | None = None,
    now: dt.datetime | None = None,
    use_snapshots: bool = True,
    include_sandbox: bool = False,
) -> KpiReport:
    """Every KPI of a flow over a period, each with its target and whether it passes.

    Args:
        goals: the app's goals (``app.goals.values()``, or names): one conversion KPI
            each, labelled from the goal; without them one KPI over any goal reached.
        The other arguments are those of :func:`analytics.reports.get_flow_completion_rate`.

    Returns:
        ``flow``, ``period``, ``total_sessions``, ``kpis`` (rows of ``name``, ``label``,
        ``value``, ``unit``, ``target``, ``passed``, ``details``), how many ``passed``
        and ``failed``, and with ``by_version`` the same per flow version.
    """
    period = resolve_period(
        days=days, date_from=date_from, date_to=date_to, tz=config.timezone(tz), now=now
    )
    scope = Scope(
        flow=flow, step=step, action=parse_action(action), include_sandbox=include_sandbox
    )
    wanted = as_goals(goals)
    async with config.database(db) as database, config.reading(database) as session:
        collected: Collected = await collect(
            session,
            scope,
            period,
            by_version=by_version,
            use_snapshots=use_snapshots,
            db=database,
            goals=[goal.name for goal in wanted],
            # No KPI reads the sessions that reached each step, nor when they did.
            reached=False,
        )
        overall = collected.overall
        notes = await empty_notes(session, flow, period, overall.total)
    info = period_info(period)
    source: Source = {
        "snapshot_days": collected.snapshot_days,
        "event_days": collected.event_days,
    }
    report = _report(flow, info, totals=overall, source=source, notes=notes, goals=wanted)
    if by_version:
        versions: list[KpiReport] = []
        for version, totals in versions_in_order(collected):
            part = _report(flow, info, totals=totals, source=source, notes=[], goals=wanted)
            part["flow_version"] = version
            versions.append(part)
        report["versions"] = versions
    return report
