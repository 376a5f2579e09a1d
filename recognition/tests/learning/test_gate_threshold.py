"""The candidate's threshold: the active threshold moved by the shift of the clean impostors' upper
quantile, never re-calibrated on a truncated stranger set (pure numpy, no model)."""

from __future__ import annotations

import numpy as np

from recognition.learning_gate import GateScores, calibrate, candidate_threshold, figures_at

FLOOR = 0.914


def _scores(impostors: np.ndarray, *, own: float = 0.95) -> GateScores:
    """Held-out bursts (all person 1, safely recognised at ``own``) whose best other person scored
    ``impostors`` (left one out); no kept strangers."""
    n = len(impostors)
    return GateScores(labels=np.ones(n, np.int64), best_labels=np.ones(n, np.int64), best_scores=np.full(n, own),
                      firsts=np.ones(n, bool), own=np.full(n, own), loo=np.asarray(impostors, np.float64),
                      strangers=np.zeros(0))


def test_the_threshold_moves_by_the_shift_of_the_upper_quantile_never_down_never_below_the_floor() -> None:
    rng = np.random.default_rng(0)
    active = rng.normal(0.88, 0.012, 2000)
    # Learned templates others resemble a little: every impostor score up by 0.004.
    raised = candidate_threshold(_scores(active + 0.004), _scores(active), active_threshold=0.92, rate=0.01,
                                 floor=FLOOR)
    assert abs(raised - 0.924) < 1e-9
    # Templates that lower the impostors' scores never lower the threshold; nor does a low active one.
    assert candidate_threshold(_scores(active - 0.01), _scores(active), active_threshold=0.92, rate=0.01,
                               floor=FLOOR) == 0.92
    assert candidate_threshold(_scores(active), _scores(active), active_threshold=0.5, rate=0.01, floor=FLOOR) == FLOOR


def test_a_truncated_stranger_set_does_not_pull_the_threshold_down() -> None:
    """Kept strangers lack their top band (near misses are not kept). Calibrated on them alone the
    threshold would fall well below the one the site runs on; the shift keeps the site's."""
    rng = np.random.default_rng(1)
    impostors = rng.normal(0.88, 0.012, 2000)
    truncated = impostors[impostors < FLOOR - 0.03]
    assert calibrate(truncated, rate=0.01, floor=0.0) < FLOOR - 0.03  # what a re-calibration would do
    assert candidate_threshold(_scores(truncated), _scores(truncated), active_threshold=FLOOR, rate=0.01,
                               floor=FLOOR) == FLOOR
    figures = figures_at(_scores(truncated), threshold=FLOOR, rate=0.01)
    assert figures.recognised == 1.0 and figures.impostors == len(truncated) and figures.impostors_accepted == 0.0
