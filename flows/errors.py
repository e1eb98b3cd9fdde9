"""Errors of the flow framework."""

from __future__ import annotations

from pathlib import Path

from storage.errors import NyalaError


class FlowError(NyalaError):
    """Something about a flow is wrong."""


class FlowDefinitionError(FlowError):
    """A flow definition is invalid; raised when it is loaded, never when it runs.

    The message names the file, the line and key when known, and what is wrong.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.key = key
        self.line = line
        self.reason = message
        where = str(path) if path is not None else "flow"
        if line is not None:
            where += f":{line}"
        if key:
            # A key with a newline or control character is quoted: errors stay one line.
            where += f": {key if key.isprintable() else repr(key)}"
        super().__init__(f"{where}: {message}")


class UnknownFlowError(FlowError):
    """A flow was asked for by a name the application does not have."""


class ActionError(FlowError):
    """A named action failed in a way the user should hear about (its message is shown).

    Args:
        message: what the user is told; they may answer again (a counted retry).
        code: a stable name of the reason (``stock.sold_out``), which analytics group
            errors by; default ``action``.
    """

    def __init__(self, message: str, *, code: str = "action") -> None:
        super().__init__(message)
        self.code = code
