"""GaussianDensity (DDU's GDA) against scipy's multivariate normal and the jitter rule."""

import pickle

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold

from sklearn_ood.detectors.gaussian_density import (
    GaussianDensity,
    cholesky_with_jitter,
)
from sklearn_ood.metrics import auroc_scorer

from _helpers import blobs_with_ood, check_failed_calls_leave_detector_unchanged
from sklearn_ood.discovery import tuning_grid

TINY = np.finfo(np.float64).tiny
LADDER = [0, np.finfo(np.float64).tiny] + [10**e for e in range(-308, 0)]


def _gda_reference(X, y, X_test, jitter=0.0):
    logps = []
    for c in np.unique(y):
        Xc = X[y == c]
        cov = np.cov(Xc, rowvar=False)  # unbiased by default
        logps.append(multivariate_normal(Xc.mean(axis=0), cov + jitter * np.eye(X.shape[1]))
                     .logpdf(X_test))
    return logsumexp(np.column_stack(logps), axis=1)


def test_gaussian_density_matches_scipy():
    rng = np.random.default_rng(8)
    X = np.vstack([rng.normal(0, 1, (6, 3)), rng.normal(3, 2, (7, 3)),
                   rng.normal(-3, 0.5, (5, 3))])
    y = np.repeat([0, 1, 2], [6, 7, 5])
    X_test = rng.normal(0, 2, (6, 3))
    det = GaussianDensity().fit(X, y)
    assert det.jitter_ == 0.0
    np.testing.assert_allclose(det.score_samples(X_test), _gda_reference(X, y, X_test),
                               rtol=1e-10)
    np.testing.assert_allclose(det.covariances_[1], np.cov(X[y == 1].T))
    # normalize=True: fit and score the L2-normalised features
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Xtn = X_test / np.linalg.norm(X_test, axis=1, keepdims=True)
    np.testing.assert_allclose(
        GaussianDensity(normalize=True).fit(X, y).score_samples(X_test),
        _gda_reference(Xn, y, Xtn), rtol=1e-9)


def _first_working_jitter(covs):
    for eps in LADDER:
        try:
            for cov in covs:
                np.linalg.cholesky(cov + eps * np.eye(len(cov)))
        except np.linalg.LinAlgError:
            continue
        return eps


def test_gaussian_density_jitter_for_a_collinear_class():
    rng = np.random.default_rng(9)
    line = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])  # covariance [[1, 1], [1, 1]]
    blob = rng.normal(5, 1, (6, 2))
    X, y = np.vstack([line, blob]), np.repeat([0, 1], [3, 6])
    det = GaussianDensity().fit(X, y)
    assert det.jitter_ == _first_working_jitter([np.cov(line.T), np.cov(blob.T)])
    assert det.jitter_ == 1e-15  # 1 + 1e-16 == 1 in float64, so 1e-15 is the first
    # off the line, class 0's density underflows: the score is class 1's alone
    x = np.array([[4.0, 5.0]])
    np.testing.assert_allclose(det.score_samples(x),
                               multivariate_normal(blob.mean(0), np.cov(blob.T)).logpdf(x))
    # on the line, class 0's density is huge
    assert det.score_samples([[0.5, 0.5]])[0] > 10


def test_gaussian_density_constant_feature_and_finite_floor():
    # a constant feature in every class: jitter tiny, far rows get a finite floor
    X = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [5.0, 1.0], [7.0, 1.0]])
    det = GaussianDensity().fit(X, [0, 0, 0, 1, 1])
    assert det.jitter_ == TINY
    scores = det.score_samples([[1.0, 1.0], [1.0, 11.0]])
    assert np.isfinite(scores).all() and scores[1] == -np.finfo(np.float64).max
    assert det.offset_ > -np.inf


def test_cholesky_with_jitter_skips_unchanged_matrices_without_changing_the_answer():
    covs = np.array([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 2.0]]])
    eps, L = cholesky_with_jitter(covs)
    assert eps == _first_working_jitter(covs) == 1e-15
    np.testing.assert_allclose(L @ L.transpose(0, 2, 1), covs + eps * np.eye(2))
    with pytest.raises(ValueError, match="No jitter up to 0.1 "):
        cholesky_with_jitter(np.array([[[-1.0]]]))


def test_gaussian_density_needs_labels():
    X = np.random.default_rng(10).normal(size=(6, 2))
    with pytest.raises(ValueError, match="GaussianDensity requires y to be passed"):
        GaussianDensity().fit(X)
    with pytest.raises(ValueError, match="class 2 has 1 sample"):
        GaussianDensity().fit(X, [0, 0, 1, 1, 1, 2])


def test_gaussian_density_under_an_affine_map():
    # The log-density shifts by -log|det A| under x -> x A + c (A invertible).
    rng = np.random.default_rng(13)
    X, y = rng.normal(size=(20, 3)), np.repeat([0, 1], 10)
    X_test = rng.normal(size=(5, 3))
    A, c = rng.normal(size=(3, 3)) + 2 * np.eye(3), rng.normal(size=3)
    np.testing.assert_allclose(
        GaussianDensity().fit(X @ A + c, y).score_samples(X_test @ A + c),
        GaussianDensity().fit(X, y).score_samples(X_test) - np.log(abs(np.linalg.det(A))),
        rtol=1e-8)


def test_errors_leave_the_fitted_estimator_unchanged():
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(12, 3)), np.repeat([0, 1], 6)
    det = GaussianDensity().fit(X, y)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="requires y"):
        det.fit(X)
    assert pickle.dumps(det) == state
    check_failed_calls_leave_detector_unchanged(det, X, y)


def test_grid_search_gets_the_id_class_labels():
    X, y = blobs_with_ood()
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(GaussianDensity(), {"normalize": [False, True]},
                          scoring=auroc_scorer, cv=cv, error_score="raise").fit(X, y)

    # Each fold by hand: scipy's Gaussians on the training part's ID rows per class.
    def mean_auroc(normalize):
        Z = X / np.linalg.norm(X, axis=1, keepdims=True) if normalize else X
        return np.mean([
            roc_auc_score(y[test] >= 0, _gda_reference(Z[train][y[train] >= 0],
                                                       y[train][y[train] >= 0], Z[test]))
            for train, test in cv.split(X, y)
        ])

    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               [mean_auroc(False), mean_auroc(True)])
    assert search.best_score_ > 0.8


def test_gaussian_density_reg_covar_is_the_smallest_jitter():
    # Class 0 never varies along the second feature: a singular covariance.
    X = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 1.0], [5.0, 0.0], [6.0, 2.0], [7.0, 1.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    faithful = GaussianDensity().fit(X, y)
    assert 0.0 < faithful.jitter_ < 1e-300  # DDU's ladder: the first value that works
    det = GaussianDensity(reg_covar=0.5).fit(X, y)
    assert det.jitter_ == 0.5
    # By hand: class 0 has mean (1, 1), covariance diag(1, 0) + 0.5 I; class 1 has
    # mean (6, 1), deviations (-1, -1), (0, 1), (1, 0): covariance [[1, .5], [.5, 1]]
    # (unbiased, n - 1 = 2) + 0.5 I.
    x = np.array([[1.0, 2.0]])
    cov0, cov1 = np.diag([1.5, 0.5]), np.array([[1.5, 0.5], [0.5, 1.5]])
    expected = np.logaddexp(multivariate_normal([1, 1], cov0).logpdf(x[0]),
                            multivariate_normal([6, 1], cov1).logpdf(x[0]))
    np.testing.assert_allclose(det.score_samples(x), [expected])
    # With DDU's rule class 0's density vanishes off its line y = 1, so only class 1
    # counts, and the sample, typical of class 0 but for its y, looks far from ID.
    only_class_1 = multivariate_normal([6, 1], [[1.0, 0.5], [0.5, 1.0]]).logpdf(x[0])
    np.testing.assert_allclose(faithful.score_samples(x), [only_class_1])
    assert only_class_1 < expected - 15


def test_tuning_grid_candidates_fit():
    # Class 0 never varies along the second feature: a singular covariance.
    X = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 1.0], [5.0, 0.0], [6.0, 2.0], [7.0, 1.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    candidates = list(ParameterGrid(tuning_grid(GaussianDensity, len(X))))
    assert len(candidates) == 4
    det = GaussianDensity()
    x = np.array([[1.0, 2.0], [6.0, 1.0]])
    for params in candidates:
        reg = params["reg_covar"]
        det.set_params(**params).fit(X, y)
        if reg == 0.0:  # DDU's ladder: the first jitter that works, here a tiny one
            assert 0.0 < det.jitter_ < 1e-300
            continue
        assert det.jitter_ == reg
        # class covariances (unbiased) diag(1, 0) and [[1, .5], [.5, 1]], plus reg I
        expected = np.logaddexp(
            multivariate_normal([1, 1], np.diag([1.0, 0.0]) + reg * np.eye(2)).logpdf(x),
            multivariate_normal([6, 1], [[1.0 + reg, 0.5], [0.5, 1.0 + reg]]).logpdf(x))
        np.testing.assert_allclose(det.score_samples(x), expected)
