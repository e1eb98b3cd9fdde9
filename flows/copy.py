"""Every framework text a customer can see, in one catalogue an app can override.

The engine, the core intents and the built-in validators never write English of their
own: they ask the app's :class:`Copy` for a message by key and fill its ``{fields}``.
An app changes any of them by key::

    app = App("Msasa Grill", copy={"flow.done": "That's it! Type *menu* for more."})

Keys are checked when the app is made (an unknown key, or a text that drops or adds a
``{field}`` the framework fills, is an error then, not a surprise in a chat). The keys
double as stable error codes: a validator's rejection carries the key of its message
(``integer.too_large``), which analytics group errors by. This catalogue is also what a
translation fills in, one language at a time.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final

__all__ = ["DEFAULT_COPY", "Copy", "CopyError"]

# key → the default English text. ``|`` separates the words of a keyword list.
DEFAULT_COPY: Final[Mapping[str, str]] = MappingProxyType(
    {
        # the engine
        "apology": (
            "Sorry, something went wrong on our side and I couldn't finish that. "
            "Our team has been notified. Type *menu* to start again."
        ),
        "handoff.started": (
            "I've asked a member of our team to take over. "
            "They'll reply right here as soon as they can."
        ),
        "reaction.thanks": "Thanks {emoji}!",
        "edit.resend": (
            "I saw you edited a message, but I can't use the change. "
            "Please send it again as a new message."
        ),
        "lead.greeting": "Hello, and thanks for your interest in {business}! How can I help?",
        "lead.greeting_ad": (
            "Hello, and thanks for your interest in “{headline}” from {business}! How can I help?"
        ),
        "flow.gone": "Sorry, what we were doing is no longer available.",
        "flow.changed": (
            "We've just updated this conversation, so let's pick it up from the start."
        ),
        "flow.unavailable": "Sorry, that isn't available right now.",
        "flow.done": "All done! Type *menu* if there's anything else.",
        "cancel.done": "OK, I've stopped that. Nothing more will happen. Type *menu* anytime.",
        "cancel.nothing": "There's nothing to cancel right now.",
        "help.greeting": "I'm the {business} assistant.",
        "help.commands": "You can type these at any time:",
        "help.line": "• *{word}*: {description}",
        "menu.greeting": "Hello! Welcome to {business}. What would you like to do?",
        "menu.heading": "Here's what I can help with:",
        "menu.button": "Menu",
        "menu.timed_out": (
            "It's been a while, so I closed what we were doing. What would you like to do?"
        ),
        "menu.not_understood": "Sorry, I didn't quite get that. Here's what I can help with:",
        "menu.unsupported": (
            "Thanks! I can't do anything with that kind of message here. "
            "Here's what I can help with:"
        ),
        "answer.not_here": "Sorry, that answer doesn't work here.",
        "choices.empty": "Sorry, there's nothing to choose from right now.",
        "list.button": "Choose",
        "prompt.default": "Please reply.",
        "retry.offer": "This seems to be tricky. Would you like help from a person?",
        "retry.person": "Talk to a person",
        "retry.again": "Try again",
        "retry.menu": "Main menu",
        # the core intents: the words that trigger them, and their line in help
        "intent.menu.words": "menu|main menu|home|start|start over",
        "intent.menu.description": "show the main menu",
        "intent.help.words": "help|?|info|what can you do",
        "intent.help.description": "explain what I can do",
        "intent.cancel.words": "cancel|stop|quit|exit|abort",
        "intent.cancel.description": "stop what we are doing",
        "intent.human.words": (
            "agent|human|person|talk to a person|speak to someone|talk to someone|real person"
        ),
        "intent.human.description": "talk to a person",
        "intent.greeting.words": (
            "hi|hello|hey|hallo|good morning|good afternoon|good evening|howzit|mhoro"
        ),
        # the built-in validators (the keys are their error codes)
        "input.sticker": "Thanks for the sticker! I can only read typed answers here.",
        "input.reaction": "Thanks for the reaction! I need a typed answer to go on.",
        "input.file": "I wasn't expecting a file here, a typed answer is what I need.",
        "input.location": "I wasn't expecting a location here, a typed answer is what I need.",
        "input.unreadable": "I can't read that kind of message, please type your answer.",
        "text.too_short": "Please write at least {min_length} characters.",
        "text.too_long": "That is a bit long; please keep it under {max_length} characters.",
        "range.between": "between {min} and {max}",
        "range.at_least": "of at least {min}",
        "range.at_most": "of at most {max}",
        "integer.hint": "Please send a whole number {range}, for example {example}.",
        "integer.not_a_number": "“{input}” isn't a number I understand. {hint}",
        "integer.too_large": "Sorry, {value} is more than the {max} available. {hint}",
        "integer.too_small": "{value} is too small. {hint}",
        "number.not_a_number": "Please send a number {range}, for example 25.50.",
        "number.out_of_range": "Please send a number {range}.",
        "date.not_a_date": "“{input}” isn't a date I understand. Please write it like 24/12/2026.",
        "date.no_such_day": (
            "{date} is not a date: {month} has {days} days. Please write it like 24/12/2026."
        ),
        "date.too_early": "Please choose a date from {min} onwards.",
        "date.too_late": "Please choose a date no later than {max}.",
        "choice.hint": "Please tap one of the options or reply with its number ({options}).",
        "choice.reminder": (
            "The choices are in the list above: tap *{button}* to open it, "
            "or reply with a number from 1 to {count}."
        ),
        "choice.gone": "That option is no longer available. {hint}",
        "choice.unknown": "I didn't recognise “{input}”. {hint}",
        "yes_no.unknown": "Please answer yes or no.",
        "name.invalid": (
            "That doesn't look like a name. Please use letters only, e.g. Tendai Moyo."
        ),
        "name.incomplete": "Please give the full name (first name and surname).",
        "email.invalid": "“{input}” isn't a valid e-mail address, e.g. name@example.com.",
        "phone.invalid": (
            "That isn't a phone number I can use. Please include the country code, "
            "e.g. +263 77 123 4567."
        ),
        "media.missing": "Please send the file as a photo or document ({allowed}).",
        "media.wrong_type": "That file type ({mime_type}) isn't accepted. Please send {allowed}.",
        "media.too_large": "That file is too large; the limit is {max_mb} MB.",
        "media.refused": (
            "I couldn't accept that file: {reason}. Please send it again as a photo or "
            "document ({allowed})."
        ),
        "location.missing": "Please share a location (tap 📎 then Location).",
    }
)


class CopyError(ValueError):
    """An override names an unknown key or changes the fields a text is filled with."""


def fields(text: str) -> set[str]:
    """The ``{fields}`` a text refers to."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


class _Blank(dict[str, Any]):
    """Format values where a missing field stays visible instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Copy(Mapping[str, str]):
    """The texts of one app: the framework's defaults with the app's overrides.

    Args:
        overrides: key → text; each key must be one of :data:`DEFAULT_COPY`'s, and each
            text may use only the ``{fields}`` its default uses (it may leave some out).
        extra: the app's own keys (texts its actions look up with :meth:`text`), which
            may not shadow a framework key.
    """

    def __init__(
        self, overrides: Mapping[str, str] | None = None, *, extra: Mapping[str, str] | None = None
    ) -> None:
        texts = dict(DEFAULT_COPY)
        for key, text in (overrides or {}).items():
            if key not in DEFAULT_COPY:
                close = sorted(k for k in DEFAULT_COPY if k.split(".")[0] == key.split(".")[0])
                hint = f" (keys like it: {', '.join(close)})" if close else ""
                raise CopyError(f"copy key {key!r} is not a framework text{hint}")
            if not isinstance(text, str) or not text.strip():
                raise CopyError(f"copy {key!r} must be a non-empty text")
            unknown = fields(text) - fields(DEFAULT_COPY[key])
            if unknown:
                allowed = ", ".join(sorted(fields(DEFAULT_COPY[key]))) or "none"
                raise CopyError(
                    f"copy {key!r} uses {{{', '.join(sorted(unknown))}}}, which is not filled "
                    f"in (fields: {allowed})"
                )
            texts[key] = text
        for key, text in (extra or {}).items():
            if key in DEFAULT_COPY:
                raise CopyError(f"app copy {key!r} would shadow a framework text; override it")
            texts[key] = text
        self._texts = texts

    def __getitem__(self, key: str) -> str:
        return self._texts[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def text(self, key: str, /, **values: Any) -> str:
        """The text under ``key`` with its ``{fields}`` filled from ``values``."""
        template = self._texts[key]
        return template.format_map(_Blank(values)) if values or "{" in template else template

    def words(self, key: str) -> list[str]:
        """A ``|``-separated keyword list."""
        return [word.strip() for word in self._texts[key].split("|") if word.strip()]
