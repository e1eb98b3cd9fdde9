"""Flow analytics: automatic step tracking, the manual tracking API, the sweeper, and
reports, KPIs and snapshots.

Imports only :mod:`storage`.
"""

from analytics.config import AnalyticsContext, using
from analytics.errors import AnalyticsError, PeriodError
from analytics.goals import Goal
from analytics.kpis import get_kpis
from analytics.partitions import drop_step_events_before, ensure_step_event_partitions
from analytics.reports import get_error_analysis, get_flow_completion_rate, get_step_funnel
from analytics.snapshots import (
    generate_daily_snapshot,
    generate_monthly_snapshot,
    generate_snapshot,
    generate_snapshots,
    generate_weekly_snapshot,
    list_snapshots,
)
from analytics.sweeper import abandon_idle_sessions
from analytics.tracking import StepTracker, TrackedEvent, start_session, track_step, write_events

__all__ = [
    "AnalyticsContext",
    "AnalyticsError",
    "Goal",
    "PeriodError",
    "StepTracker",
    "TrackedEvent",
    "abandon_idle_sessions",
    "drop_step_events_before",
    "ensure_step_event_partitions",
    "generate_daily_snapshot",
    "generate_monthly_snapshot",
    "generate_snapshot",
    "generate_snapshots",
    "generate_weekly_snapshot",
    "get_error_analysis",
    "get_flow_completion_rate",
    "get_kpis",
    "get_step_funnel",
    "list_snapshots",
    "start_session",
    "track_step",
    "using",
    "write_events",
]
