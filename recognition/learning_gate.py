"""The learning gate: does a candidate model (new templates and/or a new head) beat the active one
on data it did not learn from? Pure numpy over the indexes recognition itself builds
(recognition.selectors.build_index), so it measures exactly what a check-in would be answered.

The threshold side (what "strangers at the configured rate" means) rests on impostor scores, and
those must be clean: an impostor score that is really an enrolled person's own score makes any
template that helps that person look like a template strangers resemble. Two sources, both clean:

* the kept strangers (recognition.models.StrangerSample): check-ins answered "unknown" whose best
  score was clearly below the threshold (recognition.learning_harvest.clear_stranger keeps no near
  misses: those are mostly employees who were not recognised);
* leave-one-out impostors of the held-out safe captures: each held-out burst of person P scored
  against everyone but P. Its label is known (the safe decision), so its best other person is
  certainly an impostor; this also restores the top band the near-miss rule cuts from the kept
  strangers (a clean set missing its top band would calibrate a threshold too low).

A candidate's threshold is the active threshold moved by how far the candidate moves the impostors'
upper quantile (``candidate_threshold``): the active threshold is what the site runs on, and the
shift is what the candidate changes about it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

MIN_STRANGERS = 50  # fewer impostor scores than this: the gallery's own people, left one out, are added
LOW_PERCENTILE = 10  # the "low" margin: the held-out capture at this percentile (the weak end)
MARGIN_TOLERANCE = 0.01  # how far the held-out margins may shrink (ROLLCALL_LEARN_MARGIN_TOLERANCE)


@dataclass(frozen=True)
class GateFigures:
    """One model's figures: held-out captures recognised / misidentified and strangers accepted at
    its calibrated ``threshold``; ``margin``: the held-out captures' mean score (of their own
    person) above it, ``margin_median`` and ``margin_low`` (the LOW_PERCENTILE-th) the same per capture.
    ``strangers``: the kept stranger samples; ``impostors``: every impostor score the threshold was
    calibrated on (strangers and held-out captures left one out), ``impostors_accepted`` of them at
    the threshold and ``impostor_quantile`` their (1 - rate) quantile."""

    threshold: float
    recognised: float
    misidentified: float
    strangers_accepted: float
    margin: float
    heldout: int
    strangers: int
    margin_median: float = 0.0
    margin_low: float = 0.0
    impostors: int = 0
    impostors_accepted: float = 0.0
    impostor_quantile: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 5) if isinstance(value, float) else value for key, value in asdict(self).items()}


@dataclass
class GateScores:
    """One model's raw answers on the gate's data, before any threshold: per held-out burst its
    best match (label, score, and whether that person ranked first in half the views), its own
    person's score, and its best other person's score (a leave-one-out impostor); the kept
    strangers' best scores; and, when those impostors are few, the gallery photos' left one out."""

    labels: np.ndarray  # the held-out bursts' true (safely decided) people
    best_labels: np.ndarray
    best_scores: np.ndarray
    firsts: np.ndarray  # bool: the best person ranked first in at least half the views
    own: np.ndarray  # the own person's score (-inf: not among the top matches)
    loo: np.ndarray  # the best other person's score (-inf: none)
    strangers: np.ndarray
    gallery_loo: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def impostors(self) -> np.ndarray:
        loo = self.loo[np.isfinite(self.loo)]
        return np.concatenate([self.strangers, loo, self.gallery_loo]).astype(np.float64)


def gate_scores(index: object, *, heldout: list[tuple[int, np.ndarray]], strangers: list[np.ndarray],
                base_vectors: np.ndarray, labels: np.ndarray) -> GateScores:
    """Decide every held-out burst and stranger once (no threshold); see ``GateScores``. The
    leave-one-out impostor of a held-out burst is the best of the burst's other top matches (the
    same candidates ``decide_burst`` ranks, so it costs nothing more)."""
    rows = []
    for label, views in heldout:
        decision = index.decide_burst(views, threshold=-np.inf) if len(index) else None
        if decision is None or decision.best is None:
            rows.append((label, -1, -np.inf, False, -np.inf, -np.inf))
            continue
        own = [m.score for m in decision.top if m.label == label]
        other = [m.score for m in decision.top if m.label != label]
        rows.append((label, decision.best.label, decision.best.score, decision.known,
                     own[0] if own else -np.inf, other[0] if other else -np.inf))
    stranger_best = np.asarray([index.decide_burst(views, threshold=np.inf).best.score
                                for views in strangers if len(index)], dtype=np.float64)
    columns = list(zip(*rows, strict=True)) if rows else [()] * 6
    scores = GateScores(labels=np.asarray(columns[0], dtype=np.int64),
                        best_labels=np.asarray(columns[1], dtype=np.int64),
                        best_scores=np.asarray(columns[2], dtype=np.float64), firsts=np.asarray(columns[3], dtype=bool),
                        own=np.asarray(columns[4], dtype=np.float64), loo=np.asarray(columns[5], dtype=np.float64),
                        strangers=stranger_best)
    labels = np.asarray(labels)
    if len(scores.impostors) < MIN_STRANGERS and len(labels) > 1 and len(index):
        matrix = index.scores(base_vectors)
        matrix[labels[:, None] == labels[None, :]] = -np.inf
        loo = matrix.max(axis=1)
        scores.gallery_loo = loo[np.isfinite(loo)].astype(np.float64)
    return scores


def stranger_scores(index: object, strangers: list[np.ndarray], *, base_vectors: np.ndarray,
                    labels: np.ndarray) -> np.ndarray:
    """Each stranger burst's best score against the gallery; with too few strangers, each gallery
    photo's best score against the other people (left one out) is added."""
    return gate_scores(index, heldout=[], strangers=strangers, base_vectors=base_vectors, labels=labels).impostors


def calibrate(scores: np.ndarray, *, rate: float, floor: float) -> float:
    """The lowest threshold accepting at most ``rate`` of the strangers' scores, never below ``floor``."""
    if len(scores) == 0:
        return floor
    ordered = np.sort(scores)[::-1]
    allowed = int(np.floor(rate * len(ordered)))  # strangers that may score at or above the threshold
    above = float(np.nextafter(ordered[allowed], np.inf)) if allowed < len(ordered) else float(ordered[-1])
    return max(floor, above)


def upper_quantile(scores: np.ndarray, *, rate: float) -> float:
    """The impostor scores' (1 - rate) quantile (the score only ``rate`` of them reach)."""
    return float(np.quantile(scores, 1.0 - rate)) if len(scores) else 0.0


def candidate_threshold(candidate: GateScores, active: GateScores, *, active_threshold: float, rate: float,
                        floor: float) -> float:
    """The candidate's threshold: the active threshold (what the site runs on) raised by how far the
    candidate raises the impostors' upper quantile, ``active_threshold + max(0, q(candidate) -
    q(active))`` on the same impostors (paired), never below ``floor`` (the embedder's threshold).
    Only the shift is taken from the impostors, not their absolute level: the kept strangers lack
    their top band (near misses are not kept), and calibrating on them would set the threshold too
    low; and the active model is never re-calibrated by them either (a contaminated set would make
    the active model look bad and any candidate look good)."""
    shift = max(0.0, upper_quantile(candidate.impostors, rate=rate) - upper_quantile(active.impostors, rate=rate))
    return max(floor, active_threshold + shift)


def figures_at(scores: GateScores, *, threshold: float, rate: float) -> GateFigures:
    """A model's figures at ``threshold``: a held-out burst is recognised when its best match is
    its own person at or above the threshold (and first in half its views), misidentified when it
    is someone else's; its margin is its own person's score (or its best less 1) above the threshold."""
    known = scores.firsts & (scores.best_scores >= threshold)
    recognised = int(np.sum(known & (scores.best_labels == scores.labels)))
    misidentified = int(np.sum(known & (scores.best_labels != scores.labels)))
    decided = np.isfinite(scores.best_scores)
    margins = np.where(np.isfinite(scores.own), scores.own, scores.best_scores - 1.0)[decided] - threshold
    impostors, strangers = scores.impostors, scores.strangers
    count = max(1, len(scores.labels))
    return GateFigures(threshold=float(threshold), recognised=recognised / count, misidentified=misidentified / count,
                       strangers_accepted=float(np.mean(strangers >= threshold)) if len(strangers) else 0.0,
                       margin=float(np.mean(margins)) if len(margins) else 0.0, heldout=len(scores.labels),
                       strangers=len(scores.strangers),
                       margin_median=float(np.median(margins)) if len(margins) else 0.0,
                       margin_low=float(np.percentile(margins, LOW_PERCENTILE)) if len(margins) else 0.0,
                       impostors=len(impostors),
                       impostors_accepted=float(np.mean(impostors >= threshold)) if len(impostors) else 0.0,
                       impostor_quantile=upper_quantile(impostors, rate=rate))


def gate_figures(index: object, *, heldout: list[tuple[int, np.ndarray]], strangers: list[np.ndarray],
                 base_vectors: np.ndarray, labels: np.ndarray, rate: float, floor: float) -> GateFigures:
    """``heldout``: (employee id, views) bursts the model did not learn from; ``strangers``: views of
    unknown faces. The threshold is calibrated for this model and gallery alone (on the strangers and
    the held-out captures left one out); the nightly job pairs a candidate with the active model
    instead (``candidate_threshold``)."""
    scores = gate_scores(index, heldout=heldout, strangers=strangers, base_vectors=base_vectors,
                         labels=np.asarray(labels))
    return figures_at(scores, threshold=calibrate(scores.impostors, rate=rate, floor=floor), rate=rate)


def beats(candidate: GateFigures, active: GateFigures, *, rate: float, strict: bool,
          tolerance: float = MARGIN_TOLERANCE) -> tuple[bool, str]:
    """Whether ``candidate`` may replace ``active``, and why. Never worse on held-out recognition
    or misidentification, strangers within the configured rate (or the active model's), and the
    held-out captures' margins above the candidate's own threshold (median and low percentile)
    shrunk by at most ``tolerance``: a candidate that must raise its threshold to hold strangers
    at the rate (learned templates strangers resemble) leaves its people closer to "Not
    recognised" even while they still pass. With ``strict`` (a new head) it must also be better:
    more recognised, fewer misidentified, or a higher mean margin above its threshold."""
    if candidate.recognised < active.recognised:
        return False, f"recognises fewer held-out captures ({candidate.recognised:.1%} < {active.recognised:.1%})"
    if candidate.misidentified > active.misidentified:
        return False, f"misidentifies more ({candidate.misidentified:.2%} > {active.misidentified:.2%})"
    if candidate.strangers_accepted > max(rate, active.strangers_accepted) + 1e-12:
        return False, f"accepts {candidate.strangers_accepted:.2%} of strangers"
    if candidate.heldout and active.heldout:
        for name, new, old in (("median", candidate.margin_median, active.margin_median),
                               ("low", candidate.margin_low, active.margin_low)):
            if new < old - tolerance - 1e-12:
                return False, (f"held-out margins shrink ({name} {old:+.3f} -> {new:+.3f} above the threshold, "
                               f"{active.threshold:.3f} -> {candidate.threshold:.3f}; tolerance {tolerance:.3f})")
    if strict and not (candidate.recognised > active.recognised or candidate.misidentified < active.misidentified
                       or candidate.margin > active.margin):
        return False, "no better than the active model on held-out captures"
    return True, (f"held-out recognised {active.recognised:.1%} -> {candidate.recognised:.1%}, misidentified "
                  f"{active.misidentified:.2%} -> {candidate.misidentified:.2%}, median margin "
                  f"{active.margin_median:+.3f} -> {candidate.margin_median:+.3f}, strangers accepted "
                  f"{candidate.strangers_accepted:.2%} at {candidate.threshold:.3f}")
