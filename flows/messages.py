"""What users send and what the bot answers, independent of any channel.

Inbound messages are parsed by the channel (WhatsApp webhook, terminal chat) into a
:class:`UserMessage`; flows answer with :data:`Reply` values, which the engine stores as
outbound rows and the channel turns into its own format.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# WhatsApp's limits for interactive messages (see WHATSAPP.md §4).
MAX_BUTTONS = 3
MAX_LIST_ROWS = 10
BUTTON_TITLE_MAX = 20
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
LIST_BUTTON_MAX = 20
BODY_MAX = 1024
TEXT_MAX = 4096

MessageKind = Literal[
    "text",
    "reply",
    "image",
    "document",
    "audio",
    "video",
    "sticker",
    "location",
    "reaction",
    "contacts",
    "unsupported",
]
MEDIA_KINDS = frozenset({"image", "document", "audio", "video", "sticker"})


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """A file the user sent: the channel's media id plus what is known about it."""

    id: str
    mime_type: str
    sha256: str | None = None
    filename: str | None = None
    size: int | None = None
    caption: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """A map location, sent by the user or by the bot."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserMessage:
    """One message from a user.

    Attributes:
        id: the channel's unique message id (WhatsApp's ``wamid``); duplicates are dropped.
        kind: what was sent.
        text: the typed text, the caption of media, or the title of a tapped option.
        reply_id: the id of the tapped button or list row, for ``kind == "reply"``.
        media: the file, for media kinds.
        location: the shared location, for ``kind == "location"``.
        emoji: the reaction, for ``kind == "reaction"`` (``None`` when one was removed).
        timestamp: when the user sent it.
    """

    id: str
    kind: MessageKind
    text: str | None = None
    reply_id: str | None = None
    media: Media | None = None
    location: Location | None = None
    emoji: str | None = None
    timestamp: dt.datetime | None = None

    def to_payload(self) -> dict[str, Any]:
        """A JSON-safe dict, stored with the inbound row."""
        data = asdict(self)
        data["timestamp"] = self.timestamp.isoformat() if self.timestamp else None
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> UserMessage:
        """Rebuild a message stored with :meth:`to_payload`."""
        media = data.get("media")
        location = data.get("location")
        stamp = data.get("timestamp")
        return cls(
            id=data["id"],
            kind=data["kind"],
            text=data.get("text"),
            reply_id=data.get("reply_id"),
            media=Media(**media) if media else None,
            location=Location(**location) if location else None,
            emoji=data.get("emoji"),
            timestamp=dt.datetime.fromisoformat(stamp) if stamp else None,
        )

    @property
    def display(self) -> str:
        """A short text for analytics' ``input_value``: what the user sent."""
        if self.kind == "reply":
            return self.text or self.reply_id or ""
        if self.kind in MEDIA_KINDS and self.media is not None:
            return f"[{self.kind}] {self.media.filename or self.media.mime_type}"
        if self.kind == "location" and self.location is not None:
            return f"[location] {self.location.latitude},{self.location.longitude}"
        if self.kind == "reaction":
            return f"[reaction] {self.emoji or ''}".strip()
        return self.text or f"[{self.kind}]"


@dataclass(frozen=True, slots=True)
class Option:
    """A reply button or list row: the id the bot gets back and the title the user sees."""

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Text:
    """A plain text message."""

    body: str

    def __post_init__(self) -> None:
        if not self.body.strip():
            raise ValueError("a text message needs a body")
        if len(self.body) > TEXT_MAX:
            object.__setattr__(self, "body", self.body[: TEXT_MAX - 1] + "…")


@dataclass(frozen=True, slots=True)
class Buttons:
    """A message with up to three reply buttons."""

    body: str
    options: tuple[Option, ...]
    header: str | None = None
    footer: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.options) <= MAX_BUTTONS:
            raise ValueError(f"reply buttons need 1 to {MAX_BUTTONS} options")
        if len({o.id for o in self.options}) != len(self.options):
            raise ValueError("button ids must be unique")
        titles = tuple(Option(o.id, shorten(o.title, BUTTON_TITLE_MAX)) for o in self.options)
        object.__setattr__(self, "options", titles)
        object.__setattr__(self, "body", shorten_body(self.body, BODY_MAX))


@dataclass(frozen=True, slots=True)
class ListMenu:
    """A list message: a button that opens up to ten rows."""

    body: str
    options: tuple[Option, ...]
    button: str = "Choose"
    header: str | None = None
    footer: str | None = None
    section_title: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.options) <= MAX_LIST_ROWS:
            raise ValueError(f"a list needs 1 to {MAX_LIST_ROWS} rows")
        if len({o.id for o in self.options}) != len(self.options):
            raise ValueError("list row ids must be unique")
        rows = tuple(
            Option(
                o.id,
                shorten(o.title, ROW_TITLE_MAX),
                shorten(o.description, ROW_DESCRIPTION_MAX) if o.description else None,
            )
            for o in self.options
        )
        object.__setattr__(self, "options", rows)
        object.__setattr__(self, "button", shorten(self.button, LIST_BUTTON_MAX))
        object.__setattr__(self, "body", shorten_body(self.body, TEXT_MAX))


@dataclass(frozen=True, slots=True)
class Document:
    """A file for the user, stored in ``stored_files`` (``file_id``)."""

    file_id: int
    filename: str
    caption: str | None = None


@dataclass(frozen=True, slots=True)
class LocationPin:
    """A map pin for the user."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Template:
    """An approved WhatsApp template, for messages outside the 24-hour window.

    ``fallback`` is the same content as plain text, used by the sandbox and chat.
    """

    name: str
    language: str
    parameters: tuple[str, ...] = ()
    fallback: str = ""
    buttons: tuple[Option, ...] = field(default=())


Reply = Text | Buttons | ListMenu | Document | LocationPin | Template

_KINDS: dict[str, type[Any]] = {
    "text": Text,
    "buttons": Buttons,
    "list": ListMenu,
    "document": Document,
    "location": LocationPin,
    "template": Template,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}


def shorten_body(text: str, limit: int) -> str:
    """Cut a multi-line body to ``limit`` characters, keeping its line breaks."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reply_kind(reply: Reply) -> str:
    """The stored kind name of a reply (``text``, ``buttons``, ``list``, ...)."""
    return _NAMES[type(reply)]


def reply_to_payload(reply: Reply) -> dict[str, Any]:
    """A JSON-safe dict for the outbound row."""
    return asdict(reply)


def reply_from_payload(kind: str, data: dict[str, Any]) -> Reply:
    """Rebuild a reply stored with :func:`reply_to_payload`."""
    cls = _KINDS[kind]
    values = dict(data)
    if "options" in values:
        values["options"] = tuple(Option(**o) for o in values["options"])
    if kind == "template":
        values["parameters"] = tuple(values.get("parameters", ()))
        values["buttons"] = tuple(Option(**o) for o in values.get("buttons", ()))
    result: Reply = cls(**values)
    return result


def reply_options(reply: Reply) -> tuple[Option, ...]:
    """The options a user can tap in ``reply`` (none for plain messages)."""
    if isinstance(reply, Buttons | ListMenu):
        return reply.options
    if isinstance(reply, Template):
        return reply.buttons
    return ()


def reply_text(reply: Reply) -> str:
    """The readable text of a reply, for chat transcripts and tests."""
    if isinstance(reply, Text):
        return reply.body
    if isinstance(reply, Buttons | ListMenu):
        return reply.body
    if isinstance(reply, Document):
        return reply.caption or reply.filename
    if isinstance(reply, LocationPin):
        return reply.name or f"{reply.latitude},{reply.longitude}"
    return reply.fallback or reply.name
