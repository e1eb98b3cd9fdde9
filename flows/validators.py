"""Typed validators: turn a user's reply into a value, or say helpfully what is wrong.

A validator is a callable ``(message, context) -> Accepted | Rejected``. The built-in ones
are made by name from a flow file's ``expect:`` (``integer``, ``date``, ``choice``,
``yes_no``, ``text``, ``person_name``, ``email``, ``phone``, ``media``, ``location``);
applications add their own with :meth:`flows.App.validator`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import phonenumbers
from dateutil import parser as date_parser
from email_validator import EmailNotValidError, validate_email

from flows.copy import Copy
from flows.messages import MEDIA_KINDS, Option, UserMessage, shorten

_DEFAULT = Copy()


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid reply: ``value`` is saved (JSON-safe), ``display`` goes to analytics."""

    value: Any
    display: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid reply, with the sentence the user sees before the question again.

    Attributes:
        reason: what the user is told.
        code: a stable name of what was wrong (``integer.too_large``): analytics group
            errors by it, whatever the user typed. The built-in validators use their copy
            key; an app's validator names its own (default ``invalid``).
    """

    reason: str
    code: str = "invalid"


Outcome = Accepted | Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationContext:
    """What a validator may look at besides the message."""

    options: Sequence[Option] = ()
    today: dt.date = field(default_factory=dt.date.today)
    data: Mapping[str, Any] = field(default_factory=dict)
    default_region: str | None = None
    copy: Copy = field(default_factory=lambda: _DEFAULT)

    def reject(self, key: str, /, **values: Any) -> Rejected:
        """A rejection with the app's text under ``key``; the key is its error code.

        What the customer typed (``input``) is echoed only as a short piece
        (:func:`echo`): a 300-character answer must not come back whole.
        """
        if "input" in values:
            values["input"] = echo(str(values["input"]))
        return Rejected(self.copy.text(key, **values), code=key)


ECHO_MAX = 30  # characters of the customer's own answer quoted back in an error


def echo(text: str) -> str:
    """``text`` as it may be quoted back to the customer: at most :data:`ECHO_MAX`
    characters and an ellipsis, cut between graphemes (never inside an emoji or after a
    base letter without its accent), whitespace runs as one space."""
    text = " ".join(text.split())
    return text if len(text) <= ECHO_MAX else shorten(text, ECHO_MAX + 1)


Validator = Callable[[UserMessage, ValidationContext], Outcome]
ValidatorFactory = Callable[..., Validator]

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_YES = {"yes", "y", "yeah", "yep", "ok", "okay", "sure", "confirm", "true", "1"}
_NO = {"no", "n", "nope", "nah", "false", "0"}


def normalize(text: str) -> str:
    """Lower-case, trimmed, inner spaces collapsed, surrounding punctuation removed."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    text = re.sub(r"\s+", " ", text)
    return text.strip(" .!?,;:'\"")


def _text_of(message: UserMessage) -> str | None:
    if message.kind in ("text", "reply") and message.text and message.text.strip():
        return message.text.strip()
    return None


def _not_text(message: UserMessage, ctx: ValidationContext) -> Rejected:
    if message.kind == "sticker":
        return ctx.reject("input.sticker")
    if message.kind == "reaction":
        return ctx.reject("input.reaction")
    if message.kind in MEDIA_KINDS:
        return ctx.reject("input.file")
    if message.kind == "location":
        return ctx.reject("input.location")
    return ctx.reject("input.unreadable")


def text(*, min_length: int = 1, max_length: int = 1000) -> Validator:
    """Any typed text of a sensible length."""

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        value = _text_of(message)
        if value is None:
            return _not_text(message, ctx)
        if len(value) < min_length:
            return ctx.reject("text.too_short", min_length=min_length)
        if len(value) > max_length:
            return ctx.reject("text.too_long", max_length=max_length)
        return Accepted(value, value)

    return check


def _bounds(ctx: ValidationContext, minimum: Any, maximum: Any) -> str:
    if minimum is not None and maximum is not None:
        return ctx.copy.text("range.between", min=minimum, max=maximum)
    if minimum is not None:
        return ctx.copy.text("range.at_least", min=minimum)
    if maximum is not None:
        return ctx.copy.text("range.at_most", max=maximum)
    return ""


def _hint(ctx: ValidationContext, key: str, **values: Any) -> str:
    """A hint sentence without the double space an empty ``{range}`` leaves."""
    return " ".join(ctx.copy.text(key, **values).split())


def integer(*, min: int | None = None, max: int | None = None) -> Validator:
    """A whole number, optionally in ``[min, max]``; digits or English words to twelve."""
    lo = None if min is None else int(min)
    hi = None if max is None else int(max)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"integer: min {lo} is greater than max {hi}")

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        raw = _text_of(message)
        if raw is None:
            return _not_text(message, ctx)
        hint = _hint(ctx, "integer.hint", range=_bounds(ctx, lo, hi), example=lo or 1)
        hint = hint.replace(" ,", ",")
        word = normalize(raw).replace(",", "")
        if word in _NUMBER_WORDS:
            value = _NUMBER_WORDS[word]
        elif re.fullmatch(r"[+-]?\d{1,9}", word):
            value = int(word)
        else:
            return ctx.reject("integer.not_a_number", input=raw, hint=hint)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if hi is not None and value > hi:
                return ctx.reject("integer.too_large", value=value, max=hi, hint=hint)
            return ctx.reject("integer.too_small", value=value, min=lo, hint=hint)
        return Accepted(value, str(value))

    return check


def number(*, min: float | None = None, max: float | None = None) -> Validator:
    """A decimal number (e.g. an amount), optionally in ``[min, max]``; saved as a string."""
    lo = None if min is None else Decimal(str(min))
    hi = None if max is None else Decimal(str(max))

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        raw = _text_of(message)
        if raw is None:
            return _not_text(message, ctx)
        try:
            value = Decimal(normalize(raw).replace(",", "").lstrip("$€£"))
        except InvalidOperation:
            return Rejected(
                _hint(ctx, "number.not_a_number", range=_bounds(ctx, lo, hi)).replace(" ,", ","),
                code="number.not_a_number",
            )
        if (
            not value.is_finite()
            or (lo is not None and value < lo)
            or (hi is not None and value > hi)
        ):
            return Rejected(
                _hint(ctx, "number.out_of_range", range=_bounds(ctx, lo, hi)).replace(" .", "."),
                code="number.out_of_range",
            )
        return Accepted(str(value), str(value))

    return check


def _as_date(value: Any, today: dt.date) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    if str(value) == "today":
        return today
    return dt.date.fromisoformat(str(value))


_MONTHS = {
    name.casefold(): number
    for number in range(1, 13)
    for name in (calendar.month_name[number], calendar.month_abbr[number])
} | {"sept": 9}
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_MONTH = r"([^\W\d_]+|\d{1,2})"
_YEAR = r"(?:[\s/.,-]+(\d{4}))?"
_DAY_MONTH = re.compile(rf"^{_DAY}[\s/.-]+(?:of\s+)?{_MONTH}{_YEAR}$", re.IGNORECASE)
_MONTH_DAY = re.compile(rf"^([^\W\d_]+)[\s.]+{_DAY}{_YEAR}$", re.IGNORECASE)


def _impossible_day(raw: str, today: dt.date, *, dayfirst: bool) -> tuple[int, int, int] | None:
    """``(day, month, year)`` when ``raw`` names a real month and a day it does not have
    ("31 February", "31/04/2027", "April 31"), so the customer is told exactly that
    rather than "not a date I understand"."""
    text = " ".join(raw.split())
    found = _DAY_MONTH.match(text)
    if found:
        day_text, month_text, year_text = found.groups()
    else:
        found = _MONTH_DAY.match(text)
        if not found:
            return None
        month_text, day_text, year_text = found.groups()
    if month_text.isdigit():
        if not dayfirst:
            return None  # "04/31" month first: dateutil would have read it
        month = int(month_text)
    else:
        month = _MONTHS.get(month_text.casefold(), 0)
    day = int(day_text)
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        return None
    # Without a year: the next such month, as for any date typed without one.
    next_year = today.year if month >= today.month else today.year + 1
    year = int(year_text) if year_text else next_year
    if not dt.MINYEAR <= year <= dt.MAXYEAR or day <= calendar.monthrange(year, month)[1]:
        return None
    return day, month, year


def date(
    *,
    min: Any = None,
    max: Any = None,
    future: bool = False,
    dayfirst: bool = True,
) -> Validator:
    """A calendar date: ``2026-12-24``, ``24/12/2026``, ``24 Dec``, ``today``, ``tomorrow``.

    ``min``/``max`` are ISO dates or ``today``; ``future`` means today or later.
    Saved as an ISO date string.
    """

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        raw = _text_of(message)
        if raw is None:
            return _not_text(message, ctx)
        word = normalize(raw)
        today = ctx.today
        value: dt.date | None
        if word == "today":
            value = today
        elif word == "tomorrow":
            value = today + dt.timedelta(days=1)
        else:
            try:
                # dateutil fills missing parts from a naive default (today, so a weekday
                # name means the next such day); only .date() is used.
                default = dt.datetime(today.year, today.month, today.day)  # noqa: DTZ001
                value = date_parser.parse(raw, dayfirst=dayfirst, default=default).date()
            except (ValueError, OverflowError):
                value = None
            # "24 Dec" without a year means the next 24 December.
            if value is not None and not re.search(r"\d{4}", raw) and value < today:
                try:
                    value = value.replace(year=value.year + 1)
                except ValueError:  # 29 February
                    value = value.replace(year=value.year + 1, day=28)
        if value is None:
            impossible = _impossible_day(raw, today, dayfirst=dayfirst)
            if impossible is not None:
                day, month, year = impossible
                return ctx.reject(
                    "date.no_such_day",
                    date=f"{day} {calendar.month_name[month]}",
                    month=f"{calendar.month_name[month]} {year}",
                    days=calendar.monthrange(year, month)[1],
                )
            return ctx.reject("date.not_a_date", input=raw)
        lo = _as_date(min, today)
        hi = _as_date(max, today)
        if future and (lo is None or lo < today):
            lo = today
        if lo is not None and value < lo:
            return ctx.reject("date.too_early", min=f"{lo:%d %b %Y}")
        if hi is not None and value > hi:
            return ctx.reject("date.too_late", max=f"{hi:%d %b %Y}")
        return Accepted(value.isoformat(), value.isoformat())

    return check


SPELLED_OUT = 3  # options listed by name in a choice's retry hint (as many as buttons)


def choice() -> Validator:
    """One of the options shown: tapped, or typed as its number, id or title."""

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        options = list(ctx.options)
        # A short list is spelled out; a long one is on the screen already (the list
        # message above stays tappable), and repeating ten titles buries the point.
        if len(options) <= SPELLED_OUT:
            listing = ", ".join(f"{i}. {o.title}" for i, o in enumerate(options, 1))
        else:
            listing = f"1–{len(options)}"
        hint = ctx.copy.text("choice.hint", options=listing)
        if message.kind == "reply" and message.reply_id:
            for option in options:
                if option.id == message.reply_id:
                    return Accepted(option.id, option.title)
            return ctx.reject("choice.gone", hint=hint)
        raw = _text_of(message)
        if raw is None:
            return _not_text(message, ctx)
        word = normalize(raw)
        if word.isdigit() and 1 <= int(word) <= len(options):
            option = options[int(word) - 1]
            return Accepted(option.id, option.title)
        for option in options:
            if word in (normalize(option.title), normalize(option.id)):
                return Accepted(option.id, option.title)
        return ctx.reject("choice.unknown", input=raw, hint=hint)

    return check


def yes_no() -> Validator:
    """Yes or no, in the usual spellings; saved as a boolean."""

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        if message.kind == "reply" and message.reply_id in ("yes", "no"):
            return Accepted(message.reply_id == "yes", message.reply_id)
        raw = _text_of(message)
        if raw is None:
            return _not_text(message, ctx)
        word = normalize(raw)
        if word in _YES:
            return Accepted(True, "yes")
        if word in _NO:
            return Accepted(False, "no")
        return ctx.reject("yes_no.unknown")

    return check


_NAME_RE = re.compile(r"^[^\W\d_]+(?:[ '\-.’][^\W\d_]+)*\.?$")


def person_name(*, min_words: int = 1) -> Validator:
    """A person's name: letters (any script), spaces, apostrophes and hyphens."""

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        raw = _text_of(message)
        if raw is None:
            return _not_text(message, ctx)
        value = " ".join(raw.split())
        if len(value) < 2 or len(value) > 100 or not _NAME_RE.match(value):
            return ctx.reject("name.invalid")
        if len(value.split(" ")) < min_words:
            return ctx.reject("name.incomplete")
        if value.islower() or value.isupper():
            value = " ".join(part.capitalize() for part in value.split(" "))
        return Accepted(value, value)

    return check


def email() -> Validator:
    """An e-mail address (syntax only; nothing is looked up); saved normalised."""

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        raw = _text_of(message)
        if raw is None:
            return _not_text(message, ctx)
        try:
            result = validate_email(raw, check_deliverability=False)
        except EmailNotValidError:
            return ctx.reject("email.invalid", input=raw)
        return Accepted(result.normalized, result.normalized)

    return check


def phone(*, region: str | None = None) -> Validator:
    """A phone number, international or in the business's region; saved as E.164."""

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        raw = _text_of(message)
        if raw is None:
            return _not_text(message, ctx)
        try:
            number = phonenumbers.parse(raw, region or ctx.default_region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            return ctx.reject("phone.invalid")
        value = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return Accepted(value, value)

    return check


def media(
    *,
    kinds: Sequence[str] = ("image", "document"),
    mime_types: Sequence[str] = ("image/jpeg", "image/png", "application/pdf"),
    max_mb: float = 10,
) -> Validator:
    """A file: a photo or a document of an allowed type and size."""
    allowed = ", ".join(sorted({m.split("/")[-1].upper() for m in mime_types}))

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        if message.kind not in kinds or message.media is None:
            return ctx.reject("media.missing", allowed=allowed)
        file = message.media
        if file.refused:  # the channel did not store it (bot.files says why)
            return ctx.reject("media.refused", reason=file.refused, allowed=allowed)
        mime = file.mime_type.split(";")[0].strip().lower()
        if mime_types and mime not in mime_types:
            return ctx.reject("media.wrong_type", mime_type=mime, allowed=allowed)
        if file.size is not None and file.size > max_mb * 1024 * 1024:
            return ctx.reject("media.too_large", max_mb=f"{max_mb:g}")
        value = {
            "id": file.id,
            "kind": message.kind,
            "mime_type": mime,
            "filename": file.filename,
            "sha256": file.sha256,
        }
        return Accepted(value, f"[{message.kind}] {file.filename or mime}")

    return check


def location() -> Validator:
    """A shared map location; saved as ``{"latitude", "longitude", "name", "address"}``."""

    def check(message: UserMessage, ctx: ValidationContext) -> Outcome:
        if message.kind != "location" or message.location is None:
            return ctx.reject("location.missing")
        loc = message.location
        value = {
            "latitude": loc.latitude,
            "longitude": loc.longitude,
            "name": loc.name,
            "address": loc.address,
        }
        return Accepted(value, f"{loc.latitude},{loc.longitude}")

    return check


# Read-only: an app adds validators on itself (``@app.validator``), never here.
BUILTIN_VALIDATORS: Mapping[str, ValidatorFactory] = MappingProxyType(
    {
        "choice": choice,
        "date": date,
        "email": email,
        "integer": integer,
        "location": location,
        "media": media,
        "number": number,
        "person_name": person_name,
        "phone": phone,
        "text": text,
        "yes_no": yes_no,
    }
)
