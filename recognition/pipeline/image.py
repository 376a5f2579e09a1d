"""Decoding uploaded bytes into the one image format every stage takes: RGB uint8, HxWx3.

Handles EXIF orientation, grayscale (8 and 16 bit), palette, RGBA/LA (composited on white),
CMYK, and refuses decompression bombs by reading only the header before decoding.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from recognition.pipeline.errors import ImageDecodeError, ImageTooLargeError, ImageTooSmallError

DEFAULT_MAX_PIXELS = 50_000_000
MIN_SIDE = 16

# The formats RollCall decodes, with the suffix and media type a stored copy gets. Pillow opens
# only these (never EPS, PSD, ... whose decoders are larger attack surface for no use here).
FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "MPO": ("jpg", "image/jpeg"),  # a camera's multi-picture JPEG: its first frame is a plain JPEG
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
}
# The openers Pillow may try (an MPO is recognised by the JPEG opener).
OPENERS = [fmt for fmt in FORMATS if fmt != "MPO"]
Image.init()  # register every plugin, so ``formats=OPENERS`` finds WebP and TIFF
# The size check in load_image replaces Pillow's global bomb warning with a typed error. Set once
# for the process: warnings.catch_warnings around each decode is not thread-safe (frames decode
# side by side).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

ImageSource = bytes | str | Path | BinaryIO


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> np.ndarray:
    """Decode ``source`` (bytes, a path or a binary file) to an RGB uint8 array of shape (H, W, 3).

    Raises ImageDecodeError, ImageTooLargeError or ImageTooSmallError with a message a user can act on.
    """
    stream: BinaryIO | str | Path = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        image = Image.open(stream, formats=OPENERS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"Image announces over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels; "
            f"the limit is {max_pixels / 1e6:.0f} megapixels."
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError("File is not a readable image (JPEG, PNG, WebP, BMP, GIF, TIFF).") from exc
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"Image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
                f"the limit is {max_pixels / 1e6:.0f} megapixels."
            )
        if min(width, height) < min_side:
            raise ImageTooSmallError(
                f"Image is {width}x{height}; at least {min_side}x{min_side} pixels are needed."
            )
        try:
            image.load()
            image = _upright(image)
            return _to_rgb_array(image)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageDecodeError(f"Image data is corrupt or truncated ({exc}).") from exc


def image_format(source: ImageSource) -> str | None:
    """The decoded format of ``source`` (a key of FORMATS) from its header, or None when it is not
    one of the images RollCall reads. Cheap: the pixels are not decoded."""
    stream: BinaryIO | str | Path = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream, formats=OPENERS) as image:
            return image.format if image.format in FORMATS else None
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def format_suffix(fmt: str | None) -> str:
    """The file suffix (no dot) for a decoded format; ``bin`` when it is none RollCall reads."""
    return FORMATS[fmt][0] if fmt in FORMATS else "bin"


def format_media_type(fmt: str | None) -> str:
    """The media type to serve a decoded format with; ``application/octet-stream`` for anything else."""
    return FORMATS[fmt][1] if fmt in FORMATS else "application/octet-stream"


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # noqa: BLE001 - a broken EXIF block must not reject a good picture
        return image


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if (mode.startswith("I;16") or values.max(initial=0) > 255) else 255.0
        gray = np.clip(values * (255.0 / peak), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def content_hash(data: bytes) -> str:
    """SHA-256 of the raw bytes: the identity of an uploaded image."""
    return hashlib.sha256(data).hexdigest()
