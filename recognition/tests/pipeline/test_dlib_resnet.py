"""dlib's ResNet converted from its .dat file to torch and ONNX: the same vectors as dlib, faster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recognition.pipeline import dlib_resnet
from recognition.pipeline.embedding import DlibEmbedder, DlibOnnxEmbedder, DlibTorchEmbedder, create_embedder
from recognition.pipeline.errors import ModelUnavailableError
from recognition.pipeline.image import load_image
from recognition.pipeline.models import dlib_model_path
from recognition.pipeline.pipeline import FacePipeline


@pytest.fixture(scope="module")
def chips(pipeline: FacePipeline, people: dict[str, list[Path]]) -> tuple[np.ndarray, list[str]]:
    """dlib's own 5-point-aligned 150x150 chips of every fixture face, with whose face each is."""
    aligned, owners = [], []
    for person, photos in people.items():
        for photo in photos:
            image = load_image(photo)
            aligned.append(pipeline.embedder.crop(image, pipeline.detector.detect(image)[0]))
            owners.append(person)
    return np.stack(aligned), owners


def test_torch_and_onnx_vectors_equal_dlibs_own(dlib_embedder: DlibEmbedder, chips: tuple[np.ndarray, list[str]]) -> None:
    batch, _ = chips
    reference = dlib_embedder.embed(list(batch))
    for embedder in (DlibTorchEmbedder(), DlibOnnxEmbedder()):
        together = embedder.embed(list(batch))  # one batch
        alone = np.concatenate([embedder.embed([chip]) for chip in batch])  # batch 1
        assert np.abs(together - reference).max() < 1e-5, embedder.name
        assert np.abs(alone - reference).max() < 1e-5, embedder.name
    mirrored = DlibEmbedder(mirror=True).embed(list(batch))
    assert np.abs(DlibOnnxEmbedder(mirror=True).embed(list(batch)) - mirrored).max() < 1e-5
    # A network with the right shapes but untrained weights is nowhere near: the check has teeth.
    untrained = dlib_resnet.build_model().eval()
    with torch.inference_mode():
        raw = untrained(torch.from_numpy(batch.astype(np.float32).transpose(0, 3, 1, 2))).numpy()
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    assert np.abs(raw - reference).max() > 0.1


def test_converted_dlib_shares_dlibs_version_and_threshold() -> None:
    onnx = create_embedder("dlib-onnx")
    assert onnx.version == DlibEmbedder().version and onnx.threshold == DlibEmbedder.threshold
    assert create_embedder("dlib-onnx", align="similarity").version == DlibEmbedder(align="similarity").version
    assert onnx.key != DlibEmbedder().key  # its evaluation cache entries stay its own


def test_same_person_closer_than_different_people(chips: tuple[np.ndarray, list[str]]) -> None:
    batch, owners = chips
    vectors = DlibOnnxEmbedder().embed(list(batch))
    scores = vectors @ vectors.T
    same = np.equal.outer(owners, owners) & ~np.eye(len(owners), dtype=bool)
    different = ~np.equal.outer(owners, owners)
    assert scores[same].min() > scores[different].max()


def test_the_dat_file_is_read_layer_by_layer() -> None:
    layers = dlib_resnet.read_dat(dlib_model_path(dlib_resnet.MODEL_FILE))
    assert len(layers["convs"]) == 29 and len(layers["affines"]) == 29
    assert layers["convs"][0]["weight"].shape == (32, 3, 7, 7) and layers["convs"][0]["stride"] == (2, 2)
    assert layers["linear"].shape == (256, 128)
    assert np.allclose(layers["means"], [122.782, 117.001, 104.298], atol=1e-3)


def test_a_wrong_or_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="not dlib's face recognition ResNet"):
        dlib_resnet.read_dat(dlib_model_path("shape_predictor_5_face_landmarks.dat"))
    data = dlib_model_path(dlib_resnet.MODEL_FILE).read_bytes()
    truncated = tmp_path / "truncated.dat"
    for cut in (len(data) // 2, 400, 345, data.rfind(b"fc_2") + 50):  # in a tensor, a header, a tag, the last layer
        truncated.write_bytes(data[:cut])
        with pytest.raises(ModelUnavailableError):
            dlib_resnet.read_dat(truncated)
