"""NCI: alignment of h - mu with the predicted class weight, plus alpha ||h||_1."""

import math

import numpy as np
from sklearn.model_selection import ParameterGrid

from sklearn_ood.detectors.nci import NCI

from _helpers import (
    CONTRACT_HEAD,
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_missing_head_is_a_clear_error,
)
from sklearn_ood.discovery import tuning_grid


def _loop_nci(X_train, W, b, X, alpha):
    D, K = len(W[0]), len(W)
    mean = [sum(row[j] for row in X_train) / len(X_train) for j in range(D)]
    out = []
    for x in X:
        z = [sum(W[k][j] * x[j] for j in range(D)) + b[k] for k in range(K)]
        p = max(range(K), key=lambda k: z[k])
        dev = [x[j] - mean[j] for j in range(D)]
        cos_term = sum(W[p][j] * dev[j] for j in range(D)) / math.sqrt(sum(v * v for v in dev))
        out.append(cos_term + alpha * sum(abs(v) for v in x))
    return np.array(out)


def test_nci_matches_the_loop_and_a_hand_value():
    rng = np.random.default_rng(2)
    W, b = CONTRACT_HEAD
    X_train, X = rng.normal(size=(10, 4)), rng.normal(size=(6, 4))
    for alpha in (0.0, 1e-4, 0.3):
        det = NCI(CONTRACT_HEAD, alpha=alpha).fit(X_train)
        np.testing.assert_allclose(det.score_samples(X), _loop_nci(X_train, W, b, X, alpha),
                                   rtol=1e-12)
    # By hand: W = 2 I, mean (1, 0); x = (1, 3) predicts class 1: w_1 . (0, 3) / 3 = 2,
    # plus 0.5 * 4. The weight norm (2) is not divided out, as in the code.
    det = NCI((2 * np.eye(2), np.zeros(2)), alpha=0.5).fit([[0.0, 1.0], [2.0, -1.0]])
    np.testing.assert_allclose(det.score_samples([[1.0, 3.0]]), [4.0])


def test_nci_contract():
    check_missing_head_is_a_clear_error(NCI)
    check_bad_input_leaves_fitted_estimator_unchanged(NCI)
    # float32 input: float64 scores, equal up to the input's rounding (a score near 0
    # here, so an absolute tolerance)
    X = np.random.default_rng(5).normal(size=(5, 4))
    det = NCI(CONTRACT_HEAD).fit(X)
    s32 = det.score_samples(X.astype(np.float32))
    assert s32.dtype == np.float64
    np.testing.assert_allclose(s32, det.score_samples(X), atol=1e-6)


def test_tuning_grid_candidates_fit():
    rng = np.random.default_rng(3)
    W, b = CONTRACT_HEAD
    X_train, X = rng.normal(size=(8, 4)), rng.normal(size=(3, 4))
    candidates = list(ParameterGrid(tuning_grid(NCI, len(X_train))))
    assert [c["alpha"] for c in candidates] == [0.0, 1e-4, 1e-3, 1e-2, 0.1]
    for params in candidates:
        det = NCI(CONTRACT_HEAD, **params).fit(X_train)
        np.testing.assert_allclose(det.score_samples(X),
                                   _loop_nci(X_train, W, b, X, params["alpha"]))
