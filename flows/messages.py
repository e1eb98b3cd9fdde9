"""What users send and what the bot answers, independent of any channel.

Inbound messages are parsed by the channel (WhatsApp webhook, terminal chat) into a
:class:`UserMessage`; flows answer with :data:`Reply` values, which the engine stores as
outbound rows and the channel turns into its own format.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import regex

# WhatsApp's limits for interactive messages (see WHATSAPP.md §4).
MAX_BUTTONS = 3
MAX_LIST_ROWS = 10
BUTTON_TITLE_MAX = 20
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
LIST_BUTTON_MAX = 20
BUTTON_ID_MAX = 256
ROW_ID_MAX = 200
BODY_MAX = 1024
LIST_BODY_MAX = 1024  # Meta's spec: BodyObject.text maxLength 1024 for every interactive type
TEXT_MAX = 4096

_GRAPHEME = regex.compile(r"\X")

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
    "edit",
    "revoke",
    "unsupported",
]
MEDIA_KINDS = frozenset({"image", "document", "audio", "video", "sticker"})


def graphemes(text: str) -> list[str]:
    """``text`` split into user-perceived characters (extended grapheme clusters): a
    family emoji, a flag or a letter with its combining accents is one item."""
    result: list[str] = _GRAPHEME.findall(text)
    return result


def _cut(text: str, limit: int) -> str:
    """The longest run of whole graphemes from the start of ``text`` that, with an
    ellipsis after it, fits in ``limit`` characters (code points)."""
    kept: list[str] = []
    used = 1  # the ellipsis
    for cluster in graphemes(text):
        if used + len(cluster) > limit:
            break
        kept.append(cluster)
        used += len(cluster)
    return "".join(kept)


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis.

    Whitespace runs become one space; the cut falls between grapheme clusters, so an
    emoji sequence or a flag is never split.
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else _cut(text, limit).rstrip() + "…"


class TitleClashError(ValueError):
    """Option titles that are not unique, or cannot be made unique within the limit."""


def fit_titles(titles: Sequence[str], limit: int) -> tuple[str, ...]:
    """``titles`` shortened to ``limit`` characters and still unique (WhatsApp rejects a
    message whose button titles repeat).

    A title that fits is kept. When shortening makes two titles equal ("Large oat milk
    latte A" and "...latte B"), each clashing title keeps its start and as much of its
    end as it takes to tell them apart: "Large oat milk lat…A".

    Raises:
        ValueError: a title is empty or whitespace.
        TitleClashError: two titles are equal, or cannot be told apart within ``limit``.
    """
    cleaned = [" ".join(t.split()) for t in titles]
    for title in cleaned:
        if not title:
            raise ValueError("an option title must not be empty or only whitespace")
    if len(set(cleaned)) != len(cleaned):
        repeated = sorted({t for t in cleaned if cleaned.count(t) > 1})
        raise TitleClashError(f"option titles must be unique: {repeated[0]!r} repeats")
    fitted = [shorten(t, limit) for t in cleaned]
    if len(set(fitted)) == len(fitted):
        return tuple(fitted)
    clashing = [i for i, t in enumerate(fitted) if fitted.count(t) > 1]
    for tail in range(1, limit - 1):
        trial = list(fitted)
        for i in clashing:
            clusters = graphemes(cleaned[i])
            end = "".join(clusters[-tail:])
            if len(end) + 2 > limit:
                break
            trial[i] = _cut(cleaned[i], limit - len(end)).rstrip() + "…" + end
        else:
            if len(set(trial)) == len(trial):
                return tuple(trial)
    raise TitleClashError(
        f"option titles {[titles[i] for i in clashing]!r} cannot be told apart "
        f"in {limit} characters"
    )


def check_option_id(option_id: str, limit: int) -> None:
    """Refuse an option id WhatsApp would reject: empty, longer than ``limit``, with
    leading or trailing whitespace, or with a line break or other control character."""
    if not option_id.strip():
        raise ValueError("an option id must not be empty")
    if len(option_id) > limit:
        raise ValueError(f"option id {option_id[:40]!r}… is longer than {limit} characters")
    if option_id != option_id.strip() or not option_id.isprintable():
        raise ValueError(
            f"option id {option_id!r} must not have leading or trailing spaces "
            "or control characters"
        )


def _need_text(value: str, what: str) -> None:
    if not value.strip():
        raise ValueError(f"{what} must not be empty or only whitespace")


def template_parameter(value: str) -> str:
    """A template parameter WhatsApp accepts: no line break or tab and no run of four
    or more spaces (error 132018), and never empty (a dash stands in for nothing)."""
    return " ".join(value.split()) or "-"


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """A file the user sent: the channel's media id plus what is known about it."""

    id: str
    mime_type: str
    sha256: str | None = None
    filename: str | None = None
    size: int | None = None
    caption: str | None = None
    # Why the channel refused the file (its bytes are not what it claims, too large, a
    # decompression bomb, a checksum mismatch, or it could not be fetched): nothing was
    # stored, and a step expecting a file asks again with this reason.
    refused: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """A map location, sent by the user or by the bot."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Referral:
    """The click-to-WhatsApp ad (or post) a message came from: Meta's ``referral`` object.

    Kept on the contact when the message is processed, so a lead's source stays known
    (``ctwa_clid`` is what Meta's Conversions API attributes a later sale with).

    Attributes:
        source_url: the ad's or post's URL.
        source_id: the ad's id.
        source_type: ``"ad"`` or ``"post"``.
        headline: the ad's headline.
        body: the ad's primary text.
        media_type: ``"image"`` or ``"video"``.
        image_url: the ad's image, for image ads.
        video_url: the ad's video, for video ads.
        thumbnail_url: the video's thumbnail, for video ads.
        ctwa_clid: the click id (absent for clicks from WhatsApp Web).
        welcome_message: the greeting the ad showed the user, if it had one.
    """

    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    ctwa_clid: str | None = None
    welcome_message: str | None = None

    def to_payload(self) -> dict[str, str]:
        """The fields that are set, as a JSON-safe dict (``contacts.referral``)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Referral:
        """Rebuild a referral stored with :meth:`to_payload` (unknown keys are dropped)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and isinstance(v, str)})


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
        refers_to: for ``"edit"`` and ``"revoke"``, the id of the message the user edited
            or deleted (``None`` when WhatsApp does not say which). An edit carries the new
            content in ``text`` (and ``media`` for an edited caption); an edit WhatsApp
            could not show us has neither.
        referral: the ad the user tapped to send this message, if any.
    """

    id: str
    kind: MessageKind
    text: str | None = None
    reply_id: str | None = None
    media: Media | None = None
    location: Location | None = None
    emoji: str | None = None
    timestamp: dt.datetime | None = None
    refers_to: str | None = None
    referral: Referral | None = None

    def to_payload(self) -> dict[str, Any]:
        """A JSON-safe dict, stored with the inbound row."""
        data = asdict(self)
        data["timestamp"] = self.timestamp.isoformat() if self.timestamp else None
        data["referral"] = self.referral.to_payload() if self.referral else None
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> UserMessage:
        """Rebuild a message stored with :meth:`to_payload`."""
        media = data.get("media")
        location = data.get("location")
        stamp = data.get("timestamp")
        referral = data.get("referral")
        return cls(
            id=data["id"],
            kind=data["kind"],
            text=data.get("text"),
            reply_id=data.get("reply_id"),
            media=Media(**media) if media else None,
            location=Location(**location) if location else None,
            emoji=data.get("emoji"),
            timestamp=dt.datetime.fromisoformat(stamp) if stamp else None,
            refers_to=data.get("refers_to"),
            referral=Referral.from_payload(referral) if referral else None,
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
        if self.kind == "edit":
            return f"[edited] {self.text}" if self.text else "[edited]"
        if self.kind == "revoke":
            return "[deleted]"
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
            raise ValueError(
                "a text message needs a body; it must not be empty or only whitespace"
            )
        object.__setattr__(self, "body", shorten_body(self.body, TEXT_MAX))


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
        _need_text(self.body, "the body of a button message")
        for o in self.options:
            check_option_id(o.id, BUTTON_ID_MAX)
        if len({o.id for o in self.options}) != len(self.options):
            raise ValueError("button ids must be unique")
        titles = fit_titles([o.title for o in self.options], BUTTON_TITLE_MAX)
        options = tuple(Option(o.id, t) for o, t in zip(self.options, titles, strict=True))
        object.__setattr__(self, "options", options)
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
        _need_text(self.body, "the body of a list message")
        _need_text(self.button, "the button label of a list message")
        for o in self.options:
            check_option_id(o.id, ROW_ID_MAX)
        if len({o.id for o in self.options}) != len(self.options):
            raise ValueError("list row ids must be unique")
        titles = fit_titles([o.title for o in self.options], ROW_TITLE_MAX)
        rows = tuple(
            Option(
                o.id,
                title,
                shorten(o.description, ROW_DESCRIPTION_MAX)
                if o.description and o.description.strip()
                else None,
            )
            for o, title in zip(self.options, titles, strict=True)
        )
        object.__setattr__(self, "options", rows)
        object.__setattr__(self, "button", shorten(self.button, LIST_BUTTON_MAX))
        object.__setattr__(self, "body", shorten_body(self.body, LIST_BODY_MAX))


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

    def __post_init__(self) -> None:
        params = tuple(template_parameter(p) for p in self.parameters)
        object.__setattr__(self, "parameters", params)
        for option in self.buttons:
            check_option_id(option.id, BUTTON_ID_MAX)


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
    """Cut a multi-line body to ``limit`` characters, keeping its line breaks; the cut
    falls between grapheme clusters."""
    return text if len(text) <= limit else _cut(text, limit) + "…"


def choice_message(
    body: str, options: Sequence[Option], *, button: str = "Choose"
) -> Buttons | ListMenu:
    """Reply buttons for up to three options without descriptions, else a list; also a
    list when the button titles cannot be told apart in 20 characters (rows have 24)."""
    if len(options) <= MAX_BUTTONS and not any(o.description for o in options):
        try:
            return Buttons(body, tuple(options))
        except TitleClashError:
            pass
    return ListMenu(body, tuple(options), button=button)


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
