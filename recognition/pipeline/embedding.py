"""Embedding: aligned face crops -> L2-normalised float32 vectors, by a named, versioned embedder.

Every vector travels with ``Embedder.name`` and ``Embedder.version``: vectors of different
embedders (or versions) are never compared. ``threshold`` is the cosine similarity at or above
which two faces are taken to be the same person; it was calibrated on LFW (see README,
"Choosing the thresholds") and is overridden by settings when a deployment recalibrates.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from recognition.pipeline.alignment import DlibChipAligner, MarginCropAligner
from recognition.pipeline.detection import Face
from recognition.pipeline.errors import ModelUnavailableError
from recognition.pipeline.models import dlib_model_path


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32. Zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder(ABC):
    """Base class. ``crop`` aligns one face; ``embed`` maps N crops to an (N, dim) float32 array.

    With ``mirror=True`` each crop is embedded together with its horizontal mirror and the two
    vectors are averaged (test-time augmentation), which changes ``version``.
    """

    name: str
    model_version: str
    dim: int
    threshold: float

    def __init__(self, *, aligner: DlibChipAligner | MarginCropAligner, mirror: bool = False) -> None:
        self.aligner = aligner
        self.mirror = mirror
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return f"{self.model_version}/{self.aligner.name}" + ("+mirror" if self.mirror else "")

    @property
    def key(self) -> str:
        """``name@version``: what must match for two vectors to be comparable."""
        return f"{self.name}@{self.version}"

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.aligner.align(image, face)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = np.stack([np.asarray(crop, dtype=np.uint8) for crop in crops])
        with self._lock:
            vectors = l2_normalise(self._embed_batch(batch))
            if self.mirror:
                mirrored = np.ascontiguousarray(batch[:, :, ::-1, :])
                vectors = vectors + l2_normalise(self._embed_batch(mirrored))
        return l2_normalise(vectors)

    def embed_face(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Align and embed one face: float32 (dim,)."""
        return self.embed([self.crop(image, face)])[0]

    @abstractmethod
    def _embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB crops -> (N, dim) vectors (need not be normalised)."""


class DlibEmbedder(Embedder):
    """dlib's ResNet (``dlib_face_recognition_resnet_model_v1``), 128-d, on 150x150 dlib chips."""

    name = "dlib"
    model_version = "dlib_resnet_v1"
    dim = 128
    # Calibrated on LFW folds 1-4 (see README): the largest similarity any unknown face reached
    # against a 622-person gallery at a 1% unknown-accept rate, rounded up.
    threshold = 0.90

    def __init__(self, *, mirror: bool = False, model_path: str | Path | None = None) -> None:
        import dlib

        super().__init__(aligner=DlibChipAligner(size=150, padding=0.25), mirror=mirror)
        path = Path(model_path) if model_path else dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")
        self._model = dlib.face_recognition_model_v1(str(path))

    def _embed_batch(self, batch: np.ndarray) -> np.ndarray:
        # dlib's batch call runs the images one after another on the CPU; it saves Python overhead only.
        descriptors = self._model.compute_face_descriptor(list(batch), 0)
        return np.asarray([np.asarray(d, dtype=np.float32) for d in descriptors], dtype=np.float32)


class FacenetEmbedder(Embedder):
    """facenet-pytorch ``InceptionResnetV1`` (FaceNet), 512-d, on 160x160 margin crops.

    Weights load the upstream way: ``pretrained='vggface2'`` or ``'casia-webface'`` uses
    facenet-pytorch's own loader (a cached file under ``$TORCH_HOME/checkpoints``, or a download
    when the machine can reach it); ``checkpoint=PATH`` loads a local state dict instead.
    """

    name = "facenet"
    dim = 512
    threshold = 0.55

    def __init__(
        self,
        *,
        pretrained: str = "vggface2",
        checkpoint: str | Path | None = None,
        device: str = "cpu",
        mirror: bool = False,
    ) -> None:
        import torch
        from facenet_pytorch import InceptionResnetV1

        super().__init__(aligner=MarginCropAligner(size=160, margin=32), mirror=mirror)
        self._torch = torch
        self._device = torch.device(device)
        try:
            if checkpoint:
                model = InceptionResnetV1(classify=False)
                state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
                state = {k: v for k, v in state.items() if not k.startswith("logits.")}
                model.load_state_dict(state)
                self.model_version = f"facenet-{Path(checkpoint).stem}"
            else:
                model = InceptionResnetV1(pretrained=pretrained, classify=False)
                self.model_version = f"facenet-{pretrained}"
        except (OSError, RuntimeError, KeyError) as exc:
            where = checkpoint or f"facenet-pytorch's '{pretrained}' weights (downloaded on first use)"
            raise ModelUnavailableError(f"cannot load FaceNet weights from {where}: {exc}") from exc
        self._model = model.eval().to(self._device)

    def _embed_batch(self, batch: np.ndarray) -> np.ndarray:
        tensor = self._torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
        tensor = ((tensor - 127.5) / 128.0).to(self._device)
        with self._torch.inference_mode():
            return self._model(tensor).cpu().numpy()


EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "dlib": DlibEmbedder,
    "facenet": FacenetEmbedder,
}


def create_embedder(name: str, **options: object) -> Embedder:
    """Build the embedder registered as ``name`` with keyword ``options``."""
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; choose one of {sorted(EMBEDDERS)}") from None
    return factory(**options)
