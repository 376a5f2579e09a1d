"""The learning gate: does a candidate model (new templates and/or a new head) beat the active one
on data it did not learn from? Pure numpy over the indexes recognition itself builds
(recognition.selectors.build_index), so it measures exactly what a check-in would be answered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_STRANGERS = 50  # fewer kept strangers than this: the gallery's own people, left one out, are added
LOW_PERCENTILE = 10  # the "low" margin: the held-out capture at this percentile (the weak end)
MARGIN_TOLERANCE = 0.01  # how far the held-out margins may shrink (ROLLCALL_LEARN_MARGIN_TOLERANCE)


@dataclass(frozen=True)
class GateFigures:
    """One model's figures: held-out captures recognised / misidentified and strangers accepted at
    its calibrated ``threshold``; ``margin``: the held-out captures' mean score (of their own
    person) above it, ``margin_median`` and ``margin_low`` (the LOW_PERCENTILE-th) the same per capture."""

    threshold: float
    recognised: float
    misidentified: float
    strangers_accepted: float
    margin: float
    heldout: int
    strangers: int
    margin_median: float = 0.0
    margin_low: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 5) if isinstance(value, float) else value for key, value in asdict(self).items()}


def stranger_scores(index: object, strangers: list[np.ndarray], *, base_vectors: np.ndarray,
                    labels: np.ndarray) -> np.ndarray:
    """Each stranger burst's best score against the gallery; with too few strangers, each gallery
    photo's best score against the other people (left one out) is added."""
    scores = [index.decide_burst(views, threshold=np.inf).best.score for views in strangers if len(index)]
    if len(scores) < MIN_STRANGERS and len(labels) > 1:
        matrix = index.scores(base_vectors)
        matrix[labels[:, None] == labels[None, :]] = -np.inf
        loo = matrix.max(axis=1)
        scores.extend(float(s) for s in loo[np.isfinite(loo)])
    return np.asarray(scores, dtype=np.float64)


def calibrate(scores: np.ndarray, *, rate: float, floor: float) -> float:
    """The lowest threshold accepting at most ``rate`` of the strangers' scores, never below ``floor``."""
    if len(scores) == 0:
        return floor
    ordered = np.sort(scores)[::-1]
    allowed = int(np.floor(rate * len(ordered)))  # strangers that may score at or above the threshold
    above = float(np.nextafter(ordered[allowed], np.inf)) if allowed < len(ordered) else float(ordered[-1])
    return max(floor, above)


def gate_figures(index: object, *, heldout: list[tuple[int, np.ndarray]], strangers: list[np.ndarray],
                 base_vectors: np.ndarray, labels: np.ndarray, rate: float, floor: float) -> GateFigures:
    """``heldout``: (employee id, views) bursts the model did not learn from; ``strangers``: views of
    unknown faces. The threshold is re-calibrated for this model and gallery."""
    scores = stranger_scores(index, strangers, base_vectors=base_vectors, labels=np.asarray(labels))
    threshold = calibrate(scores, rate=rate, floor=floor)
    recognised = misidentified = 0
    margins = []
    for label, views in heldout:
        decision = index.decide_burst(views, threshold=threshold)
        if decision.best is None:
            continue
        if decision.known and decision.best.label == label:
            recognised += 1
        elif decision.known:
            misidentified += 1
        own = [match.score for match in decision.top if match.label == label]
        margins.append((own[0] if own else decision.best.score - 1.0) - threshold)
    count = max(1, len(heldout))
    return GateFigures(threshold=threshold, recognised=recognised / count, misidentified=misidentified / count,
                       strangers_accepted=float(np.mean(scores >= threshold)) if len(scores) else 0.0,
                       margin=float(np.mean(margins)) if margins else 0.0, heldout=len(heldout), strangers=len(scores),
                       margin_median=float(np.median(margins)) if margins else 0.0,
                       margin_low=float(np.percentile(margins, LOW_PERCENTILE)) if margins else 0.0)


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
