"""HTML → PDF with xhtml2pdf, locked down, in worker processes owned by a renderer object.

:func:`html_to_pdf` converts under :data:`RESOURCE_POLICY_OPTIONS`, a resource policy
that allows no network access and no local file reads at all: whatever the markup asks
for (``<img src>``, ``@import``, ``@font-face``, backgrounds, ``<pdf:*>`` tags) is
refused and left out. ``data:`` URIs are part of the document (a logo is embedded that
way, see :mod:`documents.branding`).

xhtml2pdf is pure Python holding the GIL: in a thread it would stall the event loop for
the whole render. :class:`PdfRenderer` runs it in a process pool it creates on first use
(spawned, never forked from a process with an event loop) and shuts down on
:meth:`PdfRenderer.close`. An app makes one when it starts and puts it in its runtime's
services; no module holds a pool::

    renderer = runtime.services.provide(PdfRenderer, PdfRenderer(workers=2))
    pdf = await renderer.render(html)
    ...
    renderer.close()

Fonts. Every text is drawn in TrueType fonts embedded (subset) in the PDF, never in
PDF's base-14 Helvetica, whose few hundred glyphs print "■ukasz" for "Łukasz".
:data:`DEFAULT_FONTS` are fixed system paths (Debian packages ``fonts-dejavu-core``:
Latin, Greek, Cyrillic, Vietnamese, Armenian, Georgian, Hebrew, Arabic letters and more;
``fonts-wqy-zenhei``: Chinese, Japanese, Korean; ``fonts-sil-abyssinica``: Ethiopic, for
Amharic and Tigrinya); an app may give its own :class:`FontFace` tuple to the renderer. They are
registered with ReportLab directly, not through ``@font-face``, so the resource policy
still lets a document read nothing. :data:`FONT_STACK` (the CSS family list, e.g.
``font-family: "DejaVu Sans", "WenQuanYi Zen Hei"``) is the default of every element;
xhtml2pdf draws each character in the first family of the list that has it.

A document that cannot be drawn is never produced: a character none of the fonts has, a
run whose font-family list lacks the font that has it, or a font that would not be
embedded (a template asking for Helvetica) raises :class:`~documents.errors.MissingGlyphError`
or :class:`~documents.errors.RenderError`, so the caller's transaction stores nothing and
takes no number.

Metadata. The PDF's document information (title, author, subject, creator; Unicode) is
read from the document's head, ``<title>`` and ``<meta name="author|subject|creator"
content="…">``, or given to :func:`html_to_pdf` as a :class:`PdfMetadata`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import io
import logging
import multiprocessing
import threading
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

from documents.errors import DocumentError, MissingGlyphError, RenderError

log = logging.getLogger("nyala.documents")

__all__ = [
    "DEFAULT_FONTS",
    "FONT_STACK",
    "PDF_MIME",
    "RESOURCE_POLICY_OPTIONS",
    "FontFace",
    "PdfMetadata",
    "PdfRenderer",
    "font_stack",
    "html_to_pdf",
    "installed_fonts",
]

PDF_MIME: Final = "application/pdf"

# What xhtml2pdf may fetch while rendering: nothing. ``allow_remote=False`` refuses every
# http(s) URL before any connection; ``base_dir=None`` (with no extra roots) names no
# directory a document may read, which refuses every local path and file: URL; other
# schemes are refused anyway. ``ResourceAccessPolicy.server`` also turns on its limits on
# size, depth and time.
RESOURCE_POLICY_OPTIONS: Final[dict[str, Any]] = {
    "base_dir": None,
    "allow_remote": False,
    "allow_private_networks": False,
    "extra_roots": (),
    "allow_local_outside_base": False,
    "max_render_seconds": 60,
}


@dataclass(frozen=True, slots=True)
class FontFace:
    """A TrueType font family the renderer embeds (fixed paths, never named by a document).

    Attributes:
        family: the CSS family name (``"DejaVu Sans"``).
        regular: the regular face: a ``.ttf``, or a ``.ttc`` collection with ``subfont``.
            TrueType outlines only: ReportLab cannot embed CFF-based OpenType.
        bold: the bold face (default: the regular one).
        subfont: the face's index in a ``.ttc`` collection.
    """

    family: str
    regular: Path
    bold: Path | None = None
    subfont: int = 0

    @property
    def font_name(self) -> str:
        """The ReportLab name of the regular face (``DejaVuSans``)."""
        return "Nyala-" + "".join(c for c in self.family if c.isalnum())


FONTS_DIR: Final = Path("/usr/share/fonts/truetype")

# Debian: fonts-dejavu-core, fonts-wqy-zenhei, fonts-sil-abyssinica (.ci/run installs them).
DEFAULT_FONTS: Final[tuple[FontFace, ...]] = (
    FontFace(
        "DejaVu Sans",
        FONTS_DIR / "dejavu" / "DejaVuSans.ttf",
        FONTS_DIR / "dejavu" / "DejaVuSans-Bold.ttf",
    ),
    FontFace("WenQuanYi Zen Hei", FONTS_DIR / "wqy" / "wqy-zenhei.ttc", subfont=0),
    FontFace("Abyssinica SIL", FONTS_DIR / "abyssinica" / "AbyssinicaSIL-Regular.ttf"),
)


def font_stack(fonts: Sequence[FontFace] = DEFAULT_FONTS) -> str:
    """The CSS font-family list of ``fonts`` (``"DejaVu Sans", "WenQuanYi Zen Hei"``)."""
    return ", ".join(f'"{face.family}"' for face in fonts)


FONT_STACK: Final = font_stack()

DEFAULT_CREATOR: Final = "Nyala"


@dataclass(frozen=True, slots=True, kw_only=True)
class PdfMetadata:
    """The PDF's document information.

    Attributes:
        title: ``Receipt RCT-2026-000042``.
        author: who issues the document (the business).
        subject: what it is about.
        creator: the application that made it.
    """

    title: str
    author: str
    subject: str = ""
    creator: str = DEFAULT_CREATOR


@functools.cache
def installed_fonts(fonts: tuple[FontFace, ...]) -> tuple[FontFace, ...]:
    """The faces of ``fonts`` whose files are on this machine (a missing one is said once,
    in the log): a machine without the CJK package still prints every Latin, Greek and
    Cyrillic name, and refuses the others loudly (:class:`MissingGlyphError`) instead of
    failing every document.

    Raises:
        RenderError: none of ``fonts`` is installed.
    """
    found = []
    for face in fonts:
        if not face.regular.is_file():
            log.warning(
                "font %r is not installed (%s): text only it has cannot be printed",
                face.family,
                face.regular,
            )
            continue
        has_bold = face.bold is None or face.bold.is_file()
        found.append(face if has_bold else dataclasses.replace(face, bold=None))
    if not found:
        raise RenderError(
            "no font to embed is installed; install fonts-dejavu-core "
            "(and fonts-wqy-zenhei, fonts-sil-abyssinica for more scripts)"
        )
    return tuple(found)


@functools.cache
def _register_fonts(fonts: tuple[FontFace, ...]) -> None:
    """Register ``fonts`` with ReportLab and xhtml2pdf (once per process).

    Raises:
        RenderError: a font file is missing or cannot be embedded.
    """
    from reportlab.lib.fonts import addMapping  # type: ignore[import-untyped]
    from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
    from reportlab.pdfbase.ttfonts import TTFError, TTFont  # type: ignore[import-untyped]
    from xhtml2pdf import default

    for face in fonts:
        regular = face.font_name
        bold = regular + "-Bold" if face.bold is not None else regular
        try:
            pdfmetrics.registerFont(TTFont(regular, str(face.regular), subfontIndex=face.subfont))
            if face.bold is not None:
                pdfmetrics.registerFont(TTFont(bold, str(face.bold), subfontIndex=face.subfont))
        except (OSError, TTFError) as exc:
            raise RenderError(
                f"font {face.family!r} cannot be embedded ({exc}); install its package "
                "(fonts-dejavu-core, fonts-wqy-zenhei, fonts-sil-abyssinica)"
            ) from exc
        for is_bold, name in ((0, regular), (1, bold)):
            for is_italic in (0, 1):  # no italic faces: italics print upright
                addMapping(regular, is_bold, is_italic, name)
                addMapping(bold, is_bold, is_italic, bold)  # the bold face as a family
        # Known to every later xhtml2pdf document by its CSS family name.
        default.DEFAULT_FONT[face.family.lower()] = regular


# PDF's base-14 fonts, which are never embedded, and which ReportLab and xhtml2pdf use
# by name in many places (a page's initial font, table cells, list bullets, barcodes).
_BASE14: Final = (
    "Helvetica", "Helvetica-Bold", "Helvetica-Oblique", "Helvetica-BoldOblique",
    "Times-Roman", "Times-Bold", "Times-Italic", "Times-BoldItalic",
    "Courier", "Courier-Bold", "Courier-Oblique", "Courier-BoldOblique",
    "Symbol", "ZapfDingbats",
)  # fmt: skip
_render_lock = threading.Lock()


@functools.cache
def _stand_ins(fonts: tuple[FontFace, ...]) -> dict[str, Any]:
    """TrueType stand-ins for the base-14 names: the first of ``fonts`` (its bold face for
    the bold names), registered under those names while a document renders."""
    from reportlab.pdfbase.ttfonts import TTFont

    first = fonts[0]
    bold = first.bold or first.regular
    return {
        name: TTFont(name, str(bold if "Bold" in name else first.regular), first.subfont)
        for name in _BASE14
    }


class _Base14StandIns:
    """While it is entered, the base-14 names draw in (embedded) TrueType stand-ins."""

    def __init__(self, fonts: tuple[FontFace, ...]) -> None:
        self.stand_ins = _stand_ins(fonts)

    def _forget_coverage(self) -> None:
        from xhtml2pdf import util

        for name in self.stand_ins:
            util._font_coverage.pop(name, None)

    def __enter__(self) -> None:
        from reportlab.pdfbase import pdfmetrics

        self._forget_coverage()
        for font in self.stand_ins.values():
            pdfmetrics.registerFont(font)

    def __exit__(self, *exc: object) -> None:
        from reportlab.pdfbase import pdfmetrics

        for name in self.stand_ins:
            # ReportLab has no unregister; a base-14 name left out of its registry is
            # made again, as the standard font, on its next use.
            pdfmetrics._fonts.pop(name, None)
        self._forget_coverage()


@functools.cache
def _coverage(fonts: tuple[FontFace, ...]) -> frozenset[int]:
    """Every code point one of ``fonts`` has a glyph for (registered first)."""
    from reportlab.pdfbase import pdfmetrics

    _register_fonts(fonts)
    covered: set[int] = set()
    for face in fonts:
        covered.update(pdfmetrics.getFont(face.font_name).face.charToGlyph)
    return frozenset(covered)


class _TextOf(HTMLParser):
    """The characters a page would show (text outside ``head``, ``style`` and ``script``)."""

    SKIPPED: Final = frozenset({"head", "style", "script", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.chars: set[str] = set()
        self.in_title = False
        self.title = ""
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self.depth += 1
        if tag == "title":
            self.in_title = True
        elif tag == "meta":
            values = dict(attrs)
            name, content = values.get("name"), values.get("content")
            if name and content is not None:
                self.meta.setdefault(name.lower(), " ".join(content.split()))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self.depth:
            self.depth -= 1
        if tag == "title":
            self.in_title = False

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        elif not self.depth:
            self.chars.update(data)

    def metadata(self) -> PdfMetadata:
        """The document information its head gives: ``<title>``, ``<meta name=author>``,
        ``subject`` and ``creator`` (default :data:`DEFAULT_CREATOR`)."""
        return PdfMetadata(
            title=" ".join(self.title.split()),
            author=self.meta.get("author", ""),
            subject=self.meta.get("subject", ""),
            creator=self.meta.get("creator") or DEFAULT_CREATOR,
        )


def _drawn(char: str) -> bool:
    """Whether ``char`` needs a glyph (spaces and invisible format characters do not)."""
    return not (char.isspace() or unicodedata.category(char) in ("Cc", "Cf"))


def _read(html: str, fonts: tuple[FontFace, ...]) -> PdfMetadata:
    """The document information of ``html``'s head, once every character of its text was
    found in one of ``fonts``.

    Raises:
        MissingGlyphError: a character of the text is in none of ``fonts``.
    """
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    covered = _coverage(fonts)
    missing = sorted(c for c in parser.chars if _drawn(c) and ord(c) not in covered)
    if missing:
        raise MissingGlyphError(missing)
    return parser.metadata()


class _GlyphWarnings(logging.Filter):
    """Notes xhtml2pdf's "no font this document has can draw" warnings of one render.

    A filter, not a handler: the records still go where they would have gone.
    """

    LOGGER: Final = "xhtml2pdf.context"

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING and "No font" in message and "can draw" in message:
            self.messages.append(message)
        return True


def _font_dicts(pdf: bytes) -> list[tuple[str, bool]]:
    """Every font of the PDF's pages: (name, embedded)."""
    from pypdf import PdfReader
    from pypdf.generic import DictionaryObject

    seen: dict[str, bool] = {}

    def descriptor_embeds(font: DictionaryObject) -> bool:
        descriptor = font.get("/FontDescriptor")
        if descriptor is None:
            return False
        descriptor = descriptor.get_object()
        return any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))

    def walk(resources: Any, depth: int = 0) -> None:
        if resources is None or depth > 8:
            return
        resources = resources.get_object()
        fonts = resources.get("/Font")
        if fonts is not None:
            for ref in fonts.get_object().values():
                font = ref.get_object()
                name = str(font.get("/BaseFont", "?"))
                if font.get("/Subtype") == "/Type0":
                    embedded = all(
                        descriptor_embeds(d.get_object()) for d in font["/DescendantFonts"]
                    )
                else:
                    embedded = descriptor_embeds(font)
                seen[name] = seen.get(name, True) and embedded
        xobjects = resources.get("/XObject")
        if xobjects is not None:
            for xref in xobjects.get_object().values():
                xobject = xref.get_object()
                if xobject.get("/Subtype") == "/Form":
                    walk(xobject.get("/Resources"), depth + 1)

    for page in PdfReader(io.BytesIO(pdf)).pages:
        walk(page.get("/Resources"))
    return list(seen.items())


def _finish(pdf: bytes, metadata: PdfMetadata) -> bytes:
    """Check that every font is embedded and write the document information."""
    from pypdf import PdfWriter

    loose = sorted(name for name, embedded in _font_dicts(pdf) if not embedded)
    if loose:
        raise RenderError(
            f"fonts {', '.join(loose)} would not be embedded: use the renderer's fonts "
            f"(font-family: {FONT_STACK})"
        )
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    writer.add_metadata(
        {
            "/Title": metadata.title,
            "/Author": metadata.author,
            "/Subject": metadata.subject,
            "/Creator": metadata.creator,
            "/Producer": "xhtml2pdf",
        }
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def html_to_pdf(
    html: str,
    metadata: PdfMetadata | None = None,
    fonts: tuple[FontFace, ...] = DEFAULT_FONTS,
) -> bytes:
    """Convert HTML to PDF with xhtml2pdf, allowed to fetch nothing (in this process).

    Every text is drawn in ``fonts`` (:data:`FONT_STACK` unless the document's styles
    name them otherwise), embedded. The document information is ``metadata``, else what
    the head gives (``<title>``, ``<meta name="author|subject|creator" content="…">``).

    Raises:
        MissingGlyphError: a character of the text is in none of ``fonts``, or drawn in
            a family list without the one that has it.
        RenderError: xhtml2pdf reported errors, or a font would not be embedded.
    """
    from xhtml2pdf import default, pisa  # heavy: imported where PDFs are made (the workers)
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    fonts = installed_fonts(fonts)
    read = _read(html, fonts)
    _register_fonts(fonts)
    stack = font_stack(fonts)
    css = (
        f"{default.DEFAULT_CSS}\nhtml, body, pre, code, tt, kbd, samp {{ font-family: {stack} }}\n"
    )
    policy = ResourceAccessPolicy.server(**RESOURCE_POLICY_OPTIONS)
    out = io.BytesIO()
    warnings = _GlyphWarnings()
    xhtml2pdf_log = logging.getLogger(_GlyphWarnings.LOGGER)
    with _render_lock, _Base14StandIns(fonts):  # one render at a time in a process
        xhtml2pdf_log.addFilter(warnings)
        try:
            status = pisa.pisaDocument(
                html, dest=out, encoding="utf-8", resource_policy=policy,
                raise_exception=True, default_css=css,
            )  # fmt: skip
        finally:
            xhtml2pdf_log.removeFilter(warnings)
    if warnings.messages:
        raise MissingGlyphError((), warnings.messages[0])
    if status.err:
        raise RenderError(f"the PDF could not be rendered ({status.err} errors)")
    return _finish(out.getvalue(), metadata or read)


class PdfRenderer:
    """Renders HTML to PDF in worker processes, off the event loop.

    Args:
        workers: worker processes (at least 1), started on the first render.
        fonts: the fonts every document is drawn in (fixed paths; :data:`DEFAULT_FONTS`).
    """

    def __init__(self, workers: int = 2, fonts: Sequence[FontFace] = DEFAULT_FONTS) -> None:
        self.workers = max(1, workers)
        self.fonts = tuple(fonts)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._pool else "idle")
        return f"PdfRenderer(workers={self.workers}, {state})"

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RenderError("the PDF renderer is closed")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
                )
            return self._pool

    async def render(self, html: str) -> bytes:
        """The PDF of ``html`` (:func:`html_to_pdf` in a worker process).

        Raises:
            MissingGlyphError: a character cannot be drawn with the renderer's fonts.
            RenderError: the render failed, its worker died, or the renderer is closed.
        """
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                pool, html_to_pdf, html, None, self.fonts
            )
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:
                    self._pool = None  # the next render starts new workers
            raise RenderError(f"the render worker died: {exc}") from exc
        except DocumentError:
            raise
        except Exception as exc:
            raise RenderError(f"the PDF could not be rendered: {exc}") from exc

    def close(self) -> None:
        """Stop the worker processes; later renders raise :class:`RenderError`."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._closed = True
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
