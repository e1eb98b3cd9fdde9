"""Flow analytics: automatic step tracking, the manual tracking API and the sweeper.

Imports only :mod:`storage`.
"""

from analytics.sweeper import abandon_idle_sessions
from analytics.tracking import StepTracker, TrackedEvent, start_session, track_step, write_events

__all__ = [
    "StepTracker",
    "TrackedEvent",
    "abandon_idle_sessions",
    "start_session",
    "track_step",
    "write_events",
]
