"""WhatsApp's formatting in the console: escaped first, then four tags, by WhatsApp's
rules for where a marker may open and close."""

from __future__ import annotations

import pytest

from bot.console.transcript import whatsapp_html


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("tap *Skip*", "tap <strong>Skip</strong>"),
        ("_soon_ ~gone~", "<em>soon</em> <s>gone</s>"),
        ("*bold _and italic_*", "<strong>bold <em>and italic</em></strong>"),
        ("```*as typed*``` *not*", '<span class="wa-mono">*as typed*</span> <strong>not</strong>'),
        ("snake_case_name 2*3*4", "snake_case_name 2*3*4"),  # inside words: as typed
        ("* spaced *", "* spaced *"),
        ("*two\nlines*", "*two\nlines*"),
        ("<b>x</b> *<i>y</i>*", "&lt;b&gt;x&lt;/b&gt; <strong>&lt;i&gt;y&lt;/i&gt;</strong>"),
        ('"quoted" & *more*', "&#34;quoted&#34; &amp; <strong>more</strong>"),
        ("", ""),
    ],
)
def test_markup(text: str, html: str) -> None:
    assert str(whatsapp_html(text)) == html
