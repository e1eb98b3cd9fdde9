"""The analytics models under the names the original requirements use."""

from storage.flow_sessions import (
    FlowMetricSnapshot,
    FlowSession,
    FlowStepEvent,
    FlowStepMetricSnapshot,
    SessionStatus,
    SnapshotPeriod,
    StepAction,
)

__all__ = [
    "FlowMetricSnapshot",
    "FlowSession",
    "FlowStepEvent",
    "FlowStepMetricSnapshot",
    "SessionStatus",
    "SnapshotPeriod",
    "StepAction",
]
