"""SCALE against a plain-loop reference (no pruning, unlike ASH-S)."""

import math

import numpy as np
from sklearn.model_selection import ParameterGrid

from sklearn_ood.detectors.scale import SCALE

from _helpers import (
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
    energy_loop,
)
from sklearn_ood.discovery import tuning_grid

H = np.array([[1.0, 2.0, 0.0, 1.0], [0.5, 0.1, 3.0, 0.2], [1.0, 1.0, 1.0, 1.0]])
HEAD = (np.array([[1.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.5, 0.0]]), np.array([0.2, -0.3]))


def scale_loop(h, p):
    d = len(h)
    k = d - round(d * p / 100)  # Python's round halves to even, as np.round
    top = sorted(h, reverse=True)[:k]
    r = math.exp(sum(h) / sum(top)) if sum(top) != 0 else 1.0  # k = 0: no rescaling
    return [r * v for v in h]


def test_scale_by_hand():
    # row 0, p = 50: k = 2, s1 = 4, s2 = 2 + 1 = 3 -> every entry times e^(4/3)
    assert scale_loop(list(H[0]), 50) == [math.exp(4 / 3) * v for v in H[0]]
    for p in (50, 85, 0):
        det = SCALE(HEAD, percentile=p).fit(H)
        expected = energy_loop([scale_loop(list(h), p) for h in H], *HEAD)
        np.testing.assert_allclose(det.score_samples(H), expected)


def test_tuning_grid_candidates_fit():
    candidates = list(ParameterGrid(tuning_grid(SCALE, len(H))))
    assert len(candidates) == 7
    rng = np.random.default_rng(0)
    X = rng.random((6, 20))  # 20 features: k = 20 - round(20 p / 100) = 7 .. 1
    head = (rng.normal(size=(3, 20)) * 1e-4, rng.normal(size=3))  # r up to e^10: small W
    for params in candidates:
        det = SCALE(head, **params).fit(X)
        expected = energy_loop([scale_loop(list(h), params["percentile"]) for h in X], *head)
        np.testing.assert_allclose(det.score_samples(X), expected)


def test_missing_head_is_a_clear_error():
    check_missing_head_is_a_clear_error(SCALE)


def test_bad_input_leaves_fitted_estimator_unchanged():
    check_bad_input_leaves_fitted_estimator_unchanged(SCALE)


def test_float32_input_gives_float64_scores():
    check_float32_input_gives_float64_scores(SCALE)
