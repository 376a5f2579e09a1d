"""Embedders on real faces: same person closer than different people; FaceNet loads the real way."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from recognition.pipeline.embedding import DlibEmbedder, FacenetEmbedder, create_embedder, l2_normalise
from recognition.pipeline.errors import ModelUnavailableError
from recognition.pipeline.image import load_image
from recognition.pipeline.pipeline import FacePipeline


@pytest.fixture(scope="module")
def gallery(pipeline: FacePipeline, people: dict[str, list[Path]]) -> list[tuple[str, np.ndarray]]:
    return [(name, pipeline.embed_single(load_image(photo)).vector) for name, photos in people.items() for photo in photos]


def test_vectors_are_unit_float32_with_the_embedder_dim(gallery: list[tuple[str, np.ndarray]]) -> None:
    for _, vector in gallery:
        assert vector.dtype == np.float32 and vector.shape == (128,)
        assert abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_every_same_person_pair_is_closer_than_every_different_person_pair(gallery: list[tuple[str, np.ndarray]]) -> None:
    same, different = [], []
    for (name_a, a), (name_b, b) in itertools.combinations(gallery, 2):
        (same if name_a == name_b else different).append(float(a @ b))
    assert min(same) > max(different), (min(same), max(different))


def test_the_calibrated_threshold_separates_the_fixture_people(gallery: list[tuple[str, np.ndarray]], dlib_embedder: DlibEmbedder) -> None:
    for (name_a, a), (name_b, b) in itertools.combinations(gallery, 2):
        assert (float(a @ b) >= dlib_embedder.threshold) == (name_a == name_b), (name_a, name_b, float(a @ b))


def test_dlib_chip_is_150_square_rgb(pipeline: FacePipeline, people: dict[str, list[Path]]) -> None:
    result = pipeline.embed_single(load_image(people["kit_harington"][0]))
    assert result.crop.shape == (150, 150, 3) and result.crop.dtype == np.uint8


def test_mirror_averaging_changes_version_and_stays_close() -> None:
    plain, mirrored = DlibEmbedder(), DlibEmbedder(mirror=True)
    assert plain.version != mirrored.version and mirrored.version.endswith("+mirror")
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, size=(150, 150, 3), dtype=np.uint8)
    a, b = plain.embed([crop])[0], mirrored.embed([crop])[0]
    assert abs(float(np.linalg.norm(b)) - 1) < 1e-5
    assert not np.allclose(a, b)


def test_batch_embedding_equals_one_by_one(dlib_embedder: DlibEmbedder, pipeline: FacePipeline, people: dict[str, list[Path]]) -> None:
    crops = [pipeline.embed_single(load_image(p)).crop for p in people["rose_leslie"]]
    batch = dlib_embedder.embed(crops)
    single = np.stack([dlib_embedder.embed([c])[0] for c in crops])
    assert np.allclose(batch, single, atol=1e-6)
    assert dlib_embedder.embed([]).shape == (0, 128)


def test_unknown_embedder_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown embedder 'nope'"):
        create_embedder("nope")


def test_l2_normalise_keeps_zero_rows_finite() -> None:
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])


@pytest.fixture(scope="module")
def facenet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A FaceNet state dict made here (random weights, fixed seed): the weights are not ours to ship."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(1234)
    model = InceptionResnetV1(classify=False, num_classes=8631).eval()
    model.logits = torch.nn.Linear(512, 8631)  # present in facenet-pytorch's published vggface2 file
    path = tmp_path_factory.mktemp("facenet") / "20180402-114759-vggface2.pt"
    torch.save(model.state_dict(), path)
    return path, model


def _reference(model: torch.nn.Module, crops: list[np.ndarray]) -> np.ndarray:
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        return model((x - 127.5) / 128.0).numpy()


def test_facenet_loads_a_local_checkpoint(facenet_checkpoint: tuple[Path, torch.nn.Module], pipeline: FacePipeline, people: dict[str, list[Path]]) -> None:
    path, model = facenet_checkpoint
    embedder = FacenetEmbedder(checkpoint=path)
    image = load_image(people["barack_obama"][0])
    face = pipeline.detector.detect(image)[0]
    crop = embedder.crop(image, face)
    assert crop.shape == (160, 160, 3)
    vectors = embedder.embed([crop, crop[:, ::-1].copy()])
    assert vectors.shape == (2, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors, _reference(model, [crop, crop[:, ::-1].copy()]), atol=1e-5)


def test_facenet_pretrained_uses_facenet_pytorchs_own_loader(
    facenet_checkpoint: tuple[Path, torch.nn.Module], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file sits where facenet-pytorch caches its download, so its real loading code runs offline."""
    path, model = facenet_checkpoint
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    embedder = FacenetEmbedder(pretrained="vggface2")
    assert embedder.version.startswith("facenet-vggface2")
    crop = np.random.default_rng(1).integers(0, 255, size=(160, 160, 3), dtype=np.uint8)
    assert np.allclose(embedder.embed([crop]), _reference(model, [crop]), atol=1e-5)


def test_facenet_missing_checkpoint_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="cannot load FaceNet weights"):
        FacenetEmbedder(checkpoint=tmp_path / "missing.pt")
