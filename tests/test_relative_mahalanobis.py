"""RelativeMahalanobis (RMD): class distance minus the background distance."""

import pickle

import numpy as np
import pytest

from sklearn_ood.detectors._features import CHUNK_ROWS
from sklearn_ood.detectors.relative_mahalanobis import (
    RelativeMahalanobis,
    relative_mahalanobis_score,
)

from _helpers import blobs_with_ood, check_failed_calls_leave_detector_unchanged


def _loop_rmd(X, y, X_test):
    """-min_k (MD_k - MD_0) with every sum written out (MLE covariances, 1/N)."""
    n, d = X.shape
    classes = sorted(set(y.tolist()))
    means = {c: sum(X[i] for i in range(n) if y[i] == c) / sum(1 for v in y if v == c)
             for c in classes}
    mu0 = sum(X) / n
    shared, background = np.zeros((d, d)), np.zeros((d, d))
    for i in range(n):
        for a in range(d):
            for b in range(d):
                shared[a, b] += (X[i, a] - means[y[i]][a]) * (X[i, b] - means[y[i]][b]) / n
                background[a, b] += (X[i, a] - mu0[a]) * (X[i, b] - mu0[b]) / n
    P, P0 = np.linalg.inv(shared), np.linalg.inv(background)
    out = []
    for x in X_test:
        md0 = (x - mu0) @ P0 @ (x - mu0)
        out.append(-min((x - means[c]) @ P @ (x - means[c]) - md0 for c in classes))
    return np.array(out)


def test_rmd_matches_the_loop_and_hand_values():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal([0, 0, 0], 1, (10, 3)), rng.normal([4, 1, 0], 1, (9, 3)),
                   rng.normal([0, 5, 2], 1, (8, 3))])
    y = np.repeat([0, 1, 2], [10, 9, 8])
    X_test = rng.normal(1, 3, (7, 3))
    det = RelativeMahalanobis().fit(X, y)
    np.testing.assert_allclose(det.score_samples(X_test), _loop_rmd(X, y, X_test),
                               rtol=1e-9)
    # 1-D by hand: classes {-1, 1} and {3, 5}: means 0 and 4, shared variance 1;
    # background mean 2, variance (9 + 1 + 1 + 9) / 4 = 5.
    # x = 1: min_k MD_k = 1, MD_0 = 1/5 -> -0.8; x = 8: MD = 16, MD_0 = 36/5 -> -8.8
    det = RelativeMahalanobis().fit([[-1.0], [1.0], [3.0], [5.0]], [0, 0, 1, 1])
    np.testing.assert_allclose(det.score_samples([[1.0], [8.0]]), [-0.8, -8.8])
    # OOD rows (label -1) dropped
    det_ood = RelativeMahalanobis().fit([[-1.0], [1.0], [3.0], [5.0], [99.0]],
                                        [0, 0, 1, 1, -1])
    np.testing.assert_allclose(det_ood.score_samples([[1.0], [8.0]]), [-0.8, -8.8])


def test_rmd_fitted_by_chunks_matches_the_loop_on_all_rows():
    # more rows than one chunk, float32 with an offset (cancellation-prone): the
    # chunked fit must equal the loop over all rows at once
    rng = np.random.default_rng(5)
    n = 2 * CHUNK_ROWS + 123
    y = rng.integers(0, 3, n)
    centres = np.array([[0, 0, 0], [3, 1, 0], [0, 4, 2]]) + 100
    X = (centres[y] + rng.normal(size=(n, 3))).astype(np.float32)
    X_test = rng.normal(100, 3, (6, 3))
    det = RelativeMahalanobis().fit(X, y)
    np.testing.assert_allclose(det.score_samples(X_test),
                               _loop_rmd(X.astype(np.float64), y, X_test), rtol=1e-7)
    np.testing.assert_allclose(det.background_mean_, X.astype(np.float64).mean(axis=0),
                               rtol=1e-12)


def test_rmd_normalize_is_rmd_on_normalised_rows():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(20, 3)) + 2, np.repeat([0, 1], 10)
    X_test = rng.normal(size=(5, 3))
    norm = lambda Z: Z / np.linalg.norm(Z, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(
        RelativeMahalanobis(normalize=True).fit(X, y).score_samples(X_test),
        _loop_rmd(norm(X), y, norm(X_test)), rtol=1e-8)


def test_rows_whose_distances_both_overflow_keep_their_score():
    # x = t (1, 1, 1), means at 0, P = I, P_0 = 0.7 I: MD_k = 3 t^2 and MD_0 = 2.1 t^2 both
    # overflow at t = 1e154 (inf - inf), while the score -0.9 t^2 = -9e307 is a float64
    t = 1e154
    x = np.full((1, 3), t)
    score = relative_mahalanobis_score(x, np.zeros((2, 3)), np.eye(3), np.zeros(3),
                                       0.7 * np.eye(3))
    np.testing.assert_allclose(score, [-0.9 * t * t], rtol=1e-12)


def test_rmd_needs_labels_and_leaves_state_on_errors():
    X, y = blobs_with_ood()
    with pytest.raises(ValueError, match=r"RelativeMahalanobis requires y.*fit\(X, y\)"):
        RelativeMahalanobis().fit(X)
    det = RelativeMahalanobis().fit(X, y)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="requires y"):
        det.fit(X)
    assert pickle.dumps(det) == state
    check_failed_calls_leave_detector_unchanged(det, X[y >= 0], y[y >= 0])
