"""Messages Meta accepts: the edge cases of its limits (issue 15, section 3)."""

from __future__ import annotations

import pytest

from bot.whatsapp.message_bodies import message_body, template_body
from flows.messages import (
    LIST_BODY_MAX,
    Buttons,
    ListMenu,
    Option,
    Template,
    Text,
    TitleClashError,
    choice_message,
    fit_titles,
    graphemes,
    shorten,
    shorten_body,
)
from testing.meta_spec import MetaSpec

FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # one grapheme, seven code points
FLAG = "🇿🇼"  # one grapheme, two regional indicators
TO = "+263771234567"


@pytest.fixture(scope="module")
def spec() -> MetaSpec:
    return MetaSpec.load()


# 1. graphemes -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", range(2, 30))
@pytest.mark.parametrize("emoji", [FAMILY, FLAG, "e\u0301", "🏳️\u200d🌈"])
def test_shortening_never_splits_a_grapheme(emoji: str, limit: int) -> None:
    text = "Tour " + emoji * 12
    for cut in (shorten(text, limit), shorten_body(text, limit)):
        assert len(cut) <= limit
        kept = cut.removesuffix("…")
        assert text.startswith(kept)
        # the cut falls on a cluster boundary: the clusters of the kept part are whole
        assert graphemes(kept) == graphemes(text)[: len(graphemes(kept))]


def test_a_long_text_message_is_cut_between_graphemes() -> None:
    body = Text("a" * 4094 + FAMILY).body
    assert body == "a" * 4094 + "…"


# 2. unique titles ----------------------------------------------------------------------


def test_titles_that_shorten_to_the_same_text_stay_unique(spec: MetaSpec) -> None:
    reply = Buttons(
        "Which tour?",
        (Option("a", "Victoria Falls Tour A"), Option("b", "Victoria Falls Tour B")),
    )
    titles = [o.title for o in reply.options]
    assert len(set(titles)) == 2
    assert all(len(t) <= 20 and t.startswith("Victoria Falls") for t in titles)
    assert titles[0].endswith("A") and titles[1].endswith("B")
    assert spec.validate_message(message_body(reply, to=TO)) == []


def test_list_rows_that_shorten_alike_stay_unique(spec: MetaSpec) -> None:
    names = [f"Chobe Riverfront Sunset Cruise {x}" for x in ("Standard", "Premium", "VIP")]
    reply = ListMenu("Pick", tuple(Option(str(i), n) for i, n in enumerate(names)))
    titles = [o.title for o in reply.options]
    assert len(set(titles)) == 3 and all(len(t) <= 24 for t in titles)
    assert spec.validate_message(message_body(reply, to=TO)) == []


def test_titles_that_fit_are_kept_as_they_are() -> None:
    assert fit_titles(["Yes", "No", "Later"], 20) == ("Yes", "No", "Later")


def test_repeated_titles_are_refused_clearly() -> None:
    with pytest.raises(TitleClashError, match="'Confirm' repeats"):
        Buttons("Sure?", (Option("a", "Confirm"), Option("b", "Confirm ")))


def test_titles_that_cannot_be_told_apart_are_refused() -> None:
    a, b = "Tour " + "x" * 30 + " 1 end", "Tour " + "x" * 30 + " 2 end"
    with pytest.raises(TitleClashError, match="cannot be told apart"):
        fit_titles([a, b], 6)


def test_buttons_told_apart_by_their_end_stay_buttons() -> None:
    a = "Big Five Safari 2 days long"
    b = "Big Five Safari 3 days long"
    reply = choice_message("Pick", [Option("a", a), Option("b", b)])
    assert isinstance(reply, Buttons)
    titles = [o.title for o in reply.options]
    assert len(set(titles)) == 2


def test_choice_message_falls_back_to_a_list_when_buttons_cannot_be_unique() -> None:
    # They differ only at the 20th character from either end: 20 characters cannot
    # show it, a 24-character row title can.
    a = "Zambezi " + "y" * 11 + "A" + "z" * 19
    b = "Zambezi " + "y" * 11 + "B" + "z" * 19
    with pytest.raises(TitleClashError):
        fit_titles([a, b], 20)
    reply = choice_message("Pick", [Option("a", a), Option("b", b)], button="Tours")
    assert isinstance(reply, ListMenu)
    assert len({o.title for o in reply.options}) == 2


# 3. empty texts, ids, template parameters -----------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Buttons(" \n\t", (Option("a", "A"),)),
        lambda: Buttons("Body", (Option("a", "   "),)),
        lambda: Buttons("Body", (Option("a", ""),)),
        lambda: ListMenu("", (Option("a", "A"),)),
        lambda: ListMenu("Body", (Option("a", "A"),), button="  "),
        lambda: ListMenu("Body", (Option("a", "\u3000"),)),
        lambda: Text("  \n "),
    ],
)
def test_empty_or_blank_texts_are_refused_when_built(build: object) -> None:
    with pytest.raises(ValueError, match="empty"):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("option_id", "kind", "reason"),
    [
        ("x" * 257, "buttons", "longer than 256"),
        ("x" * 201, "list", "longer than 200"),
        (" yes", "buttons", "leading or trailing"),
        ("yes ", "list", "leading or trailing"),
        ("a\nb", "buttons", "control"),
        ("  ", "list", "empty"),
    ],
)
def test_bad_option_ids_are_refused_when_built(option_id: str, kind: str, reason: str) -> None:
    options = (Option(option_id, "Title"),)
    with pytest.raises(ValueError, match=reason):
        if kind == "buttons":
            Buttons("Body", options)
        else:
            ListMenu("Body", options)


def test_ids_at_the_limit_are_accepted(spec: MetaSpec) -> None:
    buttons = Buttons("Body", (Option("b" * 256, "Title"),))
    rows = ListMenu("Body", (Option("r" * 200, "Title"),))
    for reply in (buttons, rows):
        assert spec.validate_message(message_body(reply, to=TO)) == []


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Tendai\nMoyo", "Tendai Moyo"),
        ("a\tb", "a b"),
        ("a    b", "a b"),
        ("  padded  ", "padded"),
        ("", "-"),
        (" \n\t ", "-"),
        ("Hwange  2 days", "Hwange 2 days"),
    ],
)
def test_template_parameters_are_cleaned(spec: MetaSpec, raw: str, clean: str) -> None:
    template = Template("tour_summary", "en_US", (raw, "ok"))
    assert template.parameters == (clean, "ok")
    body = template_body(template, to=TO)
    sent = body["template"]["components"][0]["parameters"][0]["text"]
    assert sent == clean
    assert "\n" not in sent and "\t" not in sent and "    " not in sent and sent
    assert spec.validate_message(body) == []


def test_blank_header_footer_and_section_title_are_left_out(spec: MetaSpec) -> None:
    reply = ListMenu("Body", (Option("a", "A"),), header=" ", footer="\n", section_title="  ")
    body = message_body(reply, to=TO)
    assert "header" not in body["interactive"] and "footer" not in body["interactive"]
    assert body["interactive"]["action"]["sections"][0]["title"] == "Options"
    assert spec.validate_message(body) == []


# 4. list body --------------------------------------------------------------------------


def test_the_list_body_follows_metas_1024_limit(spec: MetaSpec) -> None:
    assert LIST_BODY_MAX == 1024
    reply = ListMenu("word " * 1000, (Option("a", "A"),))
    assert len(reply.body) == 1024 and reply.body.endswith("…")
    assert spec.validate_message(message_body(reply, to=TO)) == []
