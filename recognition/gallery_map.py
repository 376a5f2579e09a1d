"""The gallery map: a manager's gallery in 2D (PCA and t-SNE), with the photos that look enrolled
under the wrong person and the pairs of people whose photos overlap.

A map is computed by a task (``recognition.gallery_map_build``, through the dispatch seam) and
cached as a JSON file in the media storage, one per audience (the set of employees a caller may
see), model (the embedder, and the learned model version when one is active: its learned photos
and its projection head) and gallery version:
``gallery_maps/<audience>/<model>/<epoch>-<version>.json``. Maps of earlier model versions stay
cached, which gives the page its before/after switch (a nightly learning's version against its
parent). The cache holds ids, never names: names are added per request for the people the caller
may see.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from recognition.models import FaceImage, ModelVersion
from recognition.pipeline.embedding import l2_normalise
from recognition.selectors import gallery_version

MAP_DIR = "gallery_maps"
FORMAT = 1
TSNE_PCA_DIMS = 50  # t-SNE runs on the first principal components (faster, and the usual practice)


def _digest(text: str, size: int = 16) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def gallery_map_audience(employee_ids: list[int]) -> str:
    """A short name for a set of employees (callers who see the same people share maps)."""
    return _digest(",".join(str(pk) for pk in sorted(set(employee_ids))))


@dataclass(frozen=True)
class MapKey:
    """Which map: whose gallery (``employee_ids``), which vectors (``embedder`` name and
    ``embedder_version``; ``model_version``: the learned ModelVersion's id, None for the base
    embedder alone) and which state of the gallery (``gallery``: epoch, version)."""

    employee_ids: tuple[int, ...]
    embedder: str
    embedder_version: str
    gallery: tuple[str, int]
    model_version: int | None = None

    @property
    def model(self) -> str:
        base = f"{self.embedder}@{self.embedder_version}"
        return f"{base}+model:{self.model_version}" if self.model_version else base

    @property
    def folder(self) -> str:
        return f"{MAP_DIR}/{gallery_map_audience(list(self.employee_ids))}/{_digest(self.model)}"

    @property
    def path(self) -> str:
        epoch, version = self.gallery
        return f"{self.folder}/{epoch or 'none'}-{version}.json"


def gallery_map_versions(*, employee_ids: list[int], current: tuple[str, str],
                         model_version: int | None = None) -> list[dict[str, Any]]:
    """The model versions a map can be shown for, oldest first: those whose vectors the gallery of
    these employees holds, and those with a cached map (earlier models, earlier learned model
    versions). ``current`` is the active embedder's (name, version) and ``model_version`` the
    active learned version's id (None: none); it is always listed."""
    models: dict[str, dict[str, Any]] = {}
    rows = (FaceImage.objects.filter(employee_id__in=employee_ids).values_list("embedder", "embedder_version")
            .distinct())
    for name, version in rows:
        if (name, version) != tuple(current):
            models[f"{name}@{version}"] = {"embedder": name, "embedder_version": version, "model_version": None,
                                           "built_at": None}
    current_key = MapKey((), current[0], current[1], ("", 0), model_version).model
    models[current_key] = {"embedder": current[0], "embedder_version": current[1], "model_version": model_version,
                           "built_at": None}
    if model_version is not None:  # "before": what a rollback restores (its parent, or the base embedder)
        parent = ModelVersion.objects.filter(pk=model_version).values_list("parent_id", flat=True).first()
        models[MapKey((), current[0], current[1], ("", 0), parent).model] = {
            "embedder": current[0], "embedder_version": current[1], "model_version": parent, "built_at": None}
    audience = f"{MAP_DIR}/{gallery_map_audience(employee_ids)}"
    try:
        folders, _ = default_storage.listdir(audience)
    except FileNotFoundError:
        folders = []
    for folder in folders:
        newest = _newest_map(f"{audience}/{folder}")
        if newest is not None:
            entry = {"embedder": newest["embedder"], "embedder_version": newest["embedder_version"],
                     "model_version": newest.get("model_version")}
            key = MapKey((), entry["embedder"], entry["embedder_version"], ("", 0), entry["model_version"]).model
            models.setdefault(key, entry)
            models[key]["built_at"] = newest["built_at"]
    listed = [{"key": key, "current": key == current_key, **entry} for key, entry in models.items()]
    return sorted(listed, key=lambda v: (v["current"], v["built_at"] or ""))


def _newest_map(folder: str) -> dict[str, Any] | None:
    try:
        _, names = default_storage.listdir(folder)
    except FileNotFoundError:
        return None
    names = [name for name in names if name.endswith(".json")]
    if not names:
        return None
    newest = max(names, key=lambda name: default_storage.get_modified_time(f"{folder}/{name}"))
    return _read(f"{folder}/{newest}")


def _read(path: str) -> dict[str, Any] | None:
    try:
        with default_storage.open(path, "rb") as handle:
            data = json.loads(handle.read())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def gallery_map_key(*, employee_ids: list[int], embedder: str, embedder_version: str,
                    model_version: int | None = None) -> MapKey:
    return MapKey(tuple(sorted(set(employee_ids))), embedder, embedder_version, gallery_version(), model_version)


def gallery_map_cached(*, key: MapKey) -> dict[str, Any] | None:
    """The map for ``key`` if it was built; for a model the gallery no longer holds vectors of
    (an earlier version), the newest map built for it."""
    found = _read(key.path)
    if found is not None:
        return found
    if key.model_version is not None and not ModelVersion.objects.filter(
            pk=key.model_version, state=ModelVersion.State.ACTIVE).exists():
        return _newest_map(key.folder)  # an earlier learned version: as it was mapped
    if not FaceImage.objects.filter(employee_id__in=key.employee_ids, embedder=key.embedder,
                                    embedder_version=key.embedder_version).exists():
        return _newest_map(key.folder)
    return None


def gallery_map_build(*, employee_ids: list[int], embedder: str, embedder_version: str,
                      threshold: float, model_version: int | None = None) -> dict[str, Any]:
    """Compute and cache the map of these employees' photos with these vectors; returns it.

    ``threshold``: the cosine at or above which two photos would be taken for the same person
    (a pair of people with photos that close is listed as look-alikes). ``model_version``: the
    learned ModelVersion mapped (its learned photos only, its projection head applied), None:
    the base embedder alone (no learned photo).
    """
    from recognition.selectors import load_head

    started = time.monotonic()
    key = gallery_map_key(employee_ids=employee_ids, embedder=embedder, embedder_version=embedder_version,
                          model_version=model_version)
    version = ModelVersion.objects.filter(pk=model_version).first() if model_version else None
    faces = FaceImage.objects.filter(employee_id__in=key.employee_ids, embedder=embedder,
                                     embedder_version=embedder_version)
    learned = FaceImage.Source.LEARNED
    faces = (faces.exclude(Q(source=learned) & ~Q(model_versions=version)) if version is not None
             else faces.exclude(source=learned))
    rows = list(faces.order_by("employee_id", "pk").values_list("pk", "employee_id", "source", "embedding"))
    vectors = (l2_normalise(np.array([np.frombuffer(bytes(blob), dtype=np.float32) for *_, blob in rows]))
               if rows else np.zeros((0, 0), dtype=np.float32))
    head = load_head(version.head_path) if version is not None and version.head_path and rows else None
    if head is not None:
        vectors = l2_normalise(head.apply(vectors))
    labels = np.array([employee for _, employee, _, _ in rows], dtype=np.int64)
    layout = layout_2d(vectors)
    suspects = wrong_person_suspects(vectors, labels)
    lookalikes = overlapping_people(vectors, labels, threshold=threshold)
    suspect_faces = {rows[s["index"]][0] for s in suspects}
    data = {
        "format": FORMAT,
        "embedder": embedder,
        "embedder_version": embedder_version,
        "model_version": model_version,
        "model_version_name": version.version if version is not None else "",
        "gallery": list(key.gallery),
        "built_at": timezone.now().isoformat(),
        "threshold": threshold,
        "points": [{"face": pk, "person": employee, "source": source, "pca": layout["pca"][i],
                    "tsne": layout["tsne"][i], "suspect": pk in suspect_faces}
                   for i, (pk, employee, source, _) in enumerate(rows)],
        "suspects": [{"face": rows[s["index"]][0], "person": int(labels[s["index"]]), "closer_to": s["closer_to"],
                      "own": s["own"], "other": s["other"]} for s in suspects],
        "lookalikes": [{"a": p["a"], "b": p["b"], "similarity": p["similarity"],
                        "faces": [rows[p["index_a"]][0], rows[p["index_b"]][0]]} for p in lookalikes],
    }
    data["seconds"] = round(time.monotonic() - started, 3)
    default_storage.delete(key.path)
    default_storage.save(key.path, ContentFile(json.dumps(data).encode()))
    return data


def gallery_maps_purge(*, older_than: dt.datetime) -> int:
    """Remove cached maps not rebuilt since ``older_than`` (superseded gallery versions)."""
    removed = 0
    try:
        audiences, _ = default_storage.listdir(MAP_DIR)
    except FileNotFoundError:
        return 0
    for audience in audiences:
        folders, _ = default_storage.listdir(f"{MAP_DIR}/{audience}")
        for folder in folders:
            path = f"{MAP_DIR}/{audience}/{folder}"
            _, names = default_storage.listdir(path)
            dated = sorted(names, key=lambda name: default_storage.get_modified_time(f"{path}/{name}"))
            for name in dated[:-1]:  # the newest map of each model stays (the before/after switch)
                if default_storage.get_modified_time(f"{path}/{name}") < older_than:
                    default_storage.delete(f"{path}/{name}")
                    removed += 1
    return removed


# --- The computations (numpy / scikit-learn, no database) ----------------------------------------

def _unit_square(points: np.ndarray) -> list[list[float]]:
    """(N, 2) -> coordinates scaled into [0, 1] keeping the aspect ratio, rounded for JSON."""
    if len(points) == 0:
        return []
    points = points - points.min(axis=0)
    span = float(points.max()) or 1.0
    points = points / span
    points = points + (1.0 - points.max(axis=0)) / 2.0  # centred along the shorter axis
    return [[round(float(x), 5), round(float(y), 5)] for x, y in points]


def layout_2d(vectors: np.ndarray, *, seed: int = 0) -> dict[str, list[list[float]]]:
    """(N, D) unit vectors -> {"pca": N [x, y], "tsne": N [x, y]} in [0, 1]. t-SNE needs at least 4
    points; with fewer it repeats the PCA layout."""
    count = len(vectors)
    if count == 0:
        return {"pca": [], "tsne": []}
    if count == 1:
        return {"pca": [[0.5, 0.5]], "tsne": [[0.5, 0.5]]}
    from sklearn.decomposition import PCA

    centred = vectors - vectors.mean(axis=0)
    components = min(TSNE_PCA_DIMS, count, vectors.shape[1])
    reduced = PCA(n_components=components, random_state=seed).fit_transform(centred)
    pca = reduced[:, :2] if components >= 2 else np.hstack([reduced, np.zeros((count, 1))])
    if count < 4:
        tsne = pca
    else:
        from sklearn.manifold import TSNE

        perplexity = float(max(1.0, min(30.0, (count - 1) / 3.0)))
        # Euclidean distance between unit vectors is a function of their cosine; the principal
        # components keep those distances (nearly: exactly when count <= TSNE_PCA_DIMS).
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    return {"pca": _unit_square(pca), "tsne": _unit_square(tsne)}


def _centroids(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    people = np.unique(labels)
    sums = np.stack([vectors[labels == person].sum(axis=0) for person in people])
    return people, sums


def wrong_person_suspects(vectors: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    """Photos closer to another person than to their own: a photo's own reference is the mean of
    its person's *other* photos (people with one photo have none and are never flagged), the other
    references every other person's mean. Returns {"index", "closer_to", "own", "other"} dicts,
    most suspicious first."""
    if len(vectors) < 3:
        return []
    people, sums = _centroids(vectors, labels)
    counts = np.array([(labels == person).sum() for person in people])
    unit_means = l2_normalise(sums)
    found = []
    for index, (vector, label) in enumerate(zip(vectors, labels, strict=True)):
        mine = int(np.searchsorted(people, label))
        if counts[mine] < 2:
            continue
        own = float(vector @ l2_normalise((sums[mine] - vector)[None, :])[0])
        others = unit_means @ vector
        others[mine] = -np.inf
        closest = int(np.argmax(others))
        if others[closest] > own:
            found.append({"index": index, "closer_to": int(people[closest]), "own": round(own, 4),
                          "other": round(float(others[closest]), 4)})
    return sorted(found, key=lambda s: s["own"] - s["other"])


def overlapping_people(vectors: np.ndarray, labels: np.ndarray, *, threshold: float) -> list[dict[str, Any]]:
    """Pairs of people with a photo each at cosine >= ``threshold`` (recognition could take one for
    the other): {"a", "b", "similarity", "index_a", "index_b"}, most alike first."""
    if len(vectors) < 2:
        return []
    similarity = vectors @ vectors.T
    different = labels[:, None] != labels[None, :]
    rows, cols = np.nonzero(np.triu(different & (similarity >= threshold), k=1))
    best: dict[tuple[int, int], dict[str, Any]] = {}
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        a, b = sorted((int(labels[i]), int(labels[j])))
        value = float(similarity[i, j])
        if (a, b) not in best or value > best[(a, b)]["similarity"]:
            first, second = (i, j) if int(labels[i]) == a else (j, i)
            best[(a, b)] = {"a": a, "b": b, "similarity": round(value, 4), "index_a": first, "index_b": second}
    return sorted(best.values(), key=lambda pair: -pair["similarity"])


def current_model_version() -> int | None:
    """The active learned model version's id (None: the base embedder alone)."""
    from recognition.selectors import active_model_version

    active = active_model_version()
    return active.pk if active is not None else None


def current_model() -> tuple[str, str, float]:
    """The active embedder's (name, version) and its match threshold (cosine)."""
    from recognition.engine import embedder_identity, match_threshold

    name, version, _ = embedder_identity()
    return name, version, match_threshold()
