"""Checks on a file before it is stored: size, checksum, what its bytes really are, and
images that would explode when decoded.

One set of checks for every way a file comes in: media a customer sent on WhatsApp (the
channel's downloader, :mod:`bot.whatsapp.media`) and files an operator attaches in the
console's chat simulator. A file that fails is refused with a reason a customer can read
(:class:`FileRefusedError`) and is never stored.

The type comes from the bytes, not from what the sender claims: ``filetype`` matches the
signatures of binary formats (no system library needed), text is recognised by decoding
it, and markup or programs (HTML, SVG, scripts, executables) are refused whatever they
claim to be. Images are measured from their header with Pillow before anything decodes
their pixels, so a decompression bomb is refused without being unpacked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import filetype
from PIL import Image, UnidentifiedImageError

from storage import NyalaError

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = [
    "INLINE_IMAGE_TYPES",
    "CheckedFile",
    "FileLimits",
    "FileRefusedError",
    "check_file",
    "human_size",
    "sha256_matches",
]

MB: Final = 1024 * 1024
KB: Final = 1024
GENERIC_TYPES: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# Images a browser shows inline (so the operator's browser would decode them).
INLINE_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
_PILLOW_FORMATS: Final = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}
# What WhatsApp delivers per message type (Meta's supported media types).
_KIND_TYPES: Final[dict[str, frozenset[str]]] = {
    "image": frozenset({"image/jpeg", "image/png"}),
    "sticker": frozenset({"image/webp"}),
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
    "video": frozenset({"video/mp4", "video/3gpp"}),
}
_ALIASES: Final = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/opus": "audio/ogg",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/mp3": "audio/mpeg",
    "application/x-pdf": "application/pdf",
    "video/3gp": "video/3gpp",
}
# Formats that share one container: the signature cannot tell them apart reliably.
_FAMILIES: Final = (
    frozenset({  # ZIP containers
        "application/zip",
        "application/epub+zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
    }),
    frozenset({  # OLE compound files (old Office)
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
    }),
    frozenset({  # ISO base media files
        "video/mp4", "video/3gpp", "video/quicktime", "video/x-m4v", "audio/mp4", "audio/aac",
    }),
)  # fmt: skip
# Active content: refused whatever the file claims to be.
_DANGEROUS: Final = frozenset({
    "text/html", "image/svg+xml", "text/javascript", "application/x-sh",
    "application/x-msdownload", "application/x-executable", "application/x-shockwave-flash",
    "application/wasm", "application/x-google-chrome-extension", "application/x-deb",
    "application/x-rpm",
})  # fmt: skip
_MARKUP: Final = (
    b"<!doctype", b"<html", b"<head", b"<body", b"<script", b"<svg", b"<?xml", b"<iframe",
    b"<meta", b"<a ", b"<img", b"<object", b"<embed", b"<!--",
)  # fmt: skip
# Types whose files always start with a signature ``filetype`` knows.
_SIGNED: Final = frozenset(str(t.mime) for t in filetype.TYPES) - GENERIC_TYPES
_SIGNED_FAMILIES: Final = ("image/", "audio/", "video/", "text/")
_SNIFF_TEXT: Final = 8192  # bytes looked at to tell text from binary


class FileRefusedError(NyalaError):
    """A file failed a check and was not stored.

    Attributes:
        code: a stable name of the check (``too_large``, ``checksum``, ``mismatch``,
            ``active_content``, ``bomb``, ``damaged``, ``wrong_kind``, ``empty``).
        reason: what the customer or operator is told (lower case, no final full stop,
            so it reads inside a sentence).
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class FileLimits:
    """The largest files accepted, per WhatsApp media type (Meta's own limits by
    default), and the most pixels an image may have."""

    image_bytes: int = 5 * MB
    audio_bytes: int = 16 * MB
    video_bytes: int = 16 * MB
    document_bytes: int = 100 * MB
    sticker_bytes: int = 100 * KB
    animated_sticker_bytes: int = 500 * KB
    image_pixels: int = 50_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> FileLimits:
        """The limits the settings choose (``NYALA_MEDIA_MAX_*``)."""
        return cls(
            image_bytes=settings.media_max_image_bytes,
            audio_bytes=settings.media_max_audio_bytes,
            video_bytes=settings.media_max_video_bytes,
            document_bytes=settings.media_max_document_bytes,
            sticker_bytes=settings.media_max_sticker_bytes,
            animated_sticker_bytes=settings.media_max_animated_sticker_bytes,
            image_pixels=settings.media_max_image_pixels,
        )

    def max_bytes(self, kind: str, *, animated: bool = False) -> int:
        """The size limit of a WhatsApp message ``kind`` (documents' for anything else)."""
        if kind == "sticker":
            return self.animated_sticker_bytes if animated else self.sticker_bytes
        return {
            "image": self.image_bytes,
            "audio": self.audio_bytes,
            "video": self.video_bytes,
        }.get(kind, self.document_bytes)


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """A file that passed every check.

    Attributes:
        mime_type: what its bytes are (not what was claimed).
        kind: ``image`` or the kind it came as (``document`` for other uploads).
        size: bytes.
        sha256: hex digest.
    """

    mime_type: str
    kind: str
    size: int
    sha256: str


def sha256_matches(digest: bytes, claimed: str) -> bool:
    """Whether ``claimed`` (base64 as in Meta's webhooks, or hex) is ``digest``."""
    text = claimed.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text) == digest
        except ValueError:
            pass
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True) == digest
    except (binascii.Error, ValueError):
        return False


def human_size(size: int) -> str:
    """``5 MB``, ``500 KB``: a limit as people read it."""
    return f"{size / MB:g} MB" if size >= MB else f"{size // KB} KB"


def _normal(mime: str | None) -> str:
    base = (mime or "").split(";")[0].strip().lower()
    return _ALIASES.get(base, base)


def _same(claimed: str, sniffed: str) -> bool:
    if claimed == sniffed:
        return True
    if claimed.startswith("text/") and sniffed == "text/plain":
        return True  # CSV, Markdown, ...: text is all the bytes can say
    return any(claimed in family and sniffed in family for family in _FAMILIES)


def _text_kind(data: bytes) -> str | None:
    """``text/html`` for markup or a script, ``text/plain`` for other text, else None."""
    head = data[:_SNIFF_TEXT]
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith(b"#!"):
        return "application/x-sh"
    if lowered.startswith(_MARKUP) or any(
        tag in lowered[:1024] for tag in (b"<script", b"<html", b"<svg", b"<iframe")
    ):
        return "image/svg+xml" if b"<svg" in lowered[:1024] else "text/html"
    if b"\x00" in head:
        return None
    for cut in range(4):  # the prefix may end inside a character
        try:
            head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return "text/plain"
    return None


def sniff(data: bytes) -> str | None:
    """What ``data`` is, from its bytes: a MIME type, or ``None`` when unknown."""
    guessed = filetype.guess_mime(data[:_SNIFF_TEXT])
    if guessed:
        return _ALIASES.get(str(guessed), str(guessed))
    return _text_kind(data)


def _check_image(data: bytes, mime: str, max_pixels: int) -> None:
    """Measure an image from its header only; a bomb or an unreadable image is refused.

    Pillow's own bomb guard is made an error too, so that no decoder runs on it.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[mime]]) as image:
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise FileRefusedError(
            "bomb", "the picture has far too many pixels to open safely"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FileRefusedError("damaged", "the picture is damaged and cannot be opened") from exc
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise FileRefusedError("bomb", "the picture has far too many pixels to open safely")


def check_file(
    data: bytes,
    *,
    kind: str | None,
    claimed_mime: str | None,
    limits: FileLimits,
    expected_sha256: str | None = None,
    animated: bool = False,
) -> CheckedFile:
    """Check a file before storing it.

    Args:
        data: the bytes.
        kind: the WhatsApp message type it came as (``image``, ``document``, ``audio``,
            ``video``, ``sticker``); ``None`` for a console upload, whose kind follows
            from the bytes (``image`` or ``document``).
        claimed_mime: the type the sender claims (empty or ``application/octet-stream``:
            no claim).
        limits: the size and pixel limits.
        expected_sha256: the checksum the sender gave (base64 or hex), if any.
        animated: an animated sticker (its own size limit).

    Returns:
        What the file really is.

    Raises:
        FileRefusedError: a check failed; nothing may be stored.
    """
    limit = limits.max_bytes(kind or "document", animated=animated)
    if len(data) > limit:
        raise FileRefusedError("too_large", f"it is larger than {human_size(limit)}, the limit")
    if not data:
        raise FileRefusedError("empty", "the file is empty")
    digest = hashlib.sha256(data)
    if expected_sha256 and not sha256_matches(digest.digest(), expected_sha256):
        raise FileRefusedError(
            "checksum", "it did not arrive intact (its checksum does not match)"
        )
    claimed = _normal(claimed_mime)
    sniffed = sniff(data)
    if sniffed in _DANGEROUS or claimed in _DANGEROUS:
        raise FileRefusedError(
            "active_content", "it contains a web page or a program, not a photo or document"
        )
    if claimed in GENERIC_TYPES:
        mime = sniffed or "application/octet-stream"
    elif sniffed is not None and not _same(claimed, sniffed):
        raise FileRefusedError("mismatch", f"its content is not a real {claimed} file")
    elif sniffed is None and (claimed in _SIGNED or claimed.startswith(_SIGNED_FAMILIES)):
        # Bytes without a known signature may be a rare document format, but never a
        # photo, a recording, a PDF or text that claims to be one.
        raise FileRefusedError("mismatch", f"its content is not a real {claimed} file")
    else:
        mime = claimed
    final_kind = kind or ("image" if mime in INLINE_IMAGE_TYPES else "document")
    allowed = _KIND_TYPES.get(final_kind)
    if kind is not None and allowed is not None and mime not in allowed:
        raise FileRefusedError("wrong_kind", f"a {mime} file cannot be sent as a {kind}")
    if mime in _PILLOW_FORMATS:
        _check_image(data, mime, limits.image_pixels)
    return CheckedFile(mime_type=mime, kind=final_kind, size=len(data), sha256=digest.hexdigest())
