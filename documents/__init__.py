"""Generic documents: data → HTML (Jinja2, escaped) → PDF (xhtml2pdf, locked down, in
worker processes), gap-free numbering, storage, branding and the one money and duration
formatter. The templates and data builders are an app's. Imports only storage."""

from documents.branding import BrandColors, Branding, load_branding
from documents.errors import BrandingError, DocumentError, MissingGlyphError, RenderError
from documents.files import store_document
from documents.formatting import format_duration, format_money
from documents.html import template_environment
from documents.numbering import document_number, take_number
from documents.pdf import (
    DEFAULT_FONTS,
    FONT_STACK,
    PDF_MIME,
    FontFace,
    PdfMetadata,
    PdfRenderer,
    html_to_pdf,
)

__all__ = [
    "DEFAULT_FONTS",
    "FONT_STACK",
    "PDF_MIME",
    "BrandColors",
    "Branding",
    "BrandingError",
    "DocumentError",
    "FontFace",
    "MissingGlyphError",
    "PdfMetadata",
    "PdfRenderer",
    "RenderError",
    "document_number",
    "format_duration",
    "format_money",
    "html_to_pdf",
    "load_branding",
    "store_document",
    "take_number",
    "template_environment",
]
