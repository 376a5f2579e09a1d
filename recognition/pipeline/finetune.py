"""Fine-tuning: a projection head over the frozen embedder, trained on a site's own captures.

The embedder's network stays frozen; a D -> D linear map (``ProjectionHead``), initialised to the
identity, is trained with self-supervised triplets (FISON's idea, without labels from people):
the anchor is a gallery vector, the positive another view of the same person (a harvested burst
view or an augmentation of one: ``augment_crop``), the negatives other people's vectors, hardest
first (batch-hard mining), with a margin loss on cosine similarity. A penalty on the distance of
the weights from the parent head (the identity for the first one) keeps a small site from
wrecking the space. Training stops early when the loss stops falling and never runs past
``max_minutes``.

Why a head and not the network's last block: the converted networks carry folded batch-norm
(MODELS.md) that must stay frozen, and a backward pass through dlib's ResNet or FaceNet needs the
crops, not the stored vectors. Measured here (2 loaded cores, 32 crops of dlib-torch): a forward
pass 5.2 s, a full forward+backward 19 s, the last block alone on cached block inputs 0.16 s —
and a new block would change only the dlib part of the fused vector and force every gallery photo
back through the network. A head trains on the vectors the gallery already holds, applies to the
fused vector as a whole, and its output is a new embedder version like any other.

Measured benefit (bench/finetune_lfw.py, 120 LFW people, 127 training views, held out: 194
probes and 120 strangers, 1% strangers accepted): recognised 91.2% before, 90.7% after with the
default regularisation, 87.1% / 87.6% with 10x / 100x weaker regularisation (training loss to
~0: overfitting). On a site this small the head does not help; the gate must decide each night.

Pure numpy/torch (no Django).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recognition.pipeline.embedding import l2_normalise

HEARTBEAT_SECONDS = 10.0  # how often train_head reports that it is alive
FORMAT = b"RCHEAD1\n"  # file magic: the rest is one .npy array, (D + 1, D) float32: W rows then b


class ProjectionHead:
    """``v -> normalise(W v + b)`` on (N, D) float32 unit vectors -> (N, D) float32 unit vectors.

    ``ProjectionHead.identity(D)`` changes nothing (W = I, b = 0). ``weight`` is (D, D) float32,
    ``bias`` (D,) float32.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None) -> None:
        weight = np.asarray(weight, dtype=np.float32)
        if weight.ndim != 2 or weight.shape[0] != weight.shape[1]:
            raise ValueError(f"a projection head's weight must be square, not {weight.shape}")
        self.weight = np.ascontiguousarray(weight)
        self.bias = np.zeros(weight.shape[0], dtype=np.float32) if bias is None else np.asarray(bias, dtype=np.float32)
        if self.bias.shape != (self.dim,):
            raise ValueError(f"bias of shape {self.bias.shape} does not fit a {self.dim}-d head")

    @classmethod
    def identity(cls, dim: int) -> ProjectionHead:
        return cls(np.eye(dim, dtype=np.float32))

    @property
    def dim(self) -> int:
        return int(self.weight.shape[0])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """(N, D) float32 -> (N, D) float32, L2-normalised rows."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected (N, {self.dim}) vectors, got {vectors.shape}")
        return l2_normalise(vectors @ self.weight.T + self.bias)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        buffer.write(FORMAT)
        np.save(buffer, np.vstack([self.weight, self.bias[None, :]]), allow_pickle=False)
        return buffer.getvalue()

    @property
    def checksum(self) -> str:
        """sha256 hex of the saved form (the same bytes ``save`` writes)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def save(self, path: Path) -> str:
        """Write the weights atomically to ``path``; returns the file's sha256 hex."""
        data = self.to_bytes()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: Path) -> ProjectionHead:
        data = Path(path).read_bytes()
        if not data.startswith(FORMAT):
            raise ValueError(f"{path} is not a projection head file")
        stacked = np.load(io.BytesIO(data[len(FORMAT):]), allow_pickle=False)
        if stacked.ndim != 2 or stacked.shape[0] != stacked.shape[1] + 1:
            raise ValueError(f"{path}: a head must be (D + 1, D), not {stacked.shape}")
        return cls(stacked[:-1], stacked[-1])

    def module(self):  # noqa: ANN201 - a torch.nn.Module (torch imported late)
        """The head as a torch module (same outputs as ``apply``)."""
        import torch

        return _head_module_class()(torch.from_numpy(self.weight.copy()), torch.from_numpy(self.bias.copy()))

    def export_onnx(self, path: Path) -> None:
        """ONNX graph ``vectors`` (batch, D) float32 -> ``embeddings`` (batch, D), dynamic batch."""
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(
            self.module().eval(), (torch.zeros(1, self.dim),), str(path), input_names=["vectors"],
            output_names=["embeddings"], dynamic_axes={"vectors": {0: "batch"}, "embeddings": {0: "batch"}},
            opset_version=17, dynamo=False,
        )


@functools.cache
def _head_module_class():  # noqa: ANN202 - defined lazily so importing this module needs no torch
    import torch

    class HeadModule(torch.nn.Module):
        def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias)

        def forward(self, vectors: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(vectors @ self.weight.T + self.bias, dim=-1, eps=1e-12)

    return HeadModule


@dataclass
class TrainingResult:
    """A trained head and how the run went: ``losses`` is the training objective after each step
    (triplet loss + regularisation), ``device`` the one really used ("cpu" or "cuda")."""

    head: ProjectionHead
    losses: list[float]
    steps: int
    seconds: float
    device: str
    stopped: str = ""  # why training ended: "converged", "time", "max_steps", "no_triplets"
    initial_loss: float = 0.0  # triplet loss of the parent on the training data
    final_loss: float = 0.0  # triplet loss of the trained head on the same data
    counts: dict[str, int] = field(default_factory=dict)


MARGIN = 0.2
REGULARISATION = 1.0
LEARNING_RATE = 5e-4
MAX_STEPS = 1500
PATIENCE = 100
PEOPLE_PER_BATCH = 128


def _triplet_terms(torch, head, anchors, anchor_labels, positives, positive_labels, batch_labels, margin):  # noqa: ANN001, ANN202
    """Batch-hard margin loss for the anchors whose label is in ``batch_labels``: hardest (least
    similar) positive of the same person, hardest (most similar) vector of any other person among
    all anchors and the batch's positives."""
    in_batch_a = torch.isin(anchor_labels, batch_labels)
    in_batch_p = torch.isin(positive_labels, batch_labels)
    a_all = head(anchors)
    a = a_all[in_batch_a]
    a_lab = anchor_labels[in_batch_a]
    p = head(positives[in_batch_p])
    p_lab = positive_labels[in_batch_p]
    sim_ap = a @ p.T
    same_p = a_lab[:, None] == p_lab[None, :]
    hardest_pos = torch.where(same_p, sim_ap, torch.full_like(sim_ap, 2.0)).min(dim=1).values
    negatives = torch.cat([a_all, p])
    neg_lab = torch.cat([anchor_labels, p_lab])
    sim_an = a @ negatives.T
    other = a_lab[:, None] != neg_lab[None, :]
    hardest_neg = torch.where(other, sim_an, torch.full_like(sim_an, -2.0)).max(dim=1).values
    valid = same_p.any(dim=1) & other.any(dim=1)
    return torch.relu(margin + hardest_neg - hardest_pos)[valid]


def triplet_loss(head: ProjectionHead, *, anchors: np.ndarray, anchor_labels: np.ndarray, positives: np.ndarray,
                 positive_labels: np.ndarray, margin: float = MARGIN) -> float:
    """The batch-hard triplet loss of ``head`` over all the data at once (no regularisation)."""
    import torch

    a_lab = torch.as_tensor(np.asarray(anchor_labels, dtype=np.int64))
    p_lab = torch.as_tensor(np.asarray(positive_labels, dtype=np.int64))
    with torch.no_grad():
        terms = _triplet_terms(torch, head.module(), torch.from_numpy(np.asarray(anchors, dtype=np.float32)), a_lab,
                               torch.from_numpy(np.asarray(positives, dtype=np.float32)), p_lab,
                               torch.unique(p_lab), margin)
    return float(terms.mean()) if len(terms) else 0.0


def train_head(*, anchors: np.ndarray, anchor_labels: np.ndarray, positives: np.ndarray, positive_labels: np.ndarray,
               parent: ProjectionHead | None = None, max_minutes: float = 30.0, device: str = "cpu", seed: int = 0,
               margin: float = MARGIN, regularisation: float = REGULARISATION, learning_rate: float = LEARNING_RATE,
               max_steps: int = MAX_STEPS, patience: int = PATIENCE,
               people_per_batch: int = PEOPLE_PER_BATCH,
               heartbeat: Callable[[float], None] | None = None) -> TrainingResult:
    """Train a head from ``parent`` (identity when None) with batch-hard triplets.

    ``anchors`` (Na, D) float32 gallery vectors with ``anchor_labels`` (Na,) int person ids;
    ``positives`` (Np, D) float32 other views with ``positive_labels`` (Np,). The vectors are those
    of the frozen embedder (not of the parent head): the head maps the embedder's space. Each step
    takes up to ``people_per_batch`` people who have both an anchor and a positive; negatives come
    from everyone. The objective adds ``regularisation`` * ||W - W_parent||^2 + ||b - b_parent||^2.
    Stops when the loss has not improved for ``patience`` steps, after ``max_steps``, or at
    ``max_minutes``. CUDA is used when ``device`` is "cuda" and available. ``heartbeat``, if
    given, is called with the fraction of the time allowed that has passed, every HEARTBEAT_SECONDS
    (the nightly job's sign of life: a run is judged dead when it stops).
    """
    import torch

    started = time.monotonic()
    deadline = started + max_minutes * 60.0
    anchors = np.asarray(anchors, dtype=np.float32)
    positives = np.asarray(positives, dtype=np.float32)
    dim = anchors.shape[1] if anchors.ndim == 2 else 0
    if anchors.ndim != 2 or positives.ndim != 2 or positives.shape[1] != dim:
        raise ValueError(f"anchors {anchors.shape} and positives {positives.shape} must be (N, D) of one D")
    if len(anchor_labels) != len(anchors) or len(positive_labels) != len(positives):
        raise ValueError("one label per vector is needed")
    parent = parent or ProjectionHead.identity(dim)
    if parent.dim != dim:
        raise ValueError(f"the parent head is {parent.dim}-d, the vectors {dim}-d")
    used = "cuda" if device.startswith("cuda") and torch.cuda.is_available() else "cpu"
    dev = torch.device(device if used == "cuda" else "cpu")
    generator = np.random.default_rng(seed)
    torch.manual_seed(seed)

    a_lab_np = np.asarray(anchor_labels, dtype=np.int64)
    p_lab_np = np.asarray(positive_labels, dtype=np.int64)
    trainable = np.intersect1d(np.unique(a_lab_np), np.unique(p_lab_np))
    counts = {"anchors": len(anchors), "positives": len(positives), "people": int(len(np.unique(a_lab_np))),
              "people_with_positives": int(len(trainable))}
    initial = triplet_loss(parent, anchors=anchors, anchor_labels=a_lab_np, positives=positives,
                           positive_labels=p_lab_np, margin=margin)
    if len(trainable) == 0 or len(np.unique(np.concatenate([a_lab_np, p_lab_np]))) < 2:
        return TrainingResult(head=ProjectionHead(parent.weight.copy(), parent.bias.copy()), losses=[], steps=0,
                              seconds=time.monotonic() - started, device=used, stopped="no_triplets",
                              initial_loss=initial, final_loss=initial, counts=counts)

    a_t = torch.from_numpy(anchors).to(dev)
    p_t = torch.from_numpy(positives).to(dev)
    a_lab = torch.from_numpy(a_lab_np).to(dev)
    p_lab = torch.from_numpy(p_lab_np).to(dev)
    w_ref = torch.from_numpy(parent.weight.copy()).to(dev)
    b_ref = torch.from_numpy(parent.bias.copy()).to(dev)
    module = parent.module().to(dev).train()
    optimiser = torch.optim.Adam(module.parameters(), lr=learning_rate)

    losses: list[float] = []
    best, best_step, best_state = float("inf"), 0, None
    stopped = "max_steps"
    full_batch = len(trainable) <= people_per_batch
    beaten = started
    for step in range(max_steps):
        now = time.monotonic()
        if now >= deadline:
            stopped = "time"
            break
        if heartbeat is not None and now - beaten >= HEARTBEAT_SECONDS:
            heartbeat((now - started) / max(deadline - started, 1e-9))
            beaten = now
        chosen = trainable if full_batch else generator.choice(trainable, size=people_per_batch, replace=False)
        batch = torch.from_numpy(np.asarray(chosen, dtype=np.int64)).to(dev)
        terms = _triplet_terms(torch, module, a_t, a_lab, p_t, p_lab, batch, margin)
        triplet = terms.mean() if len(terms) else torch.zeros((), device=dev)
        penalty = ((module.weight - w_ref) ** 2).sum() + ((module.bias - b_ref) ** 2).sum()
        loss = triplet + regularisation * penalty
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        value = float(loss.detach())
        losses.append(value)
        if value < best - 1e-6:
            best, best_step = value, step
            best_state = (module.weight.detach().clone(), module.bias.detach().clone())
        elif step - best_step >= patience:
            stopped = "converged"
            break
    weight, bias = best_state if best_state is not None else (module.weight.detach(), module.bias.detach())
    head = ProjectionHead(weight.cpu().numpy(), bias.cpu().numpy())
    final = triplet_loss(head, anchors=anchors, anchor_labels=a_lab_np, positives=positives,
                         positive_labels=p_lab_np, margin=margin)
    return TrainingResult(head=head, losses=losses, steps=len(losses), seconds=time.monotonic() - started,
                          device=used, stopped=stopped, initial_loss=initial, final_loss=final, counts=counts)


def augment_crop(crop: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Other views of one aligned face crop, for the frozen embedder to embed as positives.

    ``crop`` (S, S, 3) RGB uint8 -> a list of (S, S, 3) RGB uint8: the horizontal mirror (FISON's
    flip), two small random crops re-scaled to S (zoom of 4-12% with a random shift), and two
    brightness/contrast changes (one of them on the mirror).
    """
    import cv2

    crop = np.ascontiguousarray(np.asarray(crop, dtype=np.uint8))
    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"expected an (S, S, 3) RGB crop, got {crop.shape}")
    height, width = crop.shape[:2]
    views = [np.ascontiguousarray(crop[:, ::-1])]
    for _ in range(2):
        scale = rng.uniform(0.88, 0.96)
        h, w = max(2, round(height * scale)), max(2, round(width * scale))
        top = int(rng.integers(0, height - h + 1))
        left = int(rng.integers(0, width - w + 1))
        views.append(cv2.resize(crop[top:top + h, left:left + w], (width, height), interpolation=cv2.INTER_LINEAR))
    for source in (crop, views[0]):
        contrast = rng.uniform(0.75, 1.25)
        brightness = rng.uniform(-30.0, 30.0)
        mean = source.mean()
        changed = (source.astype(np.float32) - mean) * contrast + mean + brightness
        views.append(np.clip(changed, 0, 255).astype(np.uint8))
    return views
