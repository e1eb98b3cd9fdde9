"""Import every table module so ``Base.metadata`` knows all tables (for Alembic)."""

from __future__ import annotations

from storage.base import Base
from storage.contacts import Contact
from storage.conversations import Conversation
from storage.files import StoredFile
from storage.flow_sessions import FlowMetricSnapshot, FlowSession, FlowStepEvent
from storage.messages import IgnoredUpdate, InboundMessage, OutboundMessage

__all__ = [
    "Base",
    "Contact",
    "Conversation",
    "FlowMetricSnapshot",
    "FlowSession",
    "FlowStepEvent",
    "IgnoredUpdate",
    "InboundMessage",
    "OutboundMessage",
    "StoredFile",
]
