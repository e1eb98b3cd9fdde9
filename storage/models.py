"""Import every table module so ``Base.metadata`` knows all tables (for Alembic)."""

from __future__ import annotations

from storage.base import Base
from storage.bookings import AuditEntry, Booking, Customer, Payment, Traveler
from storage.contacts import Contact
from storage.conversations import Conversation
from storage.files import StoredFile
from storage.flow_sessions import FlowMetricSnapshot, FlowSession, FlowStepEvent
from storage.messages import IgnoredUpdate, InboundMessage, OutboundMessage
from storage.notifications import Notification
from storage.operators import ConsoleSession, LoginAttempt, Operator  # noqa: F401 - console tables
from storage.provider_events import ProviderEvent
from storage.receipts import Receipt, ReceiptCounter
from storage.tours import Departure, Tour

__all__ = [
    "AuditEntry",
    "Base",
    "Booking",
    "Contact",
    "Conversation",
    "Customer",
    "Departure",
    "FlowMetricSnapshot",
    "FlowSession",
    "FlowStepEvent",
    "IgnoredUpdate",
    "InboundMessage",
    "Notification",
    "OutboundMessage",
    "Payment",
    "ProviderEvent",
    "Receipt",
    "ReceiptCounter",
    "StoredFile",
    "Tour",
    "Traveler",
]
