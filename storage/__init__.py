"""Storage: SQLAlchemy 2 async tables, sessions, migrations and queries.

This package imports nothing else of Nyala's; every other package builds on it.
"""

from storage.base import Base, utcnow
from storage.bookings import (
    PAID_STATUSES,
    AuditEntry,
    Booking,
    BookingStatus,
    Customer,
    IdStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Traveler,
)
from storage.contacts import Contact, get_or_create_contact
from storage.conversations import Conversation
from storage.database import (
    DEFAULT_DATABASE_URL,
    Database,
    display_url,
    lock_contact,
    lock_name,
)
from storage.errors import (
    ConflictError,
    DatabaseUnavailableError,
    NotFoundError,
    NyalaError,
    StorageError,
)
from storage.files import StoredFile
from storage.flow_sessions import (
    FlowMetricSnapshot,
    FlowSession,
    FlowStepEvent,
    SessionStatus,
    SnapshotPeriod,
    StepAction,
)
from storage.messages import (
    IgnoredUpdate,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
)
from storage.migrate import migrate
from storage.notifications import ID_REMINDER, TOUR_SUMMARY, Notification
from storage.receipts import Receipt, ReceiptCounter, next_receipt_seq, receipt_number
from storage.tours import Departure, Tour

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ID_REMINDER",
    "PAID_STATUSES",
    "TOUR_SUMMARY",
    "AuditEntry",
    "Base",
    "Booking",
    "BookingStatus",
    "ConflictError",
    "Contact",
    "Conversation",
    "Customer",
    "Database",
    "DatabaseUnavailableError",
    "Departure",
    "FlowMetricSnapshot",
    "FlowSession",
    "FlowStepEvent",
    "IdStatus",
    "IgnoredUpdate",
    "InboundMessage",
    "InboundStatus",
    "NotFoundError",
    "Notification",
    "NyalaError",
    "OutboundMessage",
    "OutboundStatus",
    "Payment",
    "PaymentMethod",
    "PaymentStatus",
    "Receipt",
    "ReceiptCounter",
    "SessionStatus",
    "SnapshotPeriod",
    "StepAction",
    "StorageError",
    "StoredFile",
    "Tour",
    "Traveler",
    "display_url",
    "get_or_create_contact",
    "lock_contact",
    "lock_name",
    "migrate",
    "next_receipt_seq",
    "receipt_number",
    "utcnow",
]
