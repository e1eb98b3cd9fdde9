"""The generic HTML → PDF renderer: a real PDF, escaping left to the templates, nothing
fetched whatever the markup asks for, worker processes owned by the renderer object."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from documents import (
    DEFAULT_FONTS,
    FontFace,
    MissingGlyphError,
    PdfMetadata,
    PdfRenderer,
    RenderError,
    html_to_pdf,
    template_environment,
)
from tests.documents.pdf import pdf_fonts, pdf_info, pdf_text
from tests.documents.trap import trap_server  # noqa: F401 - the fixture `trap`

LOCKDOWN_PROBE = """
import json, sys
from documents.pdf import html_to_pdf
url, secret = sys.argv[1], sys.argv[2]
html = f'''<html><head>
<link rel="stylesheet" href="{url}/link.css">
<style>@import url({url}/import.css); @import url(file://{secret});
@font-face {{ font-family: X; src: url({url}/font.ttf); }}
@font-face {{ font-family: Y; src: url({secret}); }}
body {{ background-image: url({url}/bg.png); }}</style></head><body>
<img src="{url}/img.png"><img src="file://{secret}"><img src="{secret}">
<img src="file:///etc/passwd"><img src="ftp://127.0.0.1/x"><p>text</p>
<pdf:barcode value="x"/></body></html>'''
events = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)) and (
        "passwd" in str(args[0]) or "secret" in str(args[0])):
        events.append(("open", str(args[0])))
    elif event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        events.append((event, repr(args)[:200]))
sys.addaudithook(hook)
pdf = html_to_pdf(html)
print(json.dumps({"events": events, "pdf": pdf[:4].decode()}))
"""


async def test_the_renderer_itself_reads_no_file_and_opens_no_connection(
    tmp_path: Path, trap: tuple[str, list[str]]
) -> None:
    """Even markup that escaped the template would fetch nothing: the policy refuses it."""
    url, hits = trap
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not really")
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKDOWN_PROBE, url, str(secret),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(probe.communicate(), 120)
    assert probe.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result == {"events": [], "pdf": "%PDF"}
    assert hits == []
    assert "Blocked by the resource policy" in err.decode()


async def test_the_renderer_renders_in_its_workers_and_stops_with_close() -> None:
    renderer = PdfRenderer(workers=1)
    try:
        pdf = await renderer.render("<html><body><p>Hello &amp; welcome</p></body></html>")
        assert "Hello & welcome" in pdf_text(pdf)
        again = await asyncio.gather(*(renderer.render(f"<p>page {n}</p>") for n in range(3)))
        assert [pdf_text(p) for p in again] == ["page 0", "page 1", "page 2"]
    finally:
        renderer.close()
    with pytest.raises(RenderError, match="closed"):
        await renderer.render("<p>late</p>")


async def test_two_renderers_are_independent() -> None:
    first, second = PdfRenderer(workers=1), PdfRenderer(workers=1)
    try:
        assert (await first.render("<p>a</p>")).startswith(b"%PDF")
        first.close()
        assert pdf_text(await second.render("<p>b</p>")) == "b"
    finally:
        first.close()
        second.close()


def test_templates_escape_every_value_and_write_money_one_way(tmp_path: Path) -> None:
    shipped, overrides = tmp_path / "shipped", tmp_path / "mine"
    shipped.mkdir()
    overrides.mkdir()
    (shipped / "doc.html").write_text("<p>{{ name }}: {{ amount | money(currency) }}</p>")
    (shipped / "other.html").write_text("shipped")
    (overrides / "other.html").write_text("mine")
    env = template_environment(shipped, overrides)
    html = env.get_template("doc.html").render(
        name="<script>x</script>", amount="1040", currency="usd"
    )
    assert html == "<p>&lt;script&gt;x&lt;/script&gt;: USD 1,040.00</p>"
    assert env.get_template("other.html").render() == "mine"


# --- fonts and metadata ------------------------------------------------------------------

EVERY_SCRIPT_NAME = "Łukasz Żółć 王芳 Nguyễn"
# Names the bot's name validator accepts, in the scripts the embedded fonts cover.
NAMES = (
    EVERY_SCRIPT_NAME, "Ελένη Παπαδοπούλου", "Иван Петров", "Nguyễn Thị Minh Khai",
    "山田 花子", "김민준", "Ṭọ́lá Àdìgún", "Şükrü Öztürk", "Ēriks Bērziņš", "Ανδρέας",
    "Ашот Ա Խ", "ნინო", "שרה", "Dvořák Ångström", "Åsa Ærø", "やまだ カタカナ",
    "አበበ ቢቂላ",
)  # fmt: skip


def test_every_name_prints_in_embedded_fonts_even_where_the_markup_asks_for_base_14() -> None:
    """Default text, bold text, text a style puts in Helvetica, Times or Courier, list
    bullets, table cells and a barcode: all drawn in the embedded TrueType fonts."""
    rows = "".join(f"<tr><td>{n}</td><td><b>{n}</b></td></tr>" for n in NAMES)
    html = f"""<html><body><h1>{EVERY_SCRIPT_NAME}</h1><p>{EVERY_SCRIPT_NAME}</p>
    <p style="font-family: Helvetica">Ł Helvetica</p><p style="font-family: Times">Ż</p>
    <pre>ó mono</pre><p style="font-family: NoSuchFont">ễ</p>
    <ul><li>disc</li></ul><ol style="list-style-type: lower-greek"><li>greek</li></ol>
    <table>{rows}</table><pdf:barcode value="RCT-1" humanreadable="1"/></body></html>"""
    pdf = html_to_pdf(html)
    fonts = pdf_fonts(pdf)
    assert fonts and all(embedded for _, embedded in fonts), fonts
    names = {name.partition("+")[2] for name, _ in fonts}
    assert names <= {
        "DejaVuSans",
        "DejaVuSans-Bold",
        "WenQuanYiZenHei-0",
        "AbyssinicaSIL-Regular",
    }, names
    text = pdf_text(pdf)
    for name in NAMES:
        assert name in text, (name, text)


@pytest.mark.parametrize(
    "html",
    [
        "<p>Tenzin ཀ</p>",  # Tibetan: in none of the fonts
        "<p>Ngozi <b>𐀀𐀁</b></p>",  # Linear B
        "<table><tr><td>Somchai ก</td></tr></table>",  # Thai
        '<p style="font-family: Helvetica">Wang 王芳</p>',  # a family list without the CJK font
    ],
)
def test_text_no_embedded_font_can_draw_is_an_error_not_a_box(html: str) -> None:
    with pytest.raises(MissingGlyphError, match="no embedded font can draw"):
        html_to_pdf(html)


async def test_the_renderer_reports_a_missing_glyph_from_its_worker() -> None:
    renderer = PdfRenderer(workers=1)
    try:
        with pytest.raises(MissingGlyphError, match="U\\+0F40") as raised:
            await renderer.render("<p>Tenzin ཀ</p>")
        assert raised.value.characters == ("ཀ",)
        assert isinstance(raised.value, RenderError)
    finally:
        renderer.close()


def test_fonts_come_from_fixed_paths_and_no_installed_font_is_an_error(tmp_path: Path) -> None:
    assert all(face.regular.is_absolute() and face.regular.exists() for face in DEFAULT_FONTS)
    missing = (FontFace("Gone Sans", tmp_path / "gone.ttf"),)
    with pytest.raises(RenderError, match="no font to embed is installed"):
        html_to_pdf("<p>x</p>", fonts=missing)


def test_a_missing_font_package_narrows_the_scripts_and_fails_loudly_beyond(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A machine with DejaVu but without the CJK package: Latin names still print, a CJK
    # name is refused (never a box), and the missing font is said in the log.
    dejavu, cjk = DEFAULT_FONTS[0], FontFace("Gone Hei", tmp_path / "gone-hei.ttc")
    with caplog.at_level("WARNING", logger="nyala.documents"):
        pdf = html_to_pdf("<p>Łukasz Żółć Nguyễn</p>", fonts=(dejavu, cjk))
    assert "Łukasz Żółć Nguyễn" in pdf_text(pdf)
    fonts = pdf_fonts(pdf)
    assert fonts and all(embedded for _, embedded in fonts)
    assert {name.split("+")[-1] for name, _ in fonts} <= {"DejaVuSans", "DejaVuSans-Bold"}
    assert "'Gone Hei' is not installed" in caplog.text
    with pytest.raises(MissingGlyphError):
        html_to_pdf("<p>王芳</p>", fonts=(dejavu, cjk))


def test_metadata_comes_from_the_head_or_is_given() -> None:
    head = f"""<html><head><title>Receipt RCT-2026-000001</title>
    <meta name="author" content="Łusaka &amp; Co 王">
    <meta name="subject" content="For {EVERY_SCRIPT_NAME}">
    <meta name="creator" content="Nyala test"></head><body><p>x</p></body></html>"""
    info = pdf_info(html_to_pdf(head))
    assert (info["Title"], info["Author"], info["Subject"], info["Creator"]) == (
        "Receipt RCT-2026-000001", "Łusaka & Co 王", f"For {EVERY_SCRIPT_NAME}", "Nyala test",
    )  # fmt: skip
    given = PdfMetadata(title="T Ł", author="A 王", subject="S ễ", creator="C")
    info = pdf_info(html_to_pdf("<p>x</p>", given))
    assert (info["Title"], info["Author"], info["Subject"], info["Creator"]) == (
        "T Ł", "A 王", "S ễ", "C",
    )  # fmt: skip
    assert pdf_info(html_to_pdf("<p>x</p>"))["Creator"] == "Nyala"
