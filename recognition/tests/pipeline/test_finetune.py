"""The projection head and its training, on real face crops embedded by the real dlib pipeline."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from recognition.pipeline.embedding import DlibEmbedder
from recognition.pipeline.finetune import ProjectionHead, augment_crop, train_head, triplet_loss
from recognition.pipeline.image import load_image
from recognition.pipeline.pipeline import FacePipeline


@dataclass(frozen=True)
class Views:
    """Gallery anchors (each person's first photo) and positives (their other photos and the
    augmentations of every photo), with person ids; ``crops`` the aligned crops of the anchors."""

    anchors: np.ndarray
    anchor_labels: np.ndarray
    positives: np.ndarray
    positive_labels: np.ndarray
    crops: list[np.ndarray]


@pytest.fixture(scope="module")
def views(pipeline: FacePipeline, dlib_embedder: DlibEmbedder, people: dict[str, list[Path]]) -> Views:
    rng = np.random.default_rng(0)
    anchors, anchor_labels, positives, positive_labels, crops = [], [], [], [], []
    for label, photos in enumerate(people.values()):
        for index, photo in enumerate(photos):
            face = pipeline.embed_single(load_image(photo))
            if index == 0:
                anchors.append(face.vector)
                anchor_labels.append(label)
                crops.append(face.crop)
            else:
                positives.append(face.vector)
                positive_labels.append(label)
            augmented = dlib_embedder.embed(augment_crop(face.crop, rng))
            positives.extend(augmented)
            positive_labels.extend([label] * len(augmented))
    return Views(np.array(anchors), np.array(anchor_labels), np.array(positives), np.array(positive_labels), crops)


def _data(views: Views) -> dict[str, np.ndarray]:
    return {"anchors": views.anchors, "anchor_labels": views.anchor_labels, "positives": views.positives,
            "positive_labels": views.positive_labels}


def test_identity_head_leaves_vectors_unchanged(views: Views) -> None:
    head = ProjectionHead.identity(views.anchors.shape[1])
    out = head.apply(views.positives)
    assert out.dtype == np.float32 and out.shape == views.positives.shape
    np.testing.assert_allclose(out, views.positives, atol=1e-6)


def test_a_training_run_changes_the_weights_and_lowers_the_loss(views: Views) -> None:
    start = triplet_loss(ProjectionHead.identity(128), **_data(views))
    assert start > 0, "the hardest triplets of real faces must leave something to learn"
    result = train_head(**_data(views), max_steps=80, patience=1000, seed=1)
    assert result.steps == 80 and result.device == "cpu" and len(result.losses) == 80
    assert not np.allclose(result.head.weight, np.eye(128), atol=1e-4)
    assert result.initial_loss == pytest.approx(start)
    assert result.final_loss < 0.8 * start
    assert result.losses[-1] < result.losses[0]
    # The regularisation keeps the head near the identity: the space is adapted, not replaced.
    assert np.abs(result.head.weight - np.eye(128)).max() < 0.1
    projected = result.head.apply(views.positives)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-5)


def test_a_child_head_stays_near_its_parent(views: Views) -> None:
    rng = np.random.default_rng(3)
    parent = ProjectionHead(np.eye(128, dtype=np.float32) + rng.normal(0, 0.01, (128, 128)).astype(np.float32))
    loose = train_head(**_data(views), parent=parent, max_steps=40, patience=1000, regularisation=0.0)
    tight = train_head(**_data(views), parent=parent, max_steps=40, patience=1000, regularisation=100.0)
    assert np.linalg.norm(tight.head.weight - parent.weight) < np.linalg.norm(loose.head.weight - parent.weight)


def test_training_respects_max_minutes(views: Views) -> None:
    result = train_head(**_data(views), max_minutes=0.5 / 60, max_steps=10**9, patience=10**9)
    assert result.stopped == "time"
    assert result.seconds < 0.5 + 1.5  # one step and the final evaluation past the deadline at most
    assert result.steps >= 1


def test_one_person_gives_no_triplets_and_the_parent_back(views: Views) -> None:
    keep_a, keep_p = views.anchor_labels == 0, views.positive_labels == 0
    result = train_head(anchors=views.anchors[keep_a], anchor_labels=views.anchor_labels[keep_a],
                        positives=views.positives[keep_p], positive_labels=views.positive_labels[keep_p])
    assert result.stopped == "no_triplets" and result.steps == 0
    np.testing.assert_array_equal(result.head.weight, np.eye(128, dtype=np.float32))


def test_cuda_is_used_only_where_available(views: Views) -> None:
    import torch

    result = train_head(**_data(views), device="cuda", max_steps=3, patience=1000)
    assert result.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_save_load_round_trip_and_checksum(views: Views, tmp_path: Path) -> None:
    head = train_head(**_data(views), max_steps=10, patience=1000).head
    path = tmp_path / "heads" / "head.bin"
    checksum = head.save(path)
    assert checksum == hashlib.sha256(path.read_bytes()).hexdigest() == head.checksum
    loaded = ProjectionHead.load(path)
    np.testing.assert_array_equal(loaded.weight, head.weight)
    np.testing.assert_array_equal(loaded.bias, head.bias)
    np.testing.assert_array_equal(loaded.apply(views.positives), head.apply(views.positives))
    assert ProjectionHead.identity(128).save(tmp_path / "identity.bin") != checksum
    (tmp_path / "bad.bin").write_bytes(b"not a head")
    with pytest.raises(ValueError):
        ProjectionHead.load(tmp_path / "bad.bin")


def test_onnx_export_gives_the_same_outputs_as_torch(views: Views, tmp_path: Path) -> None:
    import onnxruntime
    import torch

    head = train_head(**_data(views), max_steps=10, patience=1000).head
    head.export_onnx(tmp_path / "head.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "head.onnx"), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"vectors": views.positives})[0]
    with torch.no_grad():
        in_torch = head.module()(torch.from_numpy(views.positives)).numpy()
    np.testing.assert_allclose(exported, in_torch, atol=1e-5)
    np.testing.assert_allclose(exported, head.apply(views.positives), atol=1e-5)
    assert session.run(None, {"vectors": views.positives[:1]})[0].shape == (1, 128)  # dynamic batch


def test_augmented_views_stay_the_same_person(views: Views, dlib_embedder: DlibEmbedder) -> None:
    rng = np.random.default_rng(7)
    for label, crop in enumerate(views.crops):
        augmented = augment_crop(crop, rng)
        assert len(augmented) == 5
        assert all(view.shape == crop.shape and view.dtype == np.uint8 for view in augmented)
        np.testing.assert_array_equal(augmented[0], crop[:, ::-1])  # FISON's flip
        assert all(not np.array_equal(view, crop) for view in augmented)
        similarity = dlib_embedder.embed(augmented) @ views.anchors.T
        # Each view is still nearest to its own person's gallery photo.
        assert (similarity.argmax(axis=1) == label).all(), similarity
