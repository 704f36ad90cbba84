"""GaussianMixture: prior-weighted class mixtures, against scipy's multivariate normal."""

import math
import pickle

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn import mixture
from sklearn.model_selection import ParameterGrid

from sklearn_ood.detectors.gaussian_mixture import GaussianMixture

from _helpers import blobs_with_ood, check_failed_calls_leave_detector_unchanged
from sklearn_ood.discovery import tuning_grid


def _reference(X, y, X_test, reg):
    """log sum_c (n_c / N) N(x; mu_c, S_c + reg I), S_c the MLE (1/n_c) covariance."""
    dens = np.zeros(len(X_test))
    for c in np.unique(y):
        Xc = X[y == c]
        cov = np.cov(Xc, rowvar=False, bias=True) + reg * np.eye(X.shape[1])
        dens += len(Xc) / len(X) * multivariate_normal(Xc.mean(axis=0), cov).pdf(X_test)
    return np.log(dens)


def test_one_component_per_class_is_pytorch_ood_gmm():
    rng = np.random.default_rng(15)
    X = np.vstack([rng.normal(0, 1, (12, 3)), rng.normal(2, 1.5, (20, 3))])
    y = np.repeat([0, 1], [12, 20])
    X_test = rng.normal(1, 2, (6, 3))
    det = GaussianMixture().fit(X, y)
    np.testing.assert_allclose(det.score_samples(X_test), _reference(X, y, X_test, 1e-6),
                               rtol=1e-8)
    np.testing.assert_allclose(det.priors_, [12 / 32, 20 / 32])
    # without labels: one Gaussian of every row
    np.testing.assert_allclose(GaussianMixture().fit(X).score_samples(X_test),
                               _reference(X, np.zeros(32), X_test, 1e-6), rtol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("labels", [True, False])
def test_one_component_equals_scikit_learn_em(covariance_type, labels):
    # Closed form from class moments taken by chunks (9,000 rows: several chunks per
    # class) against scikit-learn's EM on each class's rows, float32 input.
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(9000, 5)) * [1, 2, 0.5, 3, 1] + [0, 1, -2, 0, 5]).astype(np.float32)
    X[:, 1] += X[:, 0]  # correlated features
    y = rng.integers(0, 3, 9000) if labels else np.zeros(9000, int)
    det = GaussianMixture(covariance_type=covariance_type, reg_covar=1e-3)
    det.fit(X, y if labels else None)
    X_test = rng.normal(0, 3, (50, 5))
    dens = np.zeros(50)
    for c, m in enumerate(det.mixtures_):
        ref = mixture.GaussianMixture(covariance_type=covariance_type, reg_covar=1e-3,
                                      random_state=0).fit(X[y == c].astype(np.float64))
        for attr in ["weights_", "means_", "covariances_", "precisions_cholesky_",
                     "precisions_"]:
            assert getattr(m, attr).shape == getattr(ref, attr).shape
            np.testing.assert_allclose(getattr(m, attr), getattr(ref, attr), rtol=1e-10,
                                       atol=1e-12)
        dens += np.mean(y == c) * np.exp(ref.score_samples(X_test))
    np.testing.assert_allclose(det.score_samples(X_test), np.log(dens), rtol=1e-10)


def test_singular_one_component_covariance_says_what_to_do():
    X = np.column_stack([np.arange(6.0), np.ones(6)])  # a constant feature
    for covariance_type in ["full", "tied", "diag", "spherical"]:
        det = GaussianMixture(covariance_type=covariance_type, reg_covar=0.0)
        if covariance_type == "spherical":  # the mean variance is positive
            assert np.isfinite(det.fit(X).offset_)
            continue
        with pytest.raises(ValueError, match="covariance is singular .* increase reg_covar"):
            det.fit(X)
        assert not hasattr(det, "mixtures_")


def test_hand_values():
    # classes {-1, 1} (3 rows: -1, 1, 1 -> mean 1/3) and {9, 11}: MLE variances 8/9 and 1
    X = np.array([[-1.0], [1.0], [1.0], [9.0], [11.0]])
    det = GaussianMixture(reg_covar=0.0).fit(X, [0, 0, 0, 1, 1])
    x = 1 / 3
    p0 = math.exp(-0.0) / math.sqrt(2 * math.pi * 8 / 9)
    p1 = math.exp(-((x - 10) ** 2) / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(det.score_samples([[x]]), [math.log(0.6 * p0 + 0.4 * p1)])


def test_two_components_score_is_the_prior_weighted_mixture():
    X, y = blobs_with_ood()
    X, y = X[y >= 0], y[y >= 0]
    det = GaussianMixture(2, random_state=0).fit(X, y)
    X_test = X[:5] + 0.3
    dens = np.zeros(5)
    for prior, m in zip(det.priors_, det.mixtures_):
        for w, mu, cov in zip(m.weights_, m.means_, m.covariances_):
            dens += prior * w * multivariate_normal(mu, cov).pdf(X_test)
    np.testing.assert_allclose(det.score_samples(X_test), np.log(dens), rtol=1e-8)
    # same seed, same mixtures
    np.testing.assert_allclose(GaussianMixture(2, random_state=0).fit(X, y)
                               .score_samples(X_test), det.score_samples(X_test))


def test_errors_say_what_to_do():
    X, y = blobs_with_ood()
    with pytest.raises(ValueError, match=r"n_components=3 needs at least 3 rows per class; "
                                         r"class 2 has 2"):
        GaussianMixture(3).fit(X[:8], [0, 0, 0, 1, 1, 1, 2, 2])
    det = GaussianMixture().fit(X, y)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="rows per class"):
        det.set_params(n_components=2).fit(X[:3], [0, 1, 1])
    det.set_params(n_components=1)
    assert pickle.dumps(det) == state
    check_failed_calls_leave_detector_unchanged(det, X[y >= 0], y[y >= 0])


@pytest.mark.parametrize("n_components", [1, 2])
def test_overflowing_features_are_a_clear_error(n_components):
    X = np.abs(np.random.default_rng(3).normal(size=(20, 3))) * 1e200
    with pytest.raises(ValueError, match="covariance overflows float64"):
        GaussianMixture(n_components, random_state=0).fit(X, np.arange(20) % 2)


def test_tuning_grid_candidates_fit():
    X, y = blobs_with_ood(16)
    X, y = X[y >= 0], y[y >= 0]
    candidates = list(ParameterGrid(tuning_grid(GaussianMixture, len(X))))
    assert len(candidates) == 6
    for params in candidates:
        if params["n_components"] > 1:
            continue  # EM: every candidate fits and scores finite in test_tuning_grids.py
        det = GaussianMixture(random_state=0, **params).fit(X, y)
        np.testing.assert_allclose(det.score_samples(X[:4]),
                                   _reference(X, y, X[:4], params["reg_covar"]), rtol=1e-8)
