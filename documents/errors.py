"""Errors of the documents layer."""

from __future__ import annotations

from collections.abc import Sequence

from storage import NyalaError


class DocumentError(NyalaError):
    """A document could not be made."""


class RenderError(DocumentError):
    """The PDF could not be rendered (nothing was stored, no number was used)."""


class BrandingError(DocumentError):
    """The branding file is missing or invalid."""


class MissingGlyphError(RenderError):
    """A character of the document is in none of the renderer's fonts: it would print as
    a box, so the document is not made.

    Attributes:
        characters: the characters (may be empty when only ``detail`` is known).
    """

    def __init__(self, characters: Sequence[str] = (), detail: str | None = None) -> None:
        self.characters = tuple(characters)
        self.detail = detail
        listed = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in characters)
        super().__init__(
            "the document has characters no embedded font can draw: "
            + (listed or detail or "unknown")
        )

    def __reduce__(self) -> tuple[type[MissingGlyphError], tuple[tuple[str, ...], str | None]]:
        # Raised in a render worker and pickled back: rebuilt from its fields.
        return (type(self), (self.characters, self.detail))
