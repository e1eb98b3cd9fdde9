"""Typed validators: accepted values and helpful rejections."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from flows import Accepted, Rejected, UserMessage
from flows.messages import Media, Option
from flows.validators import (
    ValidationContext,
    choice,
    date,
    email,
    integer,
    media,
    person_name,
    phone,
    text,
    yes_no,
)

TODAY = dt.date(2026, 11, 25)


def say(words: str, kind: str = "text") -> UserMessage:
    return UserMessage(id="x", kind=kind, text=words)  # type: ignore[arg-type]


def ctx(**kw: Any) -> ValidationContext:
    return ValidationContext(today=TODAY, **kw)


@pytest.mark.parametrize(("raw", "value"), [("4", 4), (" 12 ", 12), ("four", 4), ("Seven.", 7)])
def test_integer_accepts_digits_and_words(raw: str, value: int) -> None:
    assert integer(min=1, max=12)(say(raw), ctx()) == Accepted(value, str(value))


@pytest.mark.parametrize(
    ("raw", "hint"), [("0", "too small"), ("13", "more than the 12"), ("lots", "isn't a number")]
)
def test_integer_rejections_say_what_is_wanted(raw: str, hint: str) -> None:
    outcome = integer(min=1, max=12)(say(raw), ctx())
    assert isinstance(outcome, Rejected)
    assert hint in outcome.reason and "between 1 and 12" in outcome.reason


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2027-07-14", "2027-07-14"),
        ("14/07/2027", "2027-07-14"),
        ("14 Jul 2027", "2027-07-14"),
        ("tomorrow", "2026-11-26"),
        ("today", "2026-11-25"),
        ("3 Jan", "2027-01-03"),
    ],
)
def test_dates_in_common_spellings(raw: str, iso: str) -> None:
    assert date(future=True)(say(raw), ctx()) == Accepted(iso, iso)


def test_dates_in_the_past_or_nonsense_are_rejected() -> None:
    past = date(future=True)(say("01/01/2020"), ctx())
    assert isinstance(past, Rejected) and "25 Nov 2026 onwards" in past.reason
    assert isinstance(date()(say("next blursday"), ctx()), Rejected)


def test_choice_by_tap_number_title_or_id() -> None:
    options = [Option("small", "Small"), Option("large", "Large")]
    check = choice()
    tap = UserMessage(id="x", kind="reply", reply_id="large", text="Large")
    assert check(tap, ctx(options=options)) == Accepted("large", "Large")
    assert check(say("1"), ctx(options=options)) == Accepted("small", "Small")
    assert check(say("LARGE"), ctx(options=options)) == Accepted("large", "Large")
    wrong = check(say("medium"), ctx(options=options))
    assert isinstance(wrong, Rejected) and "1. Small, 2. Large" in wrong.reason


def test_yes_no() -> None:
    assert yes_no()(say("Yep"), ctx()) == Accepted(True, "yes")
    assert yes_no()(say("nah"), ctx()) == Accepted(False, "no")
    assert isinstance(yes_no()(say("maybe"), ctx()), Rejected)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("tendai moyo", "Tendai Moyo"),
        ("Seán O'Neill", "Seán O'Neill"),
        ("Nomsa  Ndlovu-Dube", "Nomsa Ndlovu-Dube"),
    ],
)
def test_person_names(raw: str, value: str) -> None:
    assert person_name()(say(raw), ctx()) == Accepted(value, value)


@pytest.mark.parametrize("raw", ["R2D2", "x", "<script>", "ab" * 60])
def test_not_names(raw: str) -> None:
    assert isinstance(person_name()(say(raw), ctx()), Rejected)


def test_email_and_phone() -> None:
    assert email()(say("Ada@Example.com"), ctx()) == Accepted("Ada@example.com", "Ada@example.com")
    assert isinstance(email()(say("ada@"), ctx()), Rejected)
    assert phone()(say("077 123 4567"), ctx(default_region="ZW")) == Accepted(
        "+263771234567", "+263771234567"
    )
    assert phone()(say("+44 20 7946 0958"), ctx()) == Accepted("+442079460958", "+442079460958")
    assert isinstance(phone()(say("12"), ctx()), Rejected)


def test_media_checks_kind_type_and_size() -> None:
    check = media(max_mb=1)
    pdf = UserMessage(
        id="x",
        kind="document",
        media=Media(id="m1", mime_type="application/pdf", filename="id.pdf", size=1000),
    )
    accepted = check(pdf, ctx())
    assert isinstance(accepted, Accepted) and accepted.value["id"] == "m1"
    big = UserMessage(
        id="x", kind="image", media=Media(id="m2", mime_type="image/png", size=5 << 20)
    )
    assert "too large" in check(big, ctx()).reason  # type: ignore[union-attr]
    gif = UserMessage(id="x", kind="image", media=Media(id="m3", mime_type="image/gif"))
    assert "isn't accepted" in check(gif, ctx()).reason  # type: ignore[union-attr]
    assert isinstance(check(say("here it is"), ctx()), Rejected)


def test_text_rejects_non_text_politely() -> None:
    sticker = UserMessage(id="x", kind="sticker", media=Media(id="s", mime_type="image/webp"))
    outcome = text()(sticker, ctx())
    assert isinstance(outcome, Rejected) and "sticker" in outcome.reason
    assert isinstance(text(max_length=5)(say("too long text"), ctx()), Rejected)
