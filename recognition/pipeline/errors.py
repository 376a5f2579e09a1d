"""Typed errors raised by the pipeline. Each carries a stable ``code`` for API responses."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: something about the input makes it unusable. ``code`` is machine-readable."""

    code = "pipeline_error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class ImageDecodeError(PipelineError):
    """The bytes are not a readable image (wrong type, truncated, corrupt)."""

    code = "invalid_image"


class ImageTooLargeError(PipelineError):
    """The image header announces more pixels than allowed (decompression-bomb guard)."""

    code = "image_too_large"


class ImageTooSmallError(PipelineError):
    """The image is too small to contain a usable face."""

    code = "image_too_small"


class NoFaceError(PipelineError):
    code = "no_face"


class MultipleFacesError(PipelineError):
    code = "multiple_faces"


class ModelUnavailableError(PipelineError):
    """A model's weights cannot be loaded (not installed, download impossible offline, bad checkpoint)."""

    code = "model_unavailable"
