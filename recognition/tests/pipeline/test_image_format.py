"""The decoded format of an upload: what names and serves a stored copy (never the client's say)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from recognition.pipeline.detection import MtcnnDetector
from recognition.pipeline.errors import ImageDecodeError
from recognition.pipeline.image import format_media_type, format_suffix, image_format, load_image


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(("fmt", "suffix", "media_type"), [
    ("JPEG", "jpg", "image/jpeg"), ("PNG", "png", "image/png"), ("WEBP", "webp", "image/webp"),
    ("GIF", "gif", "image/gif"), ("BMP", "bmp", "image/bmp"), ("TIFF", "tiff", "image/tiff"),
])
def test_allowed_formats_are_named_and_typed_from_their_bytes(fmt: str, suffix: str, media_type: str) -> None:
    detected = image_format(_encoded(fmt))
    assert format_suffix(detected) == suffix and format_media_type(detected) == media_type


@pytest.mark.parametrize("data", [b"<html><script>alert(1)</script>", b"<svg onload=alert(1)/>", b"%PDF-1.4", b"",
                                  b"%!PS-Adobe-3.0 EPSF-3.0\n", _encoded("ICO")])
def test_anything_else_is_no_image_and_is_refused(data: bytes) -> None:
    assert image_format(data) is None
    assert format_suffix(None) == "bin" and format_media_type(None) == "application/octet-stream"
    with pytest.raises(ImageDecodeError):
        load_image(data)


def test_the_detector_finds_nothing_in_an_image_smaller_than_its_minimum_face() -> None:
    detector = MtcnnDetector(min_face_size=40)
    for shape in ((20, 20, 3), (39, 400, 3), (400, 12, 3)):
        assert detector.detect(np.zeros(shape, np.uint8)) == []
