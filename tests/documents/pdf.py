"""Reading generated PDFs in tests with a real extractor (poppler's ``pdftotext``)."""

from __future__ import annotations

import pathlib
import subprocess
import tempfile


def pdf_text(pdf: bytes) -> str:
    """The PDF's text by ``pdftotext``, whitespace collapsed."""
    assert pdf.startswith(b"%PDF")
    out = subprocess.run(
        ["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    return " ".join(out.split())


def _poppler(tool: str, pdf: bytes, tmp: str) -> str:
    # pdffonts and pdfinfo read a file, not standard input.
    path = pathlib.Path(tmp) / "doc.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        [tool, str(path)], capture_output=True, check=True, timeout=60
    ).stdout.decode()


def pdf_fonts(pdf: bytes) -> list[tuple[str, bool]]:
    """Every font of the PDF by poppler's ``pdffonts``: (name, embedded)."""
    assert pdf.startswith(b"%PDF")
    with tempfile.TemporaryDirectory() as tmp:
        lines = _poppler("pdffonts", pdf, tmp).splitlines()
    header = lines[0]
    emb = header.index(" emb ") + 1
    return [(line.split()[0], line[emb : emb + 3] == "yes") for line in lines[2:] if line]


def pdf_info(pdf: bytes) -> dict[str, str]:
    """The PDF's document information by poppler's ``pdfinfo`` (``{"Title": ...}``)."""
    assert pdf.startswith(b"%PDF")
    with tempfile.TemporaryDirectory() as tmp:
        out = _poppler("pdfinfo", pdf, tmp)
    info: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info
