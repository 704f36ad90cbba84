"""VRA against per-feature percentiles and a plain-loop rectification."""

import numpy as np
import pytest
from sklearn.model_selection import ParameterGrid

from sklearn_ood.detectors.vra import VRA

from _helpers import (
    float32_features,
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
    energy_loop,
)
from sklearn_ood.discovery import tuning_grid

# column 0: 0 1 2 3 4, column 1: 10 20 30 40 50
TRAIN = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [3.0, 40.0], [4.0, 50.0]])
HEAD = (np.array([[1.0, 0.1], [-0.5, 0.05]]), np.array([0.0, 1.0]))


def rectify_loop(h, alpha, beta, gamma):
    out = []
    for v, a, b in zip(h, alpha, beta):
        out.append(0.0 if v < a else b if v > b else v + gamma)
    return out


def test_thresholds_per_feature_and_scores_by_hand():
    det = VRA(HEAD, low_percentile=25, high_percentile=75).fit(TRAIN)
    np.testing.assert_array_equal(det.alpha_, [1.0, 20.0])  # 25 % of the way 0..4, 10..50
    np.testing.assert_array_equal(det.beta_, [3.0, 40.0])
    X = np.array([[0.5, 45.0], [2.0, 25.0], [3.5, 15.0]])
    expected = energy_loop([rectify_loop(x, [1, 20], [3, 40], 0.0) for x in X], *HEAD)
    np.testing.assert_allclose(det.score_samples(X), expected)
    # below alpha -> 0 (not raised to alpha), as the official code
    assert rectify_loop([0.5, 45.0], [1, 20], [3, 40], 0.0) == [0.0, 40.0]
    plus = VRA(HEAD, low_percentile=25, high_percentile=75, gamma=0.6).fit(TRAIN)
    expected = energy_loop([rectify_loop(x, [1, 20], [3, 40], 0.6) for x in X], *HEAD)
    np.testing.assert_allclose(plus.score_samples(X), expected)


def test_absolute_thresholds_and_ood_rows_dropped():
    det = VRA(HEAD, thresholds=(0.5, 1.0)).fit(TRAIN)
    np.testing.assert_array_equal(det.alpha_, [0.5, 0.5])
    np.testing.assert_array_equal(det.beta_, [1.0, 1.0])
    y = np.array([0, 0, 1, 1, -1])  # the last row is OOD
    det = VRA(HEAD, low_percentile=0, high_percentile=100).fit(TRAIN, y)
    np.testing.assert_array_equal(det.beta_, [3.0, 40.0])


def test_thresholds_equal_numpy_percentiles_of_a_float64_copy():
    X, head = float32_features(n=3000, d=20)
    X[:, 3] = 0.5  # an all-equal column
    det = VRA(head, low_percentile=0, high_percentile=37.5).fit(X)
    np.testing.assert_array_equal(det.alpha_, np.percentile(X.astype(np.float64), 0, axis=0))
    np.testing.assert_array_equal(det.beta_, np.percentile(X.astype(np.float64), 37.5, axis=0))
    det = VRA(head, low_percentile=60, high_percentile=100).fit(X)
    np.testing.assert_array_equal(det.alpha_, np.percentile(X.astype(np.float64), 60, axis=0))
    np.testing.assert_array_equal(det.beta_, X.max(axis=0))


def test_bad_thresholds():
    with pytest.raises(ValueError, match="low_percentile must be below high_percentile"):
        VRA(HEAD, low_percentile=90, high_percentile=60).fit(TRAIN)
    with pytest.raises(ValueError, match=r"alpha <= beta, e.g. \(0.5, 1.0\)"):
        VRA(HEAD, thresholds=(2.0, 1.0)).fit(TRAIN)


def test_tuning_grid_candidates_fit():
    candidates = list(ParameterGrid(tuning_grid(VRA, len(TRAIN))))
    assert len(candidates) == 16
    for params in candidates:
        det = VRA(HEAD, **params).fit(TRAIN)
        a = [np.percentile(TRAIN[:, j], params["low_percentile"]) for j in range(2)]
        b = [np.percentile(TRAIN[:, j], params["high_percentile"]) for j in range(2)]
        expected = energy_loop([rectify_loop(x, a, b, 0.0) for x in TRAIN], *HEAD)
        np.testing.assert_allclose(det.score_samples(TRAIN), expected)


def test_missing_head_is_a_clear_error():
    check_missing_head_is_a_clear_error(VRA)


def test_bad_input_leaves_fitted_estimator_unchanged():
    check_bad_input_leaves_fitted_estimator_unchanged(VRA)


def test_float32_input_gives_float64_scores():
    check_float32_input_gives_float64_scores(VRA)
