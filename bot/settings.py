"""The framework's configuration from environment variables (and an optional ``.env``
file). An app with settings of its own reads them with its own ``BaseSettings``.

Secrets are :class:`pydantic.SecretStr`: they never appear in ``repr`` or logs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage import DEFAULT_DATABASE_URL

DEFAULT_API_BASE = "https://graph.facebook.com/v23.0"

DEFAULT_APP = "apps.safari"  # the built-in bot of the README


class Settings(BaseSettings):
    """Nyala's settings; each field's environment variable is named in its alias."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    app: str = Field(DEFAULT_APP, validation_alias=AliasChoices("NYALA_APP", "app"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("NYALA_LOG_LEVEL", "log_level"))
    # SQL statement parameters hold names, phone numbers and token hashes: kept out of the
    # logs (even at DEBUG) unless this is set.
    log_sql_parameters: bool = Field(
        False,
        validation_alias=AliasChoices("NYALA_LOG_SQL_PARAMETERS", "log_sql_parameters"),
    )
    sweep_interval_seconds: float = Field(
        60.0, validation_alias=AliasChoices("NYALA_SWEEP_INTERVAL", "sweep_interval_seconds")
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices("NYALA_SHUTDOWN_GRACE", "shutdown_grace_seconds"),
    )
    batch_size: int = Field(
        32,
        ge=1,
        le=500,
        validation_alias=AliasChoices("NYALA_BATCH_SIZE", "batch_size"),
    )
    processing_workers: int = Field(
        2,
        ge=1,
        le=64,
        validation_alias=AliasChoices("NYALA_PROCESSING_WORKERS", "processing_workers"),
    )
    processing: Literal["here", "elsewhere"] = Field(
        "here",
        validation_alias=AliasChoices("NYALA_PROCESSING", "processing"),
    )
    whatsapp_access_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("WHATSAPP_ACCESS_TOKEN", "whatsapp_access_token")
    )
    whatsapp_app_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("WHATSAPP_APP_SECRET", "whatsapp_app_secret")
    )
    whatsapp_verify_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("WHATSAPP_VERIFY_TOKEN", "whatsapp_verify_token")
    )
    whatsapp_phone_number_id: str | None = Field(
        None,
        validation_alias=AliasChoices("WHATSAPP_PHONE_NUMBER_ID", "whatsapp_phone_number_id"),
    )
    whatsapp_api_base: str = Field(
        DEFAULT_API_BASE, validation_alias=AliasChoices("WHATSAPP_API_BASE", "whatsapp_api_base")
    )
    send_rate: float = Field(
        80.0, gt=0, validation_alias=AliasChoices("NYALA_SEND_RATE", "send_rate")
    )
    processing_nice: int = Field(
        10,
        ge=0,
        le=19,
        validation_alias=AliasChoices("NYALA_PROCESSING_NICE", "processing_nice"),
    )
    ack_pressure: int = Field(
        8,
        ge=0,
        le=10_000,
        validation_alias=AliasChoices("NYALA_ACK_PRESSURE", "ack_pressure"),
    )
    ack_max_hold: float = Field(
        0.25,
        ge=0,
        le=5,
        validation_alias=AliasChoices("NYALA_ACK_MAX_HOLD", "ack_max_hold"),
    )
    send_lease_seconds: float = Field(
        60.0, gt=0, validation_alias=AliasChoices("NYALA_SEND_LEASE", "send_lease_seconds")
    )
    graph_timeout: float = Field(
        15.0, gt=0, validation_alias=AliasChoices("NYALA_GRAPH_TIMEOUT", "graph_timeout")
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        gt=1024,
        validation_alias=AliasChoices("NYALA_MAX_BODY_BYTES", "max_body_bytes"),
    )
    request_timeout: float = Field(
        30.0, gt=0, validation_alias=AliasChoices("NYALA_REQUEST_TIMEOUT", "request_timeout")
    )
    max_connections_per_address: int = Field(
        128,
        ge=0,
        validation_alias=AliasChoices(
            "NYALA_MAX_CONNECTIONS_PER_ADDRESS", "max_connections_per_address"
        ),
    )
    metrics_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("NYALA_METRICS_TOKEN", "metrics_token")
    )
    public_url: str | None = Field(
        None, validation_alias=AliasChoices("NYALA_PUBLIC_URL", "public_url")
    )
    # Inbound media (bot/files.py): WhatsApp's own limits per type by default.
    media_max_image_bytes: int = Field(
        5 * 1024 * 1024,
        gt=0,
        validation_alias=AliasChoices("NYALA_MEDIA_MAX_IMAGE_BYTES", "media_max_image_bytes"),
    )
    media_max_audio_bytes: int = Field(
        16 * 1024 * 1024,
        gt=0,
        validation_alias=AliasChoices("NYALA_MEDIA_MAX_AUDIO_BYTES", "media_max_audio_bytes"),
    )
    media_max_video_bytes: int = Field(
        16 * 1024 * 1024,
        gt=0,
        validation_alias=AliasChoices("NYALA_MEDIA_MAX_VIDEO_BYTES", "media_max_video_bytes"),
    )
    media_max_document_bytes: int = Field(
        100 * 1024 * 1024,
        gt=0,
        validation_alias=AliasChoices(
            "NYALA_MEDIA_MAX_DOCUMENT_BYTES", "media_max_document_bytes"
        ),
    )
    media_max_sticker_bytes: int = Field(
        100 * 1024,
        gt=0,
        validation_alias=AliasChoices("NYALA_MEDIA_MAX_STICKER_BYTES", "media_max_sticker_bytes"),
    )
    media_max_animated_sticker_bytes: int = Field(
        500 * 1024,
        gt=0,
        validation_alias=AliasChoices(
            "NYALA_MEDIA_MAX_ANIMATED_STICKER_BYTES", "media_max_animated_sticker_bytes"
        ),
    )
    media_max_image_pixels: int = Field(
        50_000_000,
        gt=0,
        validation_alias=AliasChoices("NYALA_MEDIA_MAX_IMAGE_PIXELS", "media_max_image_pixels"),
    )
    media_download_attempts: int = Field(
        8,
        gt=0,
        validation_alias=AliasChoices("NYALA_MEDIA_DOWNLOAD_ATTEMPTS", "media_download_attempts"),
    )

    @property
    def sandbox(self) -> bool:
        """No access token: replies are stored and shown, never sent."""
        return self.whatsapp_access_token is None

    @property
    def live(self) -> bool:
        """Replies go to WhatsApp: an access token and a phone number id are set."""
        return not self.sandbox and bool(self.whatsapp_phone_number_id)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("https://", "http://")):
            raise ValueError("NYALA_PUBLIC_URL must start with https:// (or http://)")
        return url

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # an empty token would let an empty Bearer in
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("NYALA_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return level
