"""Nyala's replies as request bodies of the Graph API's ``POST /{phone}/messages``.

Every body satisfies the ``Message`` schema of Meta's OpenAPI spec (v23.0), which is
stricter than the prose docs: ``recipient_type`` is required, location coordinates are
strings and a template's ``language`` carries ``policy: deterministic``.
"""

from __future__ import annotations

from typing import Any

from flows.messages import (
    Buttons,
    Document,
    ListMenu,
    LocationPin,
    Reply,
    Template,
    Text,
    shorten,
    template_parameter,
)

SECTION_TITLE_MAX = 24
HEADER_MAX = 60
FOOTER_MAX = 60


def recipient(wa_id: str | None, user_id: str | None) -> str:
    """The ``to`` of a message: ``+`` and the number, else the business-scoped user id.

    Without ``+`` Meta would prepend the business number's country code.
    """
    if wa_id:
        return f"+{wa_id}"
    if user_id:
        return user_id
    raise ValueError("a recipient needs a phone number or a user id")


def _base(to: str, kind: str, context: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
    }
    if context:
        body["context"] = {"message_id": context}
    return body


def _interactive_extras(header: str | None, footer: str | None) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if header and header.strip():
        extras["header"] = {"type": "text", "text": shorten(header, HEADER_MAX)}
    if footer and footer.strip():
        extras["footer"] = {"text": shorten(footer, FOOTER_MAX)}
    return extras


def message_body(
    reply: Reply,
    *,
    to: str,
    media_id: str | None = None,
    context: str | None = None,
) -> dict[str, Any]:
    """The JSON body that sends ``reply`` to ``to``.

    Args:
        reply: what to send.
        to: the recipient (see :func:`recipient`).
        media_id: for documents, the id returned by the media upload.
        context: the wamid of an inbound message to quote.
    """
    if isinstance(reply, Text):
        body = _base(to, "text", context)
        body["text"] = {"preview_url": "http://" in reply.body or "https://" in reply.body,
                        "body": reply.body}  # fmt: skip
        return body
    if isinstance(reply, Buttons):
        body = _base(to, "interactive", context)
        body["interactive"] = {
            "type": "button",
            **_interactive_extras(reply.header, reply.footer),
            "body": {"text": reply.body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": o.id, "title": o.title}}
                    for o in reply.options
                ]
            },
        }
        return body
    if isinstance(reply, ListMenu):
        rows = []
        for option in reply.options:
            row = {"id": option.id, "title": option.title}
            if option.description:
                row["description"] = option.description
            rows.append(row)
        body = _base(to, "interactive", context)
        body["interactive"] = {
            "type": "list",
            **_interactive_extras(reply.header, reply.footer),
            "body": {"text": reply.body},
            "action": {
                "button": reply.button,
                "sections": [
                    {
                        "title": shorten(
                            (reply.section_title or "").strip() or "Options",
                            SECTION_TITLE_MAX,
                        ),
                        "rows": rows,
                    }
                ],
            },
        }
        return body
    if isinstance(reply, Document):
        if media_id is None:
            raise ValueError("a document is sent by the media id of its upload")
        body = _base(to, "document", context)
        document: dict[str, Any] = {"id": media_id, "filename": reply.filename}
        if reply.caption and reply.caption.strip():
            document["caption"] = shorten(reply.caption, 1024)
        body["document"] = document
        return body
    if isinstance(reply, LocationPin):
        body = _base(to, "location", context)
        location: dict[str, Any] = {
            "latitude": str(reply.latitude),
            "longitude": str(reply.longitude),
        }
        if reply.name:
            location["name"] = reply.name
        if reply.address:
            location["address"] = reply.address
        body["location"] = location
        return body
    return template_body(reply, to=to)


def template_body(template: Template, *, to: str) -> dict[str, Any]:
    """The body of an approved template message (the only kind allowed outside the
    24-hour window)."""
    body = _base(to, "template", None)
    components: list[dict[str, Any]] = []
    if template.parameters:
        components.append(
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": template_parameter(p)} for p in template.parameters
                ],
            }
        )
    for index, option in enumerate(template.buttons):
        components.append(
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": str(index),
                "parameters": [{"type": "payload", "payload": option.id}],
            }
        )
    content: dict[str, Any] = {
        "name": template.name,
        "language": {"code": template.language, "policy": "deterministic"},
    }
    if components:
        content["components"] = components
    body["template"] = content
    return body


def mark_read_body(message_id: str, *, typing: bool = False) -> dict[str, Any]:
    """Mark an inbound message (and the ones before it) as read."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": message_id,
    }
    if typing:
        body["typing_indicator"] = {"type": "text"}
    return body
