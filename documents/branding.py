"""A business's look and contact details, printed on its documents.

Read from a YAML file the app ships (and a business may replace, e.g. through an
environment variable the app names); relative paths in it (``logo``, ``templates_dir``)
are relative to the file. The logo is read here and embedded as a ``data:`` URI, so the
renderer never fetches anything.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Annotated, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from documents.errors import BrandingError

__all__ = ["BrandColors", "Branding", "load_branding"]

LOGO_TYPES: Final = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
LOGO_MAX_BYTES: Final = 2 * 1024 * 1024

Colour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]


class BrandColors(BaseModel):
    """The document colours (``#RRGGBB``: they are written into the stylesheet)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    primary: Colour = "#2B3A28"
    accent: Colour = "#C8641E"
    muted: Colour = "#6B6F66"
    light: Colour = "#F4EFE6"


class Branding(BaseModel):
    """A business's look and contact details, from a branding YAML file.

    Attributes:
        company_name: the name printed in the header.
        tagline: a line under the name.
        logo_data_uri: the logo file, read and embedded as a ``data:`` URI (never a
            URL the renderer would fetch).
        colors: the colours.
        address: address lines.
        phone: the business phone number.
        email: the business e-mail address.
        website: the website, as printed.
        tax_id: a tax or registration number, printed when set.
        terms: terms and conditions for the footer.
        thank_you: the closing words.
        templates_dir: a folder of the business's own templates (falls back to the
            app's shipped ones for files it lacks).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    company_name: str = Field(min_length=1, max_length=120)
    tagline: str | None = None
    logo_data_uri: str | None = None
    colors: BrandColors = BrandColors()
    address: tuple[str, ...] = ()
    phone: str | None = None
    email: str | None = None
    website: str | None = None
    tax_id: str | None = None
    terms: str = ""
    thank_you: str = "Thank you for your business!"
    templates_dir: Path | None = None


def _logo_data_uri(path: Path) -> str:
    mime = LOGO_TYPES.get(path.suffix.lower())
    if mime is None:
        raise BrandingError(f"logo {path.name}: use a .png or .jpg file")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise BrandingError(f"logo {path}: {exc.strerror or exc}") from exc
    if len(content) > LOGO_MAX_BYTES:
        raise BrandingError(f"logo {path.name} is larger than {LOGO_MAX_BYTES} bytes")
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


@functools.lru_cache(maxsize=8)
def _load_branding(path: str, _mtime_ns: int) -> Branding:
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BrandingError(f"branding file {file}: {exc}") from exc
    if not isinstance(raw, dict):
        raise BrandingError(f"branding file {file}: expected a mapping")
    values = dict(raw)
    logo = values.pop("logo", None)
    if logo:
        values["logo_data_uri"] = _logo_data_uri(file.parent / str(logo))
    if values.get("templates_dir"):
        values["templates_dir"] = file.parent / str(values["templates_dir"])
    try:
        return Branding.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BrandingError(f"branding file {file}: {where}: {first['msg']}") from None


def load_branding(path: str | Path) -> Branding:
    """The branding in the YAML file ``path`` (cached until the file changes).

    Raises:
        BrandingError: the file or its logo cannot be read, or a value is invalid.
    """
    chosen = Path(path).resolve()
    try:
        mtime = chosen.stat().st_mtime_ns
    except OSError as exc:
        raise BrandingError(f"branding file {chosen}: {exc.strerror or exc}") from exc
    return _load_branding(str(chosen), mtime)
