"""The safari app's own settings, read from the environment when the app starts.

Omari (``OMARI_*``), the branding file (``NYALA_BRANDING``) and the number of PDF render
workers (``NYALA_RENDER_WORKERS``). The public URL Omari calls back on is the host's
(``NYALA_PUBLIC_URL``, :class:`bot.settings.Settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_BRANDING", "SafariSettings"]

DEFAULT_BRANDING: Final = Path(__file__).parent / "documents" / "branding.yaml"


class SafariSettings(BaseSettings):
    """What the safari app reads from the environment.

    Attributes:
        omari_api_base: Omari's API base URL (``OMARI_API_BASE``).
        omari_merchant_key: the merchant API key (``OMARI_MERCHANT_KEY``, a secret).
        omari_callback_secret: the shared secret of Omari's signed callbacks
            (``OMARI_CALLBACK_SECRET``); unset, the callback answers 503.
        omari_timeout: seconds for one request to Omari (``OMARI_TIMEOUT``).
        branding: the branding YAML printed on receipts and itineraries
            (``NYALA_BRANDING``; default: the shipped one).
        render_workers: PDF render worker processes (``NYALA_RENDER_WORKERS``).
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    omari_api_base: str | None = Field(
        None, validation_alias=AliasChoices("OMARI_API_BASE", "omari_api_base")
    )
    omari_merchant_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OMARI_MERCHANT_KEY", "omari_merchant_key")
    )
    omari_callback_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OMARI_CALLBACK_SECRET", "omari_callback_secret")
    )
    omari_timeout: float = Field(
        15.0, gt=0, validation_alias=AliasChoices("OMARI_TIMEOUT", "omari_timeout")
    )
    branding: Path = Field(
        DEFAULT_BRANDING, validation_alias=AliasChoices("NYALA_BRANDING", "branding")
    )
    render_workers: int = Field(
        2, ge=1, le=32, validation_alias=AliasChoices("NYALA_RENDER_WORKERS", "render_workers")
    )

    @field_validator("branding", mode="before")
    @classmethod
    def _default_branding(cls, value: object) -> object:
        return value or DEFAULT_BRANDING  # NYALA_BRANDING= (empty): the shipped file

    @property
    def omari_configured(self) -> bool:
        """Omari's API and merchant key are set: payments go to the real (or fake) API."""
        return bool(self.omari_api_base) and self.omari_merchant_key is not None
