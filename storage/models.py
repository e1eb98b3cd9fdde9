"""Import every table module so ``Base.metadata`` knows all of the framework's tables."""

from __future__ import annotations

from storage.audit import AuditEntry
from storage.base import Base
from storage.contacts import Contact
from storage.conversations import Conversation
from storage.counters import DocumentCounter
from storage.files import StoredFile
from storage.flow_sessions import FlowMetricSnapshot, FlowSession, FlowStepEvent
from storage.goals import GoalEvent
from storage.media import MediaDownload
from storage.messages import IgnoredUpdate, InboundMessage, OutboundMessage
from storage.operators import ConsoleSession, LoginAttempt, Operator

__all__ = [
    "AuditEntry",
    "Base",
    "ConsoleSession",
    "Contact",
    "Conversation",
    "DocumentCounter",
    "FlowMetricSnapshot",
    "FlowSession",
    "FlowStepEvent",
    "GoalEvent",
    "IgnoredUpdate",
    "InboundMessage",
    "LoginAttempt",
    "MediaDownload",
    "Operator",
    "OutboundMessage",
    "StoredFile",
]
