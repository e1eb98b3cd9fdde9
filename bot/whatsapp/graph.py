"""A small async client of the WhatsApp Cloud API (Graph API) endpoints Nyala uses."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from bot.settings import DEFAULT_API_BASE, Settings
from bot.whatsapp.errors import (
    GraphTimeoutError,
    GraphUnavailableError,
    WhatsAppAPIError,
    WhatsAppError,
    error_from_response,
)
from bot.whatsapp.message_bodies import mark_read_body

__all__ = ["DEFAULT_API_BASE", "GraphClient", "MediaTooLargeError", "MediaURLExpiredError"]

log = logging.getLogger("nyala.bot")


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class GraphClient:
    """Calls the Graph API with the business's token.

    Args:
        session: the aiohttp session (owned by the caller).
        base_url: e.g. ``https://graph.facebook.com/v23.0`` (tests point it at the fake).
        access_token: the system user's token; never logged.
        phone_number_id: the business phone number's id.
        timeout: seconds for one request; a timeout is :class:`GraphTimeoutError`, whose
            outcome is unknown (Meta may have accepted the message).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        access_token: str,
        phone_number_id: str,
        timeout: float = 15.0,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self.phone_number_id = phone_number_id
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    @classmethod
    def from_settings(cls, session: aiohttp.ClientSession, settings: Settings) -> GraphClient:
        """The client the settings describe (live mode: an access token is set)."""
        if settings.whatsapp_access_token is None:
            raise ValueError("WHATSAPP_ACCESS_TOKEN is not set: no Graph API client")
        return cls(
            session,
            base_url=settings.whatsapp_api_base,
            access_token=settings.whatsapp_access_token.get_secret_value(),
            phone_number_id=str(settings.whatsapp_phone_number_id),
            timeout=settings.graph_timeout,
        )

    async def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            async with self.session.request(
                method, url, headers=self._headers, timeout=self.timeout, **kwargs
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = None
                if response.status >= 400:
                    raise error_from_response(
                        response.status, body, retry_after=_retry_after(response.headers)
                    )
                return body
        except WhatsAppAPIError:
            raise
        except TimeoutError as exc:
            raise GraphTimeoutError(
                f"no answer from the Graph API within {self.timeout.total} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise GraphUnavailableError(
                f"cannot reach the Graph API: {type(exc).__name__}"
            ) from exc

    async def send_message(self, body: dict[str, Any]) -> str:
        """Send a message; returns the wamid Meta assigned (acceptance, not delivery)."""
        url = f"{self.base_url}/{self.phone_number_id}/messages"
        result = await self._request("POST", url, json=body)
        try:
            return str(result["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise WhatsAppAPIError("the Graph API accepted the message without an id") from exc

    async def mark_read(self, message_id: str, *, typing: bool = False) -> None:
        """Mark an inbound message as read (optionally showing a typing indicator)."""
        url = f"{self.base_url}/{self.phone_number_id}/messages"
        await self._request("POST", url, json=mark_read_body(message_id, typing=typing))

    async def upload_media(self, content: bytes, *, mime_type: str, filename: str) -> str:
        """Upload a file; returns its media id (valid for 30 days)."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", content, filename=filename, content_type=mime_type)
        url = f"{self.base_url}/{self.phone_number_id}/media"
        result = await self._request("POST", url, data=form)
        try:
            return str(result["id"])
        except (KeyError, TypeError) as exc:
            raise WhatsAppAPIError("the media upload returned no id") from exc

    async def media_info(self, media_id: str) -> dict[str, Any]:
        """``GET /{media-id}``: an inbound file's download URL (valid 5 minutes), type,
        checksum and size."""
        info = await self._request("GET", f"{self.base_url}/{media_id}")
        if not isinstance(info, dict) or not isinstance(info.get("url"), str):
            raise WhatsAppAPIError(f"no download URL for media {media_id}")
        return info

    async def fetch_media(self, url: str, *, max_bytes: int) -> bytes:
        """The bytes behind a URL from :meth:`media_info`, fetched with the token.

        Raises:
            MediaURLExpiredError: the URL is no longer valid (404, 401, 403, 410): ask
                :meth:`media_info` for a fresh one.
            MediaTooLargeError: more than ``max_bytes`` arrived (the rest is not read).
            WhatsAppAPIError: another error status (5xx are retryable).
            GraphTimeoutError, GraphUnavailableError: no answer.
        """
        try:
            async with self.session.get(url, headers=self._headers, timeout=self.timeout) as got:
                if got.status in (401, 403, 404, 410):
                    raise MediaURLExpiredError(f"the media URL answered {got.status}")
                if got.status >= 400:
                    try:
                        body = await got.json(content_type=None)
                    except (ValueError, aiohttp.ContentTypeError):
                        body = None
                    raise error_from_response(
                        got.status, body, retry_after=_retry_after(got.headers)
                    )
                if got.content_length is not None and got.content_length > max_bytes:
                    raise MediaTooLargeError(f"the file has {got.content_length} bytes")
                data = bytearray()
                async for chunk in got.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > max_bytes:
                        raise MediaTooLargeError(f"the file has more than {max_bytes} bytes")
                return bytes(data)
        except WhatsAppError:
            raise
        except TimeoutError as exc:
            raise GraphTimeoutError("media download timed out") from exc
        except aiohttp.ClientError as exc:
            raise GraphUnavailableError(f"cannot download media: {type(exc).__name__}") from exc


class MediaURLExpiredError(WhatsAppError):
    """A media download URL no longer works (they live 5 minutes): fetch a fresh one."""


class MediaTooLargeError(WhatsAppError):
    """A media file is larger than the limit of its type; the rest was not read."""
