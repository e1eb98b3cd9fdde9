"""Storage: SQLAlchemy 2 async tables, sessions, migrations and queries.

This package imports nothing else of Nyala's; every other package builds on it. It holds
the framework's own tables only; an app brings its tables in its own metadata
(:func:`new_metadata`) and migration branch.
"""

from storage.audit import AuditEntry
from storage.base import Base, Money, TimestampMixin, UTCDateTime, new_metadata, utcnow
from storage.contacts import Contact, get_or_create_contact
from storage.conversations import Conversation
from storage.counters import DocumentCounter, next_number
from storage.database import (
    DEFAULT_DATABASE_URL,
    Database,
    display_url,
    lock_contact,
    lock_contacts,
    lock_name,
    lock_names,
    try_lock_contacts,
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
    SessionOutcome,
    SessionStatus,
    SnapshotPeriod,
    StepAction,
)
from storage.goals import GoalEvent
from storage.ids import IdBlock
from storage.media import MediaDownload, MediaDownloadStatus
from storage.messages import (
    IgnoredUpdate,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
)
from storage.migrate import MigrationError, migrate
from storage.types import BigIntId, JSONDoc, str_enum

__all__ = [
    "DEFAULT_DATABASE_URL",
    "AuditEntry",
    "Base",
    "BigIntId",
    "ConflictError",
    "Contact",
    "Conversation",
    "Database",
    "DatabaseUnavailableError",
    "DocumentCounter",
    "FlowMetricSnapshot",
    "FlowSession",
    "FlowStepEvent",
    "GoalEvent",
    "IdBlock",
    "IgnoredUpdate",
    "InboundMessage",
    "InboundStatus",
    "JSONDoc",
    "MediaDownload",
    "MediaDownloadStatus",
    "MigrationError",
    "Money",
    "NotFoundError",
    "NyalaError",
    "OutboundMessage",
    "OutboundStatus",
    "SessionOutcome",
    "SessionStatus",
    "SnapshotPeriod",
    "StepAction",
    "StorageError",
    "StoredFile",
    "TimestampMixin",
    "UTCDateTime",
    "display_url",
    "get_or_create_contact",
    "lock_contact",
    "lock_contacts",
    "lock_name",
    "lock_names",
    "migrate",
    "new_metadata",
    "next_number",
    "str_enum",
    "try_lock_contacts",
    "utcnow",
]
