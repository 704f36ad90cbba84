"""FDBD (fDBD): summed distances to the decision boundaries over the distance to the mean."""

import math

import numpy as np
import pytest
from sklearn.model_selection import ParameterGrid

from sklearn_ood.detectors.fdbd import FDBD

from _helpers import (
    CONTRACT_HEAD,
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
)
from sklearn_ood.discovery import tuning_grid


def _loop_fdbd(X_train, W, b, X, normalizer="distance"):
    D, K = len(W[0]), len(W)
    mean = [sum(row[j] for row in X_train) / len(X_train) for j in range(D)]
    out = []
    for x in X:
        z = [sum(W[k][j] * x[j] for j in range(D)) + b[k] for k in range(K)]
        p = max(range(K), key=lambda k: z[k])
        total = 0.0
        for c in range(K):
            if c != p:
                total += abs(z[p] - z[c]) / math.sqrt(sum((W[p][j] - W[c][j]) ** 2
                                                          for j in range(D)))
        centre = mean if normalizer == "distance" else [0.0] * D
        out.append(total / math.sqrt(sum((x[j] - centre[j]) ** 2 for j in range(D))))
    return np.array(out)


def test_fdbd_matches_the_loop_and_a_hand_value():
    rng = np.random.default_rng(0)
    W, b = CONTRACT_HEAD
    X_train, X = rng.normal(size=(10, 4)), rng.normal(size=(6, 4))
    for normalizer in ("distance", "norm"):
        det = FDBD(CONTRACT_HEAD, normalizer=normalizer).fit(X_train)
        np.testing.assert_allclose(det.score_samples(X),
                                   _loop_fdbd(X_train, W, b, X, normalizer), rtol=1e-12)
    # By hand: W = I (3 classes in 3-D), mean (0, 0, 1); x = (3, 1, 1) predicts class 0:
    # gaps 2 and 2 over ||e0 - e1|| = ||e0 - e2|| = sqrt2, over ||x - mean|| = sqrt10.
    det = FDBD((np.eye(3), np.zeros(3))).fit([[1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]])
    np.testing.assert_allclose(det.score_samples([[3.0, 1.0, 1.0]]),
                               [4 / math.sqrt(2) / math.sqrt(10)])
    # identical weight rows contribute 0 (not NaN)
    det = FDBD((np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.zeros(3))).fit(
        [[1.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(det.score_samples([[2.0, 1.0]]), [1 / math.sqrt(2) / math.sqrt(5)])


def test_fdbd_contract():
    check_missing_head_is_a_clear_error(FDBD)
    check_bad_input_leaves_fitted_estimator_unchanged(FDBD)
    check_float32_input_gives_float64_scores(FDBD)


def test_tuning_grid_candidates_fit():
    rng = np.random.default_rng(1)
    W, b = CONTRACT_HEAD
    X_train, X = rng.normal(size=(8, 4)), rng.normal(size=(3, 4))
    candidates = list(ParameterGrid(tuning_grid(FDBD, len(X_train))))
    assert len(candidates) == 2
    for params in candidates:
        det = FDBD(CONTRACT_HEAD, **params).fit(X_train)
        np.testing.assert_allclose(det.score_samples(X),
                                   _loop_fdbd(X_train, W, b, X, params["normalizer"]))
    with pytest.raises(ValueError, match="normalizer"):
        FDBD(CONTRACT_HEAD, normalizer="mean").fit(X_train)
