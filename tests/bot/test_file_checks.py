"""bot/files.py: one set of checks for every file that comes in (WhatsApp media and
console uploads): size per WhatsApp type, checksum, the real type from the bytes, bombs."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile

import pytest
from PIL import Image

from bot.files import FileLimits, FileRefusedError, check_file, sha256_matches, sniff
from bot.settings import Settings
from tests.bot.test_media_download import bomb_png, png

LIMITS = FileLimits()


def refused(data: bytes, **kwargs: object) -> str:
    arguments: dict[str, object] = {"kind": "document", "claimed_mime": None, **kwargs}
    with pytest.raises(FileRefusedError) as caught:
        check_file(data, limits=LIMITS, **arguments)  # type: ignore[arg-type]
    return caught.value.code


def test_the_checksum_is_base64_or_hex() -> None:
    data = png()
    digest = hashlib.sha256(data).digest()
    assert sha256_matches(digest, base64.b64encode(digest).decode())
    assert sha256_matches(digest, digest.hex())
    assert sha256_matches(digest, digest.hex().upper())
    assert not sha256_matches(digest, hashlib.sha256(b"other").hexdigest())
    assert not sha256_matches(digest, "not a checksum")
    assert refused(data, kind="image", claimed_mime="image/png", expected_sha256="0" * 64) == (
        "checksum"
    )


def test_whatsapps_limits_per_type() -> None:
    assert LIMITS.max_bytes("image") == 5 * 1024 * 1024
    assert LIMITS.max_bytes("video") == LIMITS.max_bytes("audio") == 16 * 1024 * 1024
    assert LIMITS.max_bytes("document") == 100 * 1024 * 1024
    assert LIMITS.max_bytes("sticker") == 100 * 1024
    assert LIMITS.max_bytes("sticker", animated=True) == 500 * 1024
    big = b"\x89PNG" + b"\x00" * (5 * 1024 * 1024)
    assert refused(big, kind="image", claimed_mime="image/png") == "too_large"
    assert refused(b"", kind="image", claimed_mime="image/png") == "empty"


def test_limits_come_from_the_settings() -> None:
    settings = Settings(media_max_image_bytes=1000, media_max_image_pixels=100)
    limits = FileLimits.from_settings(settings)
    assert limits.image_bytes == 1000 and limits.image_pixels == 100
    with pytest.raises(FileRefusedError) as caught:
        check_file(png(20, 20), kind="image", claimed_mime="image/png", limits=limits)
    assert caught.value.code == "bomb"


def test_the_type_is_what_the_bytes_are() -> None:
    checked = check_file(png(), kind=None, claimed_mime=None, limits=LIMITS)
    assert (checked.mime_type, checked.kind) == ("image/png", "image")
    pdf = check_file(b"%PDF-1.4\n%\xe2\xe3", kind=None, claimed_mime="", limits=LIMITS)
    assert (pdf.mime_type, pdf.kind) == ("application/pdf", "document")
    csv = check_file(b"a,b\n1,2\n", kind="document", claimed_mime="text/csv", limits=LIMITS)
    assert csv.mime_type == "text/csv"
    assert sniff(b"plain words") == "text/plain"
    assert sniff(b"\x00\x01\x02binary") is None


def test_an_office_file_is_a_zip_underneath() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    checked = check_file(out.getvalue(), kind="document", claimed_mime=docx, limits=LIMITS)
    assert checked.mime_type == docx


@pytest.mark.parametrize(
    ("data", "claimed"),
    [
        (b"<!DOCTYPE html><p>hi</p>", "image/png"),
        (b"  <script>alert(1)</script>", "text/plain"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image/svg+xml"),
        (b"#!/bin/sh\nrm -rf /\n", "text/plain"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", "application/pdf"),
        (b"hello", "text/html"),
    ],
)
def test_active_content_is_refused_whatever_it_claims(data: bytes, claimed: str) -> None:
    assert refused(data, claimed_mime=claimed) in ("active_content", "mismatch")


def test_bytes_that_are_not_what_they_claim_are_refused() -> None:
    assert refused(b"%PDF-1.4", claimed_mime="image/png", kind="image") == "mismatch"
    assert refused(png(), claimed_mime="application/pdf") == "mismatch"
    assert refused(b"\x00\x01\x02\x03", claimed_mime="image/jpeg", kind="image") == "mismatch"
    # A PDF is a document, never a WhatsApp image (those are JPEG or PNG).
    assert refused(b"%PDF-1.4", claimed_mime="application/pdf", kind="image") == "wrong_kind"


def test_images_are_measured_before_anything_decodes_them() -> None:
    assert refused(bomb_png(), claimed_mime="image/png", kind="image") == "bomb"
    damaged = png()[:40]
    assert refused(damaged, claimed_mime="image/png", kind="image") == "damaged"
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "JPEG")
    jpeg = check_file(out.getvalue(), kind="image", claimed_mime="image/jpg", limits=LIMITS)
    assert jpeg.mime_type == "image/jpeg"
