"""A generated corpus of hostile and odd upload files, each with the answers it may get.

``strict`` codes: what an endpoint that needs exactly one usable face (enrolment, verify, device
enrolment) may answer. ``decodes``: the file is a readable image of a usable size, so endpoints
that report what they see (recognize, detect, check-in) answer it with a 200 (no faces, unknown,
...), never an error; otherwise they answer one of ``strict`` minus the face-count codes.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

FACES = Path(__file__).resolve().parents[2] / "fixtures" / "faces"
NOT_AN_IMAGE = frozenset({"invalid_image", "invalid"})  # "invalid": DRF's "the submitted file is empty"
FACE_CODES = {"no_face", "multiple_faces", "face_too_small", "too_blurry", "extreme_pose"}


@dataclass(frozen=True)
class BadFile:
    kind: str
    data: bytes
    filename: str = "photo.jpg"
    content_type: str = "image/jpeg"
    strict: frozenset[str] = NOT_AN_IMAGE
    decodes: bool = False

    @property
    def lenient(self) -> frozenset[str]:
        """Codes an endpoint that reports faces may give (only when the file does not decode)."""
        return frozenset(self.strict - FACE_CODES)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _noise(size: tuple[int, int], mode: str = "RGB", seed: int = 7) -> Image.Image:
    rng = random.Random(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    return Image.frombytes(mode, size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * bands)))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height, with no pixel data (a bomb's announcement)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return buffer.getvalue()


def _exif_rotated(orientation: int, broken: bool = False) -> bytes:
    image = Image.new("RGB", (160, 96), (90, 120, 150))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(image, "JPEG", exif=exif.tobytes())
    if broken:  # damage the EXIF block's byte-order mark: the picture itself still decodes
        data = data.replace(b"Exif\x00\x00MM", b"Exif\x00\x00ZZ").replace(b"Exif\x00\x00II", b"Exif\x00\x00ZZ")
    return data


def bad_files(*, over_limit_bytes: int) -> list[BadFile]:
    """Every kind of bad file; ``over_limit_bytes`` is just over the upload limit in force."""
    face = (FACES / "people" / "barack_obama" / "1.jpg").read_bytes()
    no_face = (FACES / "no_face.jpg").read_bytes()
    two_faces = (FACES / "two_faces.jpg").read_bytes()
    png_face = _encode(Image.open(io.BytesIO(face)), "PNG")
    gray = Image.linear_gradient("L").resize((128, 96))
    blank = Image.new("RGB", (200, 150), (128, 128, 128))
    too_small = frozenset({"image_too_small"})
    too_large = frozenset({"image_too_large"})
    no_face_codes = frozenset({"no_face"})
    animated = _noise((64, 64))
    gif = io.BytesIO()
    animated.save(gif, format="GIF", save_all=True, append_images=[_noise((64, 64), seed=8)], duration=100, loop=0)
    palette = blank.convert("P")
    palette.info["transparency"] = 0
    small_face = Image.open(io.BytesIO(face)).resize((90, 90))
    corrupt_png = bytearray(png_face)
    corrupt_png[len(corrupt_png) // 2: len(corrupt_png) // 2 + 64] = b"\x00" * 64
    return [
        BadFile("zero_bytes", b""),
        BadFile("one_byte", b"\xff"),
        BadFile("random_bytes", bytes(random.Random(1).randrange(256) for _ in range(4096))),
        BadFile("plain_text", b"hello, I am text\n", "photo.jpg", "text/plain"),
        BadFile("html_as_jpg", b"<!doctype html><html><script>alert(document.cookie)</script></html>", "photo.jpg"),
        BadFile("html_suffix", b"<html><body onload=alert(1)></body></html>", "photo.html", "text/html"),
        BadFile("svg_with_script", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                "photo.svg", "image/svg+xml"),
        BadFile("svg_as_png", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "photo.png", "image/png"),
        BadFile("javascript_as_gif", b"alert(document.domain)//", "photo.gif", "image/gif"),
        BadFile("php_as_jpg", b"<?php system($_GET['c']); ?>", "shell.php.jpg"),
        BadFile("gif_js_polyglot", b"GIF89a/*\x01\x00\x01\x00\x00\xff\x00*/=alert(1);//", "photo.gif", "image/gif"),
        BadFile("jpeg_with_html_tail", no_face + b"<script>alert(1)</script>", strict=no_face_codes, decodes=True),
        BadFile("jpeg_zip_polyglot", no_face + _zip(), strict=no_face_codes, decodes=True),
        BadFile("truncated_jpeg_head", face[:3000]),
        BadFile("truncated_jpeg_half", face[: len(face) // 2]),
        BadFile("truncated_png", png_face[: len(png_face) // 3], "photo.png", "image/png"),
        BadFile("jpeg_marker_only", b"\xff\xd8\xff\xe0" + b"\x00" * 64),
        BadFile("png_signature_only", b"\x89PNG\r\n\x1a\n", "photo.png", "image/png"),
        BadFile("corrupt_png_data", bytes(corrupt_png), "photo.png", "image/png",
                strict=NOT_AN_IMAGE | {"no_face"}, decodes=False),
        BadFile("decompression_bomb_header", _png_header_only(100_000, 100_000), "bomb.png", "image/png",
                strict=too_large),
        BadFile("huge_dimensions", _png_header_only(10_000, 6_000), "huge.png", "image/png", strict=too_large),
        BadFile("one_pixel", _encode(Image.new("RGB", (1, 1)), "PNG"), "dot.png", "image/png", strict=too_small),
        BadFile("twenty_px", _encode(small_face.resize((20, 20)), "JPEG"), strict=too_small),
        BadFile("thirty_nine_px", _encode(small_face.resize((39, 39)), "JPEG"), strict=too_small),
        BadFile("thin_strip", _encode(Image.new("RGB", (4000, 8)), "PNG"), "strip.png", "image/png", strict=too_small),
        BadFile("forty_px_blank", _encode(Image.new("RGB", (40, 40)), "JPEG"), strict=no_face_codes, decodes=True),
        BadFile("animated_gif", gif.getvalue(), "anim.gif", "image/gif", strict=no_face_codes, decodes=True),
        BadFile("png_16_bit", _encode(gray.convert("I;16"), "PNG"), "deep.png", "image/png", strict=no_face_codes,
                decodes=True),
        BadFile("cmyk_jpeg", _encode(blank.convert("CMYK"), "JPEG"), strict=no_face_codes, decodes=True),
        BadFile("grayscale_jpeg", _encode(gray, "JPEG"), strict=no_face_codes, decodes=True),
        BadFile("palette_transparent_png", _encode(palette, "PNG"), "pal.png", "image/png", strict=no_face_codes,
                decodes=True),
        BadFile("rgba_png", _encode(blank.convert("RGBA"), "PNG"), "alpha.png", "image/png", strict=no_face_codes,
                decodes=True),
        BadFile("exif_rotated", _exif_rotated(6), strict=no_face_codes, decodes=True),
        BadFile("broken_exif", _exif_rotated(8, broken=True), strict=no_face_codes, decodes=True),
        BadFile("wrong_content_type", no_face, "photo.exe", "application/x-msdownload", strict=no_face_codes,
                decodes=True),
        BadFile("pdf", b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF", "photo.pdf",
                "application/pdf"),
        BadFile("zip", _zip(), "photos.zip", "application/zip"),
        BadFile("eps_postscript", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n", "photo.eps",
                "application/postscript"),
        BadFile("ico_not_allowed", _encode(blank.resize((64, 64)), "ICO"), "photo.ico", "image/x-icon"),
        BadFile("xbm_not_allowed", b"#define x_width 48\n#define x_height 48\nstatic char x_bits[] = {0x00};\n",
                "photo.xbm", "image/x-xbitmap"),
        BadFile("tiff_no_face", _encode(blank, "TIFF"), "photo.tiff", "image/tiff", strict=no_face_codes, decodes=True),
        BadFile("webp_no_face", _encode(blank, "WEBP"), "photo.webp", "image/webp", strict=no_face_codes, decodes=True),
        BadFile("bmp_no_face", _encode(blank, "BMP"), "photo.bmp", "image/bmp", strict=no_face_codes, decodes=True),
        BadFile("over_the_size_limit", no_face + b"\x00" * (over_limit_bytes - len(no_face)), strict=too_large),
        BadFile("no_face_photo", no_face, strict=no_face_codes, decodes=True),
        BadFile("several_faces", two_faces, strict=frozenset({"multiple_faces"}), decodes=True),
        BadFile("face_too_small_for_enrolment", _encode(small_face, "JPEG"),
                strict=frozenset({"face_too_small", "no_face"}), decodes=True),
        BadFile("overlong_filename", no_face, "x" * 300 + ".html", "text/html", strict=no_face_codes, decodes=True),
        BadFile("path_traversal_filename", no_face, "../../../../etc/cron.d/evil.jpg", strict=no_face_codes,
                decodes=True),
        BadFile("black_frame", _encode(Image.new("RGB", (640, 480)), "JPEG"), strict=no_face_codes, decodes=True),
    ]
