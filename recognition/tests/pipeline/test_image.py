"""Decoding: every odd but valid format becomes RGB uint8; bad input gets a typed error."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recognition.pipeline.errors import ImageDecodeError, ImageTooLargeError, ImageTooSmallError
from recognition.pipeline.image import content_hash, load_image


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def portrait(people: dict[str, list[Path]]) -> Image.Image:
    return Image.open(people["barack_obama"][0]).convert("RGB")


def test_jpeg_path_and_bytes_decode_identically(people: dict[str, list[Path]]) -> None:
    path = people["joe_biden"][0]
    from_path = load_image(path)
    from_bytes = load_image(path.read_bytes())
    assert from_path.dtype == np.uint8 and from_path.ndim == 3 and from_path.shape[2] == 3
    assert np.array_equal(from_path, from_bytes)


def test_truncated_jpeg_is_a_decode_error(people: dict[str, list[Path]]) -> None:
    data = people["joe_biden"][0].read_bytes()
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_text_file_named_jpg_is_a_decode_error(tmp_path: Path) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is not an image\n")
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        load_image(fake)


def test_empty_bytes_are_a_decode_error() -> None:
    with pytest.raises(ImageDecodeError):
        load_image(b"")


def test_one_pixel_image_is_too_small() -> None:
    with pytest.raises(ImageTooSmallError, match="1x1"):
        load_image(_encode(Image.new("RGB", (1, 1)), "PNG"))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR announces width x height but carries almost no data (a bomb header)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_header_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="limit is 50 megapixels"):
        load_image(_png_header_only(30000, 30000))


def test_image_over_the_pixel_limit_is_refused_with_its_size() -> None:
    with pytest.raises(ImageTooLargeError, match="8000x8000"):
        load_image(_png_header_only(8000, 8000))


def test_pixel_limit_is_configurable(portrait: Image.Image) -> None:
    data = _encode(portrait, "JPEG")
    with pytest.raises(ImageTooLargeError, match="megapixels"):
        load_image(data, max_pixels=1000)


def test_cmyk_jpeg_becomes_rgb(portrait: Image.Image) -> None:
    rgb = np.asarray(portrait)
    decoded = load_image(_encode(portrait.convert("CMYK"), "JPEG", quality=95))
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 12


def test_png_with_alpha_is_composited_on_white() -> None:
    image = Image.new("RGBA", (40, 40), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))
    decoded = load_image(_encode(image, "PNG"))
    assert decoded.shape == (40, 40, 3)
    assert tuple(decoded[0, 0]) == (255, 255, 255)
    assert tuple(decoded[5, 5]) == (255, 0, 0)


def test_16_bit_grayscale_is_scaled_to_8_bit() -> None:
    values = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    image = Image.fromarray(values)
    decoded = load_image(_encode(image, "PNG"))
    assert decoded.shape == (64, 64, 3) and decoded.dtype == np.uint8
    assert decoded[0, 0, 0] == 0 and decoded[-1, -1, 0] == 255
    assert np.array_equal(decoded[..., 0], decoded[..., 2])


def test_8_bit_grayscale_and_palette_images_become_rgb(portrait: Image.Image) -> None:
    assert load_image(_encode(portrait.convert("L"), "PNG")).shape[2] == 3
    assert load_image(_encode(portrait.convert("P"), "PNG")).shape[2] == 3


def test_exif_orientation_is_applied(portrait: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: displays rotated 90 degrees clockwise
    data = _encode(portrait, "JPEG", exif=exif)
    decoded = load_image(data)
    assert decoded.shape[:2] == (portrait.width, portrait.height)


def test_content_hash_is_stable_and_content_based() -> None:
    assert content_hash(b"abc") == content_hash(b"abc")
    assert content_hash(b"abc") != content_hash(b"abd")
