"""The root of Nyala's exceptions and the storage layer's subtree.

``NyalaError`` lives here because ``storage`` is the package every other package may
import; each layer derives its own errors from it.
"""

from __future__ import annotations


class NyalaError(Exception):
    """Base class of every error Nyala raises on purpose."""


class StorageError(NyalaError):
    """A storage operation failed."""


class DatabaseUnavailableError(StorageError):
    """The database cannot be reached; the message names the URL without its password."""


class NotFoundError(StorageError):
    """A row that must exist does not."""


class ConflictError(StorageError):
    """A write collides with existing data (a unique key, a concurrent update)."""
