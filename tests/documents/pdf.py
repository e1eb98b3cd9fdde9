"""Reading generated PDFs in tests with a real extractor (poppler's ``pdftotext``)."""

from __future__ import annotations

import subprocess


def pdf_text(pdf: bytes) -> str:
    """The PDF's text by ``pdftotext``, whitespace collapsed."""
    assert pdf.startswith(b"%PDF")
    out = subprocess.run(
        ["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    return " ".join(out.split())
