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

A template may also carry the content itself as a body parameter (an agent's reply from
the console: :attr:`flows.App.agent_template`, a :class:`TemplateRef`); its filled body
must then fit :data:`TEMPLATE_BODY_MAX`.
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

from flows.errors import FlowError
from flows.messages import Option, Reply, Template, reply_kind, reply_to_payload
from storage import Contact, OutboundMessage, OutboundStatus

__all__ = [
    "CUSTOMER_SERVICE_WINDOW",
    "TEMPLATE_BODY_MAX",
    "Delivery",
    "OutsideWindowError",
    "TemplateRef",
    "TemplateSpec",
    "Window",
    "approved_template",
    "configured_template",
    "contact_window",
    "in_window",
    "load_template_specs",
    "queue_outreach",
]

CUSTOMER_SERVICE_WINDOW: Final = dt.timedelta(hours=24)
# The most characters a template's body may have, its parameters filled in (Meta's
# limit; a longer one is refused with 132005, "hydrated text too long").
TEMPLATE_BODY_MAX: Final = 1024


class OutsideWindowError(FlowError):
    """Free-form messages were to be queued outside the 24-hour window with no template
    to send instead (WhatsApp would refuse them with 131047); nothing was queued."""


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


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """An approved template named by its ``key`` in an app's templates ``file`` (the
    format of :func:`load_template_specs`).

    Checked when made, so an app naming a missing file or key fails when it is defined;
    read again when used, so an edited file is picked up without a restart.

    Raises:
        ValueError: the file cannot be read or configures no template ``key``.
    """

    file: Path
    key: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "file", Path(self.file))
        try:
            specs = load_template_specs(self.file)
        except (OSError, yaml.YAMLError, AttributeError, TypeError) as exc:
            raise ValueError(f"{self.file}: cannot read the templates file ({exc})") from None
        if self.key not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise ValueError(f"{self.file}: no template {self.key!r} (templates: {known})")

    def spec(self) -> TemplateSpec:
        """The template as the file configures it now."""
        return load_template_specs(self.file)[self.key]


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


@dataclass(frozen=True, slots=True)
class Window:
    """A contact's 24-hour customer service window at ``now``.

    Attributes:
        last_inbound_at: when the customer last wrote (``None``: never).
        now: the moment it was read.
        sandbox: the contact is a sandbox contact (the console's simulator).
    """

    last_inbound_at: dt.datetime | None
    now: dt.datetime
    sandbox: bool = False

    @property
    def open(self) -> bool:
        """Whether free-form messages may be sent."""
        return in_window(self.last_inbound_at, self.now)

    @property
    def closes_at(self) -> dt.datetime | None:
        """When the window closes (or closed); ``None`` if the customer never wrote."""
        if self.last_inbound_at is None:
            return None
        return self.last_inbound_at + CUSTOMER_SERVICE_WINDOW


async def contact_window(session: AsyncSession, contact_id: int, now: dt.datetime) -> Window:
    """The 24-hour window of a contact at ``now`` (closed for an unknown contact)."""
    found = (
        await session.execute(
            select(Contact.last_inbound_at, Contact.sandbox).where(Contact.id == contact_id)
        )
    ).first()
    if found is None:
        return Window(None, now)
    return Window(found[0], now, bool(found[1]))


async def queue_outreach(
    session: AsyncSession,
    contact_id: int,
    replies: Sequence[Reply],
    *,
    template: Template | None,
    now: dt.datetime,
    sandbox: bool,
) -> Delivery:
    """Queue business-initiated ``replies`` for a contact, or ``template`` outside the window.

    Nothing WhatsApp would refuse with 131047 (a free-form message outside the window)
    is ever queued: without a template the replies are queued only inside the window,
    else :class:`OutsideWindowError` is raised and nothing is stored.

    Args:
        session: the caller's transaction (the rows commit with it).
        contact_id: the WhatsApp contact.
        replies: the content.
        template: the approved template that opens the conversation (with a button that
            asks for the content, or the content as a parameter); ``None`` only where
            the app has none (then the window must be open).
        now: the time of queueing.
        sandbox: store the rows as ``sandbox`` (never sent) instead of ``queued``; a
            sandbox contact (the console's simulator) always gets ``sandbox`` rows.

    Raises:
        OutsideWindowError: no template and the window is closed.
    """
    window = await contact_window(session, contact_id, now)
    sandbox = sandbox or window.sandbox
    delivery = Delivery.DIRECT if window.open else Delivery.TEMPLATE
    if template is None and delivery is Delivery.TEMPLATE:
        raise OutsideWindowError(
            "the customer's 24-hour window is closed and no template was given"
        )
    messages: Sequence[Reply] = (
        replies if delivery is Delivery.DIRECT or template is None else [template]
    )
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
