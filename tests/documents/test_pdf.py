"""The generic HTML → PDF renderer: a real PDF, escaping left to the templates, nothing
fetched whatever the markup asks for, worker processes owned by the renderer object."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from documents import PdfRenderer, RenderError, template_environment
from tests.documents.pdf import pdf_text
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
