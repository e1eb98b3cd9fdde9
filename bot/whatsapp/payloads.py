"""Typed updates parsed from a WhatsApp Cloud API webhook notification.

:func:`parse_webhook` turns a decoded webhook body (any JSON value) into a
:class:`WebhookBatch`: the users' messages as channel-independent
:class:`~flows.messages.UserMessage` values, the delivery statuses of our own messages, the
webhook-level errors, and a record of everything it ignored and why. It never raises for
the shape of the document: Meta must get a 200 for every signed notification, or it
retries for days (WHATSAPP.md §6).

Shape rules, applied to each message and status on its own so that one bad item never
costs the rest of the batch:

* A field we read that is present with the wrong type (an object where a string belongs,
  a timestamp that is not a number, a latitude that is not a number) skips that item with
  an :class:`Ignored` entry naming the field. Missing optional fields become ``None``.
* Numbers may arrive as strings and ids as numbers: both are accepted.
* Derived texts (the summary of shared contact cards, the error text of an unsupported
  message) use whatever parts are readable and never skip the message.
* User-visible strings (texts, captions, titles, names) keep their content, however
  long, except that NUL characters are dropped and unpaired surrogates become U+FFFD:
  PostgreSQL rejects NUL in ``text``/``jsonb``, lone surrogates cannot be encoded as
  UTF-8, and neither shows in WhatsApp. :attr:`IncomingMessage.raw` keeps the original
  object untouched.

Decisions beyond Meta's reference:

* ``system`` messages (``user_changed_number``, ``user_changed_user_id``) are ignored:
  they are notices about the user's identity, not something the user wrote, so no flow
  should answer them (and they carry the *old* number in ``from``).
* Messages inside a group (those with a ``group_id``) and group events (the
  ``group_*`` change fields) are ignored: Nyala's conversations are one-to-one.
* Flow replies (``interactive`` ``nfm_reply``) become ``"unsupported"`` with the reply's
  ``body`` as text: Nyala does not send WhatsApp Flows; ``response_json`` stays in ``raw``.
* ``order`` and any type this module does not know become ``"unsupported"``, so the
  engine can tell the user it did not understand.
* An edited message (``type: "edit"``, its new content in ``edit.message``) becomes
  ``"edit"`` with the new text or caption and the edited message's id in ``refers_to``.
  WhatsApp versions that cannot show edits send ``type: "unsupported"`` with
  ``unsupported.type: "edit"`` (and error 131051): an ``"edit"`` without content or id.
* A deleted message (``type: "revoke"``, ``revoke.original_message_id``; also spelled
  ``"deleted"``/``"delete"``, or ``"unsupported"`` with such an ``unsupported.type``)
  becomes ``"revoke"``; the engine never answers it.
* A ``referral`` (the click-to-WhatsApp ad the user came from) on any message is kept in
  :attr:`UserMessage.referral`; a malformed one is read as far as it is readable and never
  costs the message.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from flows.messages import Location, Media, MessageKind, Referral, UserMessage, shorten

__all__ = [
    "Ignored",
    "IncomingMessage",
    "ReportedError",
    "Sender",
    "StatusError",
    "StatusUpdate",
    "WebhookBatch",
    "message_payload",
    "parse_webhook",
]

WHATSAPP_OBJECT: Final = "whatsapp_business_account"
"""The ``object`` of every WhatsApp Business Account notification."""

CONTACTS_SUMMARY_MAX: Final = 200
"""Length limit of the text summarising shared contact cards."""

UNKNOWN_MIME_TYPE: Final = "application/octet-stream"
"""The MIME type given to media whose notification does not state one."""

_MEDIA_KINDS: Final[dict[str, MessageKind]] = {
    "image": "image",
    "document": "document",
    "audio": "audio",
    "video": "video",
    "sticker": "sticker",
}
_EDIT_TYPES: Final = frozenset({"edit", "edited"})
_REVOKE_TYPES: Final = frozenset({"revoke", "revoked", "delete", "deleted"})
_REFERRAL_FIELDS: Final = (
    "source_url",
    "source_id",
    "source_type",
    "headline",
    "body",
    "media_type",
    "image_url",
    "video_url",
    "thumbnail_url",
    "ctwa_clid",
)
_SURROGATES: Final = re.compile("[\ud800-\udfff]")
_SINGULAR: Final = {
    "entry": "entry",
    "changes": "change",
    "messages": "message",
    "statuses": "status",
    "errors": "error",
    "contacts": "contact",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Sender:
    """The WhatsApp user who sent a message.

    Users who adopted a username may come without a phone number; they are keyed on their
    business-scoped user id (BSUID) instead. At least one of the two ids is set.

    Attributes:
        wa_id: the user's phone number as digits (``messages[].from`` or
            ``contacts[].wa_id``), or ``None`` when WhatsApp withholds it.
        user_id: the business-scoped user id (``from_user_id`` or ``contacts[].user_id``),
            or ``None`` on notifications from before BSUIDs.
        profile_name: the name in the user's WhatsApp profile, if sent.
        username: the user's WhatsApp username (``contacts[].profile.username``), if any.
    """

    wa_id: str | None
    user_id: str | None
    profile_name: str | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingMessage:
    """A message a user sent to one of our numbers.

    Attributes:
        phone_number_id: the id of our business phone number that received it
            (``metadata.phone_number_id``); replies go out from the same number.
        sender: who sent it.
        message: the message in channel-independent form (id, kind, text, ...).
        raw_type: WhatsApp's ``type`` as sent (``"interactive"``, ``"button"``, ``"order"``,
            ...); several raw types share one :attr:`UserMessage.kind`.
        context_id: the wamid of the message this one refers to: the message being
            quoted or whose button was tapped (``context.id``), or the message reacted to
            (``reaction.message_id``).
        raw: the original message object, for what this type does not model (product
            order items, flow responses); not part of equality or ``repr``.
    """

    phone_number_id: str | None
    sender: Sender
    message: UserMessage
    raw_type: str
    context_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def message_payload(message: UserMessage) -> dict[str, Any]:
    """``message.to_payload()``, the same dict, without :func:`dataclasses.asdict`.

    ``asdict`` deep-copies every field through ``copy.deepcopy``: it was the largest
    single cost of storing a webhook. A message's fields are scalars and flat dataclasses
    of scalars (media, location, referral), so a shallow copy is the same value; anything
    else falls back to ``asdict``.
    """
    data: dict[str, Any] = {}
    for name in _MESSAGE_FIELDS:
        value = getattr(message, name)
        if value is None:
            continue
        if type(value) is str:
            data[name] = value
        elif name == "timestamp":
            data[name] = value.isoformat()
        elif name == "referral":
            data[name] = value.to_payload()
        elif dataclasses.is_dataclass(value):
            data[name] = _flat_asdict(value)
        elif isinstance(value, _SCALARS):
            data[name] = value
        else:
            data[name] = copy.deepcopy(value)
    return data


_MESSAGE_FIELDS: Final = tuple(f.name for f in dataclasses.fields(UserMessage))
_SCALARS: Final = (str, int, float, bool)


def _flat_asdict(value: Any) -> dict[str, Any]:
    names = [f.name for f in dataclasses.fields(value)]
    shallow = {name: getattr(value, name) for name in names}
    if all(v is None or isinstance(v, _SCALARS) for v in shallow.values()):
        return shallow
    return dataclasses.asdict(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusError:
    """An error reported by WhatsApp, on a failed status or for the whole webhook.

    Attributes:
        code: Graph error code (e.g. ``131047``, outside the 24-hour window); build logic
            on this and on :attr:`details`, not on the title.
        title: short title of the error.
        message: longer text of the error.
        details: ``error_data.details``, the most specific explanation.
    """

    code: int | None = None
    title: str | None = None
    message: str | None = None
    details: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusUpdate:
    """What happened to a message we sent.

    Attributes:
        wa_message_id: the wamid of our message.
        status: ``"sent"``, ``"delivered"``, ``"read"``, ``"played"`` or ``"failed"``; any
            other string WhatsApp sends is kept as it is.
        timestamp: when it happened (aware, UTC).
        recipient_id: the recipient's phone number, when WhatsApp shares it.
        recipient_user_id: the recipient's business-scoped user id, when sent.
        biz_opaque_callback_data: the value we attached when sending, echoed back.
        errors: why delivery failed (usually on ``"failed"`` only).
    """

    wa_message_id: str
    status: str
    timestamp: dt.datetime | None = None
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    biz_opaque_callback_data: str | None = None
    errors: tuple[StatusError, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportedError:
    """An error WhatsApp reported in a notification, kept so it is never lost silently.

    Attributes:
        where: its place in the document, e.g. ``"entry[0].changes[0].errors[0]"`` (for
            the whole change) or ``"entry[0].changes[0].messages[1].errors[0]"`` (on one
            inbound message, e.g. 131051 on an ``unsupported`` message).
        error: the error.
        message_id: the wamid of the inbound message it was reported on, if any.
    """

    where: str
    error: StatusError
    message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignored:
    """Something in the notification that was not turned into an update.

    Attributes:
        what: the item, with its place in the document in parentheses, e.g.
            ``"change field 'account_update' (entry[0].changes[0])"`` or
            ``"message type 'system' (entry[0].changes[0].messages[1])"``.
        reason: why it was ignored, e.g. ``"'timestamp' is not a unix time"``.
    """

    what: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookBatch:
    """Everything one webhook notification carried, in document order.

    Attributes:
        messages: the users' messages.
        statuses: the status updates of our messages.
        ignored: what was skipped, and why; for logs, never an error response.
        errors: webhook-level errors (``value.errors``), not tied to one message.
        reported: every error the notification reported outside statuses, with its
            place: the webhook-level ones and those on inbound messages
            (``messages[].errors``); statuses keep theirs in :attr:`StatusUpdate.errors`.
    """

    messages: tuple[IncomingMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    errors: tuple[StatusError, ...] = ()
    reported: tuple[ReportedError, ...] = ()


class _ShapeError(Exception):
    """Skips the item being parsed; its message becomes the :class:`Ignored` reason.

    Internal control flow: :func:`parse_webhook` catches every one of them.
    """


def parse_webhook(document: Any) -> WebhookBatch:
    """Parse a decoded webhook notification; never raises for its shape.

    Every ``entry[]`` × ``changes[]`` × ``messages[]``/``statuses[]``/``errors[]`` is
    parsed, in document order. Changes whose ``field`` is not ``"messages"`` and
    notifications whose ``object`` is not ``"whatsapp_business_account"`` are recorded as
    ignored, as is every item with a malformed shape.

    Args:
        document: the JSON-decoded request body, whatever its shape.

    Returns:
        The messages, statuses and errors found, plus what was ignored.
    """
    parser = _Parser()
    parser.document(document)
    return WebhookBatch(
        messages=tuple(parser.messages),
        statuses=tuple(parser.statuses),
        ignored=tuple(parser.ignored),
        errors=tuple(parser.errors),
        reported=tuple(parser.reported),
    )


@dataclass(frozen=True, slots=True)
class _Contact:
    wa_id: str | None
    user_id: str | None
    name: str | None
    username: str | None


class _Parser:
    """Collects the updates of one document; each method handles one level of it."""

    def __init__(self) -> None:
        self.messages: list[IncomingMessage] = []
        self.statuses: list[StatusUpdate] = []
        self.ignored: list[Ignored] = []
        self.errors: list[StatusError] = []
        self.reported: list[ReportedError] = []

    def ignore(self, what: str, path: str, reason: str) -> None:
        self.ignored.append(Ignored(what=f"{what} ({path})" if path else what, reason=reason))

    def document(self, document: Any) -> None:
        if not isinstance(document, dict):
            self.ignore("document", "", f"not a JSON object ({_type_name(document)})")
            return
        obj = document.get("object")
        if obj != WHATSAPP_OBJECT:
            what = f"object {obj!r:.60}" if isinstance(obj, str) else "object"
            self.ignore(what, "", f"not a WhatsApp Business Account notification ({obj!r:.60})")
            return
        for i, entry in _items(document, "entry", "", self):
            for j, change in _items(entry, "changes", f"entry[{i}]", self):
                self.change(change, f"entry[{i}].changes[{j}]")

    def change(self, change: dict[str, Any], path: str) -> None:
        name = change.get("field")
        if name != "messages":
            what = f"change field {name!r:.60}" if isinstance(name, str) else "change"
            if not isinstance(name, str):
                reason = "no 'field' naming what changed"
            elif name.startswith("group_"):
                reason = "group events are not handled: Nyala's conversations are one-to-one"
            else:
                reason = "only 'messages' changes are handled"
            self.ignore(what, path, reason)
            return
        value = change.get("value")
        if not isinstance(value, dict):
            self.ignore("change field 'messages'", path, "'value' is not an object")
            return
        found = False
        phone_number_id = self.metadata(value, path)
        if "messages" in value:
            found = True
            contacts = self.contacts(value, path)
            for k, message in _items(value, "messages", path, self):
                where = f"{path}.messages[{k}]"
                if "errors" in message:
                    self.message_errors(message, where)
                parsed = self.message(message, phone_number_id, contacts, where)
                if parsed is not None:
                    self.messages.append(parsed)
        if "statuses" in value:
            found = True
            for k, status in _items(value, "statuses", path, self):
                where = f"{path}.statuses[{k}]"
                try:
                    self.statuses.append(_status(status))
                except _ShapeError as skip:
                    self.ignore(_status_what(status), where, str(skip))
        if "errors" in value:
            found = True
            for k, error in _items(value, "errors", path, self):
                try:
                    parsed_error = _error(error)
                    self.errors.append(parsed_error)
                    self.reported.append(
                        ReportedError(where=f"{path}.errors[{k}]", error=parsed_error)
                    )
                except _ShapeError as skip:
                    self.ignore("error", f"{path}.errors[{k}]", str(skip))
        if not found:
            self.ignore("change field 'messages'", path, "no messages, statuses or errors")

    def message_errors(self, message: dict[str, Any], path: str) -> None:
        """Record the errors WhatsApp attached to an inbound message."""
        try:
            wamid = _opt_id(message, "id")
        except _ShapeError:
            wamid = None
        for k, error in _items(message, "errors", path, self):
            where = f"{path}.errors[{k}]"
            try:
                self.reported.append(
                    ReportedError(where=where, error=_error(error), message_id=wamid)
                )
            except _ShapeError as skip:
                self.ignore("error", where, str(skip))

    def metadata(self, value: dict[str, Any], path: str) -> str | None:
        metadata = value.get("metadata")
        if metadata is None:
            return None
        try:
            if not isinstance(metadata, dict):
                raise _ShapeError("not an object")
            return _opt_id(metadata, "phone_number_id")
        except _ShapeError as skip:
            # The messages are still the user's; they only lose the receiving number.
            self.ignore("metadata", path, str(skip))
            return None

    def contacts(self, value: dict[str, Any], path: str) -> list[_Contact]:
        contacts: list[_Contact] = []
        if value.get("contacts") is None:
            return contacts
        for k, contact in _items(value, "contacts", path, self):
            try:
                profile = _opt_object(contact, "profile") or {}
                contacts.append(
                    _Contact(
                        wa_id=_opt_id(contact, "wa_id"),
                        user_id=_opt_id(contact, "user_id"),
                        name=_opt_str(profile, "name", "profile.name"),
                        username=_opt_str(profile, "username", "profile.username"),
                    )
                )
            except _ShapeError as skip:
                self.ignore("contact", f"{path}.contacts[{k}]", str(skip))
        return contacts

    def message(
        self,
        message: dict[str, Any],
        phone_number_id: str | None,
        contacts: list[_Contact],
        path: str,
    ) -> IncomingMessage | None:
        raw_type = message.get("type")
        if not isinstance(raw_type, str) or not raw_type or not raw_type.isprintable():
            self.ignore("message", path, "'type' is missing or not a type name")
            return None
        what = f"message type {raw_type!r:.60}"
        try:
            wamid = _opt_id(message, "id")
            if wamid is None:
                raise _ShapeError("no message 'id'")
            if message.get("group_id") is not None:
                raise _ShapeError(
                    "group messages are not handled: Nyala's conversations are one-to-one"
                )
            if raw_type == "system":
                raise _ShapeError(_system_reason(message))
            sender = _sender(message, contacts)
            timestamp = _timestamp(message.get("timestamp"))
            context = _opt_object(message, "context")
            context_id = _opt_id(context, "id", "context.id") if context else None
            parsed = _body(message, raw_type, wamid, timestamp)
            referral = _referral(message.get("referral"))
            if referral is not None:
                parsed = dataclasses.replace(parsed, referral=referral)
            if raw_type == "reaction":
                reaction = _object(message, "reaction")
                reacted_to = _opt_id(reaction, "message_id", "reaction.message_id")
                context_id = reacted_to or context_id
        except _ShapeError as skip:
            self.ignore(what, path, str(skip))
            return None
        return IncomingMessage(
            phone_number_id=phone_number_id,
            sender=sender,
            message=parsed,
            raw_type=raw_type,
            context_id=context_id,
            raw=message,
        )


def _items(
    parent: dict[str, Any], key: str, path: str, parser: _Parser
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The objects in ``parent[key]``, recording a missing list and non-object items."""
    where = f"{path}.{key}" if path else key
    items = parent.get(key)
    if not isinstance(items, list):
        parser.ignore(key, path, f"'{key}' is missing or not a list ({_type_name(items)})")
        return
    for index, item in enumerate(items):
        if isinstance(item, dict):
            yield index, item
        else:
            parser.ignore(_SINGULAR.get(key, key), f"{where}[{index}]", "not an object")


def _sender(message: dict[str, Any], contacts: list[_Contact]) -> Sender:
    """The sender, from the message's ids completed by its entry in ``contacts``."""
    wa_id = _opt_id(message, "from")
    user_id = _opt_id(message, "from_user_id")
    contact = _matching_contact(contacts, wa_id, user_id)
    if contact is not None:
        wa_id = wa_id or contact.wa_id
        user_id = user_id or contact.user_id
    if wa_id is None and user_id is None:
        raise _ShapeError("no sender: neither 'from' nor 'from_user_id', and no matching contact")
    return Sender(
        wa_id=wa_id,
        user_id=user_id,
        profile_name=contact.name if contact else None,
        username=contact.username if contact else None,
    )


def _matching_contact(
    contacts: list[_Contact], wa_id: str | None, user_id: str | None
) -> _Contact | None:
    """The contact sharing an id with the message, or the only one if none contradicts it."""
    for contact in contacts:
        if (wa_id is not None and contact.wa_id == wa_id) or (
            user_id is not None and contact.user_id == user_id
        ):
            return contact
    if len(contacts) == 1:
        (contact,) = contacts
        conflicts = (wa_id is not None and contact.wa_id is not None) or (
            user_id is not None and contact.user_id is not None
        )
        if not conflicts:
            return contact
    return None


def _body(
    message: dict[str, Any], raw_type: str, wamid: str, timestamp: dt.datetime | None
) -> UserMessage:
    """The :class:`UserMessage` for one message, by its ``type``."""
    if raw_type == "text":
        text = _object(message, "text")
        body = _opt_str(text, "body", "text.body")
        if body is None:
            raise _ShapeError("'text.body' is missing")
        return UserMessage(id=wamid, kind="text", text=body, timestamp=timestamp)
    if raw_type == "interactive":
        return _interactive(message, wamid, timestamp)
    if raw_type == "button":
        button = _object(message, "button")
        payload = _opt_str(button, "payload", "button.payload")
        if payload is None:
            raise _ShapeError("'button.payload' is missing")
        label = _opt_str(button, "text", "button.text")
        return UserMessage(
            id=wamid, kind="reply", reply_id=payload, text=label, timestamp=timestamp
        )
    if raw_type in _MEDIA_KINDS:
        media = _media(message, raw_type)
        return UserMessage(
            id=wamid,
            kind=_MEDIA_KINDS[raw_type],
            text=media.caption,
            media=media,
            timestamp=timestamp,
        )
    if raw_type == "location":
        return UserMessage(
            id=wamid, kind="location", location=_location(message), timestamp=timestamp
        )
    if raw_type == "reaction":
        reaction = _object(message, "reaction")
        # A removed reaction comes without an emoji (or, per pywa, with an empty one).
        emoji = _opt_str(reaction, "emoji", "reaction.emoji") or None
        return UserMessage(id=wamid, kind="reaction", emoji=emoji, timestamp=timestamp)
    if raw_type == "contacts":
        cards = message.get("contacts")
        if not isinstance(cards, list):
            raise _ShapeError("'contacts' is missing or not a list")
        return UserMessage(
            id=wamid, kind="contacts", text=_contacts_summary(cards), timestamp=timestamp
        )
    if raw_type == "order":
        return UserMessage(id=wamid, kind="unsupported", text="order", timestamp=timestamp)
    if raw_type in _EDIT_TYPES:
        return _edit(message, raw_type, wamid, timestamp)
    if raw_type in _REVOKE_TYPES:
        revoke = message.get(raw_type)
        original = _original_id(revoke) if isinstance(revoke, dict) else None
        return UserMessage(id=wamid, kind="revoke", refers_to=original, timestamp=timestamp)
    if raw_type in ("unsupported", "unknown"):
        # WhatsApp versions without edit or delete notifications name them here.
        inner = _get(message, "unsupported", "type")
        inner = inner if isinstance(inner, str) else None  # any JSON may be there
        if inner in _EDIT_TYPES:
            return UserMessage(id=wamid, kind="edit", timestamp=timestamp)
        if inner in _REVOKE_TYPES:
            return UserMessage(id=wamid, kind="revoke", timestamp=timestamp)
    # "unsupported", "unknown" and types this module does not know yet.
    return UserMessage(
        id=wamid, kind="unsupported", text=_errors_summary(message), timestamp=timestamp
    )


def _edit(
    message: dict[str, Any], raw_type: str, wamid: str, timestamp: dt.datetime | None
) -> UserMessage:
    """An edited message: the new text or caption, and the id of the message it replaces.

    Content that cannot be read leaves an edit without content (the engine asks the user
    to send it again) rather than dropping the notification.
    """
    edit = message.get(raw_type)
    if not isinstance(edit, dict):
        return UserMessage(id=wamid, kind="edit", timestamp=timestamp)
    original = _original_id(edit)
    inner = edit.get("message")
    inner_type = inner.get("type") if isinstance(inner, dict) else None
    text: str | None = None
    media: Media | None = None
    if isinstance(inner, dict) and (inner_type == "text" or inner_type in _MEDIA_KINDS):
        try:
            content = _body(inner, inner_type, wamid, timestamp)
        except _ShapeError:
            pass
        else:
            text, media = content.text, content.media
    return UserMessage(
        id=wamid, kind="edit", text=text, media=media, refers_to=original, timestamp=timestamp
    )


def _original_id(body: dict[str, Any]) -> str | None:
    """``original_message_id`` of an edit or revoke, if it is a readable id."""
    try:
        return _opt_id(body, "original_message_id")
    except _ShapeError:
        return None


def _referral(value: Any) -> Referral | None:
    """The ad a message came from, from whatever fields of ``referral`` are readable
    (attribution is worth keeping even when Meta adds or changes a field)."""
    if not isinstance(value, dict):
        return None
    found = {name: _loose_text(value.get(name)) for name in _REFERRAL_FIELDS}
    welcome = _loose_str(_get(value, "welcome_message", "text"))
    referral = Referral(**found, welcome_message=welcome)
    return referral if referral.to_payload() else None


def _interactive(
    message: dict[str, Any], wamid: str, timestamp: dt.datetime | None
) -> UserMessage:
    interactive = _object(message, "interactive")
    sub_type = interactive.get("type")
    if not isinstance(sub_type, str):
        raise _ShapeError("'interactive.type' is missing or not a string")
    if sub_type in ("button_reply", "list_reply"):
        reply = _object(interactive, sub_type, f"interactive.{sub_type}")
        reply_id = _opt_str(reply, "id", f"interactive.{sub_type}.id")
        if reply_id is None:
            raise _ShapeError(f"'interactive.{sub_type}.id' is missing")
        title = _opt_str(reply, "title", f"interactive.{sub_type}.title")
        return UserMessage(
            id=wamid, kind="reply", reply_id=reply_id, text=title, timestamp=timestamp
        )
    if sub_type == "nfm_reply":
        flow = _object(interactive, "nfm_reply", "interactive.nfm_reply")
        body = _opt_str(flow, "body", "interactive.nfm_reply.body")
        return UserMessage(id=wamid, kind="unsupported", text=body, timestamp=timestamp)
    return UserMessage(id=wamid, kind="unsupported", timestamp=timestamp)


def _media(message: dict[str, Any], raw_type: str) -> Media:
    body = _object(message, raw_type)
    media_id = _opt_id(body, "id", f"{raw_type}.id")
    if media_id is None:
        raise _ShapeError(f"'{raw_type}.id' is missing")
    return Media(
        id=media_id,
        mime_type=_opt_str(body, "mime_type", f"{raw_type}.mime_type") or UNKNOWN_MIME_TYPE,
        sha256=_opt_str(body, "sha256", f"{raw_type}.sha256"),
        filename=(
            _opt_str(body, "filename", "document.filename") if raw_type == "document" else None
        ),
        caption=_opt_str(body, "caption", f"{raw_type}.caption"),
    )


def _location(message: dict[str, Any]) -> Location:
    body = _object(message, "location")
    latitude = _coordinate(body.get("latitude"), "location.latitude", 90.0)
    longitude = _coordinate(body.get("longitude"), "location.longitude", 180.0)
    return Location(
        latitude=latitude,
        longitude=longitude,
        name=_opt_str(body, "name", "location.name"),
        address=_opt_str(body, "address", "location.address"),
    )


def _coordinate(value: Any, name: str, limit: float) -> float:
    number = _number(value)
    if number is None:
        raise _ShapeError(f"'{name}' is missing or not a number")
    if not -limit <= number <= limit:
        raise _ShapeError(f"'{name}' is out of range")
    return number


def _contacts_summary(cards: list[Any]) -> str | None:
    """A short readable text for shared contact cards, from whatever parts are readable."""
    parts: list[str] = []
    for card in cards:
        if not isinstance(card, dict):
            continue
        name = _loose_str(_get(card, "name", "formatted_name"))
        if name is None:
            given = _loose_str(_get(card, "name", "first_name"))
            family = _loose_str(_get(card, "name", "last_name"))
            name = " ".join(p for p in (given, family) if p) or None
        phones = card.get("phones")
        numbers = [
            number
            for phone in (phones if isinstance(phones, list) else [])
            if isinstance(phone, dict)
            and (number := _loose_str(phone.get("phone")) or _loose_str(phone.get("wa_id")))
        ]
        listed = ", ".join(numbers)
        if name and listed:
            parts.append(f"{name} ({listed})")
        elif name or listed:
            parts.append(name or listed)
    return shorten("; ".join(parts), CONTACTS_SUMMARY_MAX) if parts else None


def _errors_summary(message: dict[str, Any]) -> str | None:
    """The first error's title and details, for unsupported messages."""
    errors = message.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    title = _loose_str(first.get("title")) or _loose_str(first.get("message"))
    details = _loose_str(_get(first, "error_data", "details"))
    parts = [p for p in (title, details) if p]
    if len(parts) == 2 and parts[0].rstrip(".") == parts[1].rstrip("."):
        parts.pop()
    return ": ".join(parts) or None


def _system_reason(message: dict[str, Any]) -> str:
    system = message.get("system")
    kind = system.get("type") if isinstance(system, dict) else None
    notice = f"system notice {kind!r:.60}" if isinstance(kind, str) else "a system notice"
    return f"{notice} is about the user's identity, not something the user wrote"


def _status(status: dict[str, Any]) -> StatusUpdate:
    wamid = _opt_id(status, "id")
    if wamid is None:
        raise _ShapeError("no message 'id'")
    state = _opt_str(status, "status")
    if not state:
        raise _ShapeError("'status' is missing")
    errors = status.get("errors")
    if errors is not None and not isinstance(errors, list):
        raise _ShapeError("'errors' is not a list")
    return StatusUpdate(
        wa_message_id=wamid,
        status=state,
        timestamp=_timestamp(status.get("timestamp")),
        recipient_id=_opt_id(status, "recipient_id"),
        recipient_user_id=_opt_id(status, "recipient_user_id"),
        biz_opaque_callback_data=_opt_str(status, "biz_opaque_callback_data"),
        errors=tuple(_error(e, f"errors[{k}]") for k, e in enumerate(errors or ())),
    )


def _status_what(status: dict[str, Any]) -> str:
    state = status.get("status")
    return f"status {state!r:.60}" if isinstance(state, str) and state else "status"


def _error(error: Any, name: str = "error") -> StatusError:
    if not isinstance(error, dict):
        raise _ShapeError(f"'{name}' is not an object")
    code = error.get("code")
    number = _integer(code)
    if code is not None and number is None:
        raise _ShapeError(f"'{name}.code' is not an integer")
    data = _opt_object(error, "error_data", f"{name}.error_data") or {}
    return StatusError(
        code=number,
        title=_opt_str(error, "title", f"{name}.title"),
        message=_opt_str(error, "message", f"{name}.message"),
        details=_opt_str(data, "details", f"{name}.error_data.details"),
    )


# Field readers. They raise _ShapeError when a present field has the wrong type.


def _object(parent: Mapping[str, Any], key: str, name: str | None = None) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise _ShapeError(f"'{name or key}' is missing or not an object")
    return value


def _opt_object(
    parent: Mapping[str, Any], key: str, name: str | None = None
) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise _ShapeError(f"'{name or key}' is not an object")


def _opt_str(parent: Mapping[str, Any], key: str, name: str | None = None) -> str | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _ShapeError(f"'{name or key}' is not a string")
    return _clean(value)


def _opt_id(parent: Mapping[str, Any], key: str, name: str | None = None) -> str | None:
    """An id or phone number: a non-empty string or an integer, without control bytes."""
    value = parent.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        text = _int_to_str(value)
        if text is not None:
            return text
    elif isinstance(value, str) and value.isprintable():  # no NUL, controls or surrogates
        return value
    raise _ShapeError(f"'{name or key}' is not a valid id")


def _loose_str(value: Any) -> str | None:
    """``value`` cleaned if it is a non-empty string, else ``None`` (for summaries)."""
    return (_clean(value).strip() or None) if isinstance(value, str) else None


def _loose_text(value: Any) -> str | None:
    """Like :func:`_loose_str`, but an integer (an id sent as a number) becomes its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_to_str(value)
    return _loose_str(value)


def _get(parent: Mapping[str, Any], key: str, inner: str) -> Any:
    child = parent.get(key)
    return child.get(inner) if isinstance(child, dict) else None


def _clean(text: str) -> str:
    """``text`` without NUL characters and with unpaired surrogates replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _SURROGATES.sub("\ufffd", text)


def _int_to_str(value: int) -> str | None:
    try:
        return str(value)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return None


def _number(value: Any) -> float | None:
    """A finite float from a number or a numeric string, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    """An int from an integer or a string of digits, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _timestamp(value: Any) -> dt.datetime | None:
    """An aware UTC datetime from a unix time (number or numeric string), ``None`` if absent."""
    if value is None:
        return None
    seconds = _number(value)
    if seconds is None:
        raise _ShapeError("'timestamp' is not a unix time")
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise _ShapeError("'timestamp' is out of range") from None


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else "other")
