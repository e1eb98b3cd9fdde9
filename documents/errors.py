"""Errors of the documents layer."""

from __future__ import annotations

from storage import NyalaError


class DocumentError(NyalaError):
    """A document could not be made."""


class RenderError(DocumentError):
    """The PDF could not be rendered (nothing was stored, no number was used)."""


class BrandingError(DocumentError):
    """The branding file is missing or invalid."""
