"""What the safari app makes its documents with, while it runs: one service object."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from apps.safari.settings import DEFAULT_BRANDING
from documents import Branding, PdfRenderer, load_branding

__all__ = ["TEMPLATES_DIR", "TEMPLATES_FILE", "SafariDocuments"]

HERE: Final = Path(__file__).parent
TEMPLATES_DIR: Final = HERE / "templates"
TEMPLATES_FILE: Final = HERE / "templates.yaml"  # the approved WhatsApp templates


@dataclass(frozen=True, slots=True)
class SafariDocuments:
    """The renderer, the business timezone and the branding file of the running app
    (``runtime.services.get(SafariDocuments)``; made by the app's lifespan).

    Attributes:
        renderer: the PDF renderer (worker processes owned by the runtime).
        tz: the business timezone: dates on documents, the year of a receipt number.
        branding_file: the branding YAML (``NYALA_BRANDING``, else the shipped one).
    """

    renderer: PdfRenderer
    tz: dt.tzinfo
    branding_file: Path = DEFAULT_BRANDING

    def branding(self) -> Branding:
        """The branding (read again when the file changes)."""
        return load_branding(self.branding_file)
