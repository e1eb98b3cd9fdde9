"""Building and signing webhook payloads like Meta's, for tests."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from bot.whatsapp.webhook import SIGNATURE_HEADER, signature

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token"
PHONE_NUMBER_ID = "106540352242922"

_ids = itertools.count(1)


def envelope(value: dict[str, Any]) -> dict[str, Any]:
    """Wrap a change value the way Meta does."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


def message(
    wa_id: str,
    *,
    text: str | None = None,
    reply: tuple[str, str] | None = None,
    wamid: str | None = None,
    timestamp: int | None = None,
    name: str = "Test User",
) -> dict[str, Any]:
    """One inbound message: typed ``text`` or a tapped ``reply`` (id, title)."""
    body: dict[str, Any] = {
        "from": wa_id,
        "id": wamid or f"wamid.TEST{next(_ids):08d}",
        "timestamp": str(timestamp or int(time.time())),
    }
    if reply is not None:
        body["type"] = "interactive"
        body["interactive"] = {
            "type": "button_reply",
            "button_reply": {"id": reply[0], "title": reply[1]},
        }
    else:
        body["type"] = "text"
        body["text"] = {"body": text or ""}
    return body


def messages_payload(*items: dict[str, Any], name: str = "Test User") -> dict[str, Any]:
    """A notification carrying ``items`` (all from the first item's sender)."""
    return envelope(
        {
            "contacts": [{"profile": {"name": name}, "wa_id": items[0]["from"]}],
            "messages": list(items),
        }
    )


def status_payload(wamid: str, status: str, recipient: str, **extra: Any) -> dict[str, Any]:
    """A delivery status notification."""
    return envelope(
        {
            "statuses": [
                {
                    "id": wamid,
                    "status": status,
                    "timestamp": str(int(time.time())),
                    "recipient_id": recipient,
                    **extra,
                }
            ]
        }
    )


def signed(document: Any, secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers of a signed POST."""
    raw = json.dumps(document).encode() if not isinstance(document, bytes) else document
    return raw, {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, raw)}
