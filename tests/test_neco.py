"""NECO: share of the standardised feature's norm in the first d principal directions."""

import math

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.model_selection import ParameterGrid
from sklearn.preprocessing import StandardScaler

from sklearn_ood.detectors._features import CHUNK_ROWS
from sklearn_ood.detectors.neco import NECO, neco_score

from _helpers import CONTRACT_HEAD, check_failed_calls_leave_detector_unchanged
from sklearn_ood.discovery import tuning_grid


def _reference_neco(X_train, X, d, head=None):
    """Standardise by hand, principal directions by an SVD, ratio of norms by sums."""
    n, D = X_train.shape
    mean = X_train.sum(axis=0) / n
    std = np.sqrt(((X_train - mean) ** 2).sum(axis=0) / n)
    std[std == 0] = 1.0
    Z_train = (X_train - mean) / std
    _, s, Vt = np.linalg.svd(Z_train - Z_train.mean(axis=0), full_matrices=False)
    if isinstance(d, float):
        share = np.cumsum(s**2) / np.sum(s**2)
        d = next(i + 1 for i, v in enumerate(share) if v > d)
    out = []
    for i, x in enumerate(X):
        z = (x - mean) / std
        proj = [sum(Vt[j, k] * (z[k] - Z_train.mean(axis=0)[k]) for k in range(D))
                for j in range(d)]
        score = math.sqrt(sum(p * p for p in proj)) / math.sqrt(sum(v * v for v in z))
        if head is not None:
            W, b = head
            score *= max(sum(W[c][k] * x[k] for k in range(D)) + b[c] for c in range(len(W)))
        out.append(score)
    return np.array(out)


def test_neco_matches_the_reference():
    rng = np.random.default_rng(9)
    X_train = rng.normal(size=(30, 4)) @ rng.normal(size=(4, 4)) + 3
    X = rng.normal(size=(6, 4)) * 2
    for d in (1, 2, 4, 0.5, 0.9):
        det = NECO(n_components=d).fit(X_train)
        np.testing.assert_allclose(det.score_samples(X), _reference_neco(X_train, X, d),
                                   rtol=1e-9)
    det = NECO(CONTRACT_HEAD, n_components=2).fit(X_train)
    np.testing.assert_allclose(det.score_samples(X),
                               _reference_neco(X_train, X, 2, CONTRACT_HEAD), rtol=1e-9)
    # all components: every row scores 1 (up to the PCA mean, 0 here)
    np.testing.assert_allclose(NECO(n_components=4).fit(X_train).score_samples(X), 1.0)


def test_neco_hand_values():
    # standardised rows (+-1, +-1) with correlation 0.6: first direction (1, 1)/sqrt2
    X = np.array([[-2.0, -2.0], [2.0, 2.0], [-1.0, 1.0], [1.0, -1.0]])
    det = NECO(n_components=1).fit(X)
    assert det.n_components_ == 1
    np.testing.assert_allclose(det.score_samples([[2.0, 2.0], [1.0, -1.0], [3.0, 1.0]]),
                               [1.0, 0.0, 4 / math.sqrt(2) / math.sqrt(10)], atol=1e-12)
    # explained variances 1.6 and 0.4: 0.8 of the variance needs 1 component, 0.85 two
    assert NECO(n_components=0.79).fit(X).n_components_ == 1
    assert NECO(n_components=0.85).fit(X).n_components_ == 2
    # 3 rows in 5-D: min(3, 5) components, as PCA
    assert NECO().fit(np.arange(15.0).reshape(3, 5) ** 2).explained_variance_ratio_.shape == (3,)


def test_rows_too_large_to_square_keep_their_score():
    # ||P z|| / ||z|| is scale-invariant; rows around 1e200 overflow the squares (inf / inf)
    rng = np.random.default_rng(12)
    Z = rng.normal(size=(4, 5))
    projected = Z @ rng.normal(size=(5, 2))
    np.testing.assert_allclose(neco_score(Z * 1e200, projected * 1e200),
                               neco_score(Z, projected), rtol=1e-12)


def test_fitted_by_chunks_as_the_official_scaler_and_pca():
    # more rows than one chunk, float32, a constant column: the official recipe is
    # StandardScaler + PCA(svd_solver="full") on all rows at once
    rng = np.random.default_rng(12)
    n = 2 * CHUNK_ROWS + 77
    X = (rng.normal(size=(n, 5)) @ rng.normal(size=(5, 5)) + 20).astype(np.float32)
    X[:, 3] = 7.0
    X_test = rng.normal(20, 3, (9, 5))
    det = NECO(n_components=0.8).fit(X)
    scaler = StandardScaler().fit(X.astype(np.float64))
    pca = PCA(svd_solver="full").fit(scaler.transform(X.astype(np.float64)))
    np.testing.assert_allclose(det.mean_, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(det.scale_, scaler.scale_, rtol=1e-10)
    assert det.scale_[3] == 1.0
    np.testing.assert_allclose(det.explained_variance_ratio_, pca.explained_variance_ratio_,
                               rtol=1e-9, atol=1e-15)
    d = det.n_components_
    assert d == np.searchsorted(np.cumsum(pca.explained_variance_ratio_), 0.8) + 1
    np.testing.assert_allclose(np.abs(det.components_), np.abs(pca.components_[:d]),
                               atol=1e-9)
    Z = scaler.transform(X_test)
    expected = (np.linalg.norm(pca.transform(Z)[:, :d], axis=1)
                / np.linalg.norm(Z, axis=1))
    np.testing.assert_allclose(det.score_samples(X_test), expected, rtol=1e-9)


def test_neco_errors():
    X = np.random.default_rng(10).normal(size=(8, 3))
    with pytest.raises(ValueError, match=r"n_components=4 .*min\(n_samples, n_features\) = 3"):
        NECO(n_components=4).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        NECO(n_components=1.5).fit(X)
    det = NECO().fit(X)
    check_failed_calls_leave_detector_unchanged(det, X, np.zeros(8))


def test_tuning_grid_candidates_fit():
    rng = np.random.default_rng(11)
    X_train, X = rng.normal(size=(25, 5)), rng.normal(size=(4, 5))
    candidates = list(ParameterGrid(tuning_grid(NECO, len(X_train))))
    assert len(candidates) == 6
    for params in candidates:
        det = NECO(**params).fit(X_train)
        np.testing.assert_allclose(det.score_samples(X),
                                   _reference_neco(X_train, X, params["n_components"]),
                                   rtol=1e-9)
