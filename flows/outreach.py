"""Business-initiated messages: what to queue inside and outside the 24-hour window.

WhatsApp lets a business send free-form messages only within 24 hours of the customer's
last message; outside that window only an approved template may open the conversation.
:func:`queue_outreach` applies that rule when something the customer did not just ask
for is queued (a reminder, a document after a late approval, a notice):

* window open: the messages themselves; the first carries the template as its
  ``fallback``, so if the window closes before the outbox sends it, the customer gets
  the template instead, and the rest wait for the customer's answer;
* window closed: the template alone, with a quick-reply button (``intent:...`` or
  ``flow:...``) that asks for the content when tapped. The content is made at that
  moment, so it is never stale, and the customer's tap opens the window for it.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.messages import Option, Reply, Template, reply_kind, reply_to_payload
from storage import Contact, OutboundMessage, OutboundStatus

__all__ = [
    "CUSTOMER_SERVICE_WINDOW",
    "Delivery",
    "TemplateSpec",
    "approved_template",
    "configured_template",
    "in_window",
    "load_template_specs",
    "queue_outreach",
]

CUSTOMER_SERVICE_WINDOW: Final = dt.timedelta(hours=24)


class Delivery(enum.StrEnum):
    """How an outreach was queued."""

    DIRECT = "direct"  # the messages, inside the window
    TEMPLATE = "template"  # the template alone; the content follows the customer's tap


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """An approved template: its name, language, body parameters (by field), text, and
    the quick-reply button that asks for the content (``title``, ``reply`` id)."""

    name: str
    language: str
    parameters: tuple[str, ...]
    text: str
    button_title: str = ""
    button_reply: str = ""

    def parameter_values(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """The body parameters, filled from ``values`` in the configured order."""
        return tuple(values.get(name, "") for name in self.parameters)

    def filled_text(self, values: Mapping[str, str]) -> str:
        """The text with ``values`` filled in (for the sandbox and the chat)."""
        try:
            return self.text.format(**values) if self.text else ""
        except (KeyError, IndexError, ValueError):
            return self.text


@functools.lru_cache(maxsize=16)
def _specs(path: Path, _mtime_ns: int) -> dict[str, TemplateSpec]:
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    language = str(raw.get("language", "en_US"))
    specs = {}
    for key, spec in (raw.get("templates") or {}).items():
        button = spec.get("button") or {}
        specs[str(key)] = TemplateSpec(
            name=str(spec.get("name", key)),
            language=str(spec.get("language", language)),
            parameters=tuple(str(p) for p in spec.get("parameters", ())),
            text=str(spec.get("text", "")),
            button_title=str(button.get("title", "")),
            button_reply=str(button.get("reply", "")),
        )
    return specs


def load_template_specs(path: Path | str) -> dict[str, TemplateSpec]:
    """An app's approved templates by key, from its YAML file (cached until it changes)::

    language: en_US
    templates:
      order_ready:
        name: order_ready
        parameters: [first_name, reference]
        text: "Hi {first_name}, your order {reference} is ready."
        button: {title: Show my order, reply: "flow:order_flow"}
    """
    file = Path(path).resolve()
    return _specs(file, file.stat().st_mtime_ns)


def approved_template(spec: TemplateSpec, values: Mapping[str, str]) -> Template:
    """An approved template filled with ``values``, with its quick-reply button (the tap
    asks for the content)."""
    buttons = (
        (Option(spec.button_reply, spec.button_title),)
        if spec.button_reply and spec.button_title
        else ()
    )
    return Template(
        spec.name,
        spec.language,
        spec.parameter_values(values),
        fallback=spec.filled_text(values),
        buttons=buttons,
    )


def configured_template(path: Path | str, key: str, values: Mapping[str, str]) -> Template:
    """The template configured under ``key`` in the app's templates file ``path``, filled.

    Raises:
        KeyError: the file configures no template ``key``.
    """
    return approved_template(load_template_specs(path)[key], values)


def in_window(last_inbound_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a contact who last wrote at ``last_inbound_at`` may get free-form messages."""
    return last_inbound_at is not None and now - last_inbound_at < CUSTOMER_SERVICE_WINDOW


async def queue_outreach(
    session: AsyncSession,
    contact_id: int,
    replies: Sequence[Reply],
    *,
    template: Template,
    now: dt.datetime,
    sandbox: bool,
) -> Delivery:
    """Queue business-initiated ``replies`` for a contact, or ``template`` outside the window.

    The template is required: a business-initiated message without one would be refused
    by WhatsApp outside the window (Meta's 131047), so there is no way to queue one.

    Args:
        session: the caller's transaction (the rows commit with it).
        contact_id: the WhatsApp contact.
        replies: the content.
        template: the approved template that opens the conversation (with a button that
            asks for the content).
        now: the time of queueing.
        sandbox: store the rows as ``sandbox`` (never sent) instead of ``queued``; a
            sandbox contact (the console's simulator) always gets ``sandbox`` rows.
    """
    found = (
        await session.execute(
            select(Contact.last_inbound_at, Contact.sandbox).where(Contact.id == contact_id)
        )
    ).first()
    last, sandbox_contact = found if found is not None else (None, False)
    sandbox = sandbox or bool(sandbox_contact)
    delivery = Delivery.DIRECT if in_window(last, now) else Delivery.TEMPLATE
    messages: Sequence[Reply] = replies if delivery is Delivery.DIRECT else [template]
    for index, reply in enumerate(messages):
        fallback = template if delivery is Delivery.DIRECT and index == 0 else None
        session.add(
            OutboundMessage(
                contact_id=contact_id,
                inbound_id=None,
                kind=reply_kind(reply),
                payload=reply_to_payload(reply),
                status=OutboundStatus.SANDBOX if sandbox else OutboundStatus.QUEUED,
                created_at=now,
                next_attempt_at=None if sandbox else now,
                fallback=reply_to_payload(fallback) if fallback is not None else None,
            )
        )
    return delivery
