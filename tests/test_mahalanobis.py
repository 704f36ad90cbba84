"""Mahalanobis (shared covariance), plain and rescaled by the negative-aware norm."""

import numpy as np
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sklearn_ood.detectors.mahalanobis import Mahalanobis
from sklearn_ood.metrics import auroc_scorer

from _helpers import (
    blobs_with_ood,
    check_failed_calls_leave_detector_unchanged,
    negative_aware_norm_by_hand,
)


# Class 0 spreads along x, class 1 along y: per-class covariances differ from
# the shared one, so a per-class implementation gives other numbers.
MAHA_X = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 1.0], [2.0, -1.0],
                   [10.0, 0.0], [10.0, 4.0], [11.0, 2.0], [9.0, 2.0]])
MAHA_Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
MAHA_TEST = np.array([[2.0, 0.0], [3.0, 1.0], [10.0, 6.0], [6.0, 1.0], [-2.0, 3.0]])


def _loop_mahalanobis(X, y, X_test, shared=True):
    """-min_c (x - mu_c)^T inv(S) (x - mu_c), sums written out."""
    n, d = X.shape
    classes = sorted(set(y.tolist()))
    means, covs = {}, {}
    for c in classes:
        rows = [X[i] for i in range(n) if y[i] == c]
        means[c] = sum(rows) / len(rows)
    pooled = np.zeros((d, d))
    for c in classes:
        covs[c] = np.zeros((d, d))
        rows = [X[i] for i in range(n) if y[i] == c]
        for row in rows:
            dev = row - means[c]
            for a in range(d):
                for b in range(d):
                    covs[c][a, b] += dev[a] * dev[b]
                    pooled[a, b] += dev[a] * dev[b] / n
        covs[c] /= len(rows)
    out = []
    for x in X_test:
        dists = []
        for c in classes:
            inv = np.linalg.inv(pooled if shared else covs[c])
            dists.append((x - means[c]) @ inv @ (x - means[c]))
        out.append(-min(dists))
    return np.array(out)


def test_mahalanobis_matches_loop_with_shared_covariance():
    det = Mahalanobis().fit(MAHA_X, MAHA_Y)
    expected = _loop_mahalanobis(MAHA_X, MAHA_Y, MAHA_TEST)
    np.testing.assert_allclose(det.score_samples(MAHA_TEST), expected, rtol=1e-10)
    # by hand: means (2, 0), (10, 2); class-centred squares sum to 10 per axis, the
    # cross terms to 0 -> shared covariance 10 / 8 I = 1.25 I (class 0 alone:
    # diag(2, 0.5)). (3, 1): d_0 = 2 / 1.25 = 1.6, d_1 = 50 / 1.25 = 40.
    np.testing.assert_allclose(det.covariance_, np.diag([1.25, 1.25]))
    np.testing.assert_allclose(det.score_samples([[2.0, 0.0], [3.0, 1.0]]), [0.0, -1.6])
    # the fixture tells shared from per-class covariances apart
    per_class = _loop_mahalanobis(MAHA_X, MAHA_Y, MAHA_TEST, shared=False)
    assert not np.allclose(per_class, expected)
    # string labels and OOD rows (label -1) dropped
    X_ood = np.vstack([MAHA_X, [[50.0, 50.0]]])
    det_s = Mahalanobis().fit(X_ood, np.r_[MAHA_Y, -1])
    np.testing.assert_allclose(det_s.score_samples(MAHA_TEST), expected, rtol=1e-10)
    det_str = Mahalanobis().fit(MAHA_X, np.where(MAHA_Y == 0, "cat", "dog"))
    np.testing.assert_array_equal(det_str.classes_, ["cat", "dog"])
    np.testing.assert_allclose(det_str.score_samples(MAHA_TEST), expected, rtol=1e-10)


def test_mahalanobis_without_labels_uses_the_global_mean():
    det = Mahalanobis().fit(MAHA_X)
    assert det.classes_ is None
    expected = _loop_mahalanobis(MAHA_X, np.zeros(len(MAHA_X), int), MAHA_TEST)
    np.testing.assert_allclose(det.score_samples(MAHA_TEST), expected, rtol=1e-10)


def test_mahalanobis_is_affine_invariant():
    # Mahalanobis distances are invariant under x -> x A + c (A invertible).
    rng = np.random.default_rng(13)
    X, y = rng.normal(size=(20, 3)), np.repeat([0, 1], 10)
    X_test = rng.normal(size=(5, 3))
    A, c = rng.normal(size=(3, 3)) + 2 * np.eye(3), rng.normal(size=3)
    np.testing.assert_allclose(
        Mahalanobis().fit(X @ A + c, y).score_samples(X_test @ A + c),
        Mahalanobis().fit(X, y).score_samples(X_test), rtol=1e-8)


def test_mahalanobis_singular_covariance_uses_pseudo_inverse():
    # second feature constant: pinv ignores it, distance = (x1 - mean)^2 / var
    X = np.array([[0.0, 1.0], [2.0, 1.0]])
    det = Mahalanobis().fit(X)
    np.testing.assert_allclose(det.score_samples([[3.0, 7.0]]), [-4.0])


# ---------------------------------------------------------------------------
# NAN rescaling
# ---------------------------------------------------------------------------
def test_mahalanobis_negative_aware_rescale_2d_hand_values():
    X = np.array([[1.0, 0.0], [3.0, 0.0], [1.0, 2.0], [3.0, 2.0]])  # cov = I, mean (2, 1)
    det = Mahalanobis(negative_aware_rescale=True).fit(X)
    # (4, 1): d = 4 + 0 = 4; NAN = 5 / 2 -> -1.6.  (2, 0): d = 1; NAN = 2 / 1 -> -0.5
    np.testing.assert_allclose(det.score_samples([[4.0, 1.0], [2.0, 0.0]]), [-1.6, -0.5])


def test_negative_aware_rescale_4d_uses_pooled_distance_and_flattened_norm():
    rng = np.random.default_rng(5)
    maps = np.maximum(rng.normal(size=(14, 3, 2, 2)), 0)
    test = np.maximum(rng.normal(size=(4, 3, 2, 2)), 0)
    test[1] = 0.0  # no active unit: NAN = 0 -> huge negative but finite
    pooled, test_pooled = maps.mean(axis=(2, 3)), test.mean(axis=(2, 3))
    # min squared distance (pooled, single class) / NAN(flattened map)
    maha = Mahalanobis(negative_aware_rescale=True).fit(maps)
    d2 = -_loop_mahalanobis(pooled, np.zeros(14, int), test_pooled[[0, 2, 3]])
    np.testing.assert_allclose(maha.score_samples(test)[[0, 2, 3]],
                               -d2 / negative_aware_norm_by_hand(test[[0, 2, 3]]), rtol=1e-8)
    assert np.isfinite(maha.score_samples(test)[1])
    # without negative_aware_rescale a 4-D map is average-pooled
    np.testing.assert_allclose(Mahalanobis().fit(maps).score_samples(test[[0, 2, 3]]),
                               -d2, rtol=1e-8)


# ---------------------------------------------------------------------------
# Errors, grid search
# ---------------------------------------------------------------------------
def test_errors_leave_the_fitted_estimator_unchanged():
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(12, 3)), np.repeat([0, 1], 6)
    check_failed_calls_leave_detector_unchanged(Mahalanobis().fit(X, y), X, y)


def test_grid_search_gets_the_id_class_labels():
    X, y = blobs_with_ood()
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(Mahalanobis(), {"negative_aware_rescale": [False, True]},
                          scoring=auroc_scorer, cv=cv, error_score="raise").fit(X, y)

    # Each fold by hand, on the training part's ID rows and their class labels.
    def mean_auroc(rescale, labelled=True):
        aurocs = []
        for train, test in cv.split(X, y):
            ids = y[train] >= 0
            labels = y[train][ids] if labelled else np.zeros(ids.sum(), int)
            scores = _loop_mahalanobis(X[train][ids], labels, X[test])
            for i, x in enumerate(X[test] if rescale else []):  # -d / NAN
                active = sum(1 for v in x if v > 0)  # none: NAN = 0, the lowest score
                scores[i] = scores[i] * active / sum(abs(v) for v in x) if active else -1e308
            aurocs.append(roc_auc_score(y[test] >= 0, scores))
        return np.mean(aurocs)

    expected = [mean_auroc(False), mean_auroc(True)]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], expected)
    assert not np.isclose(expected[0], mean_auroc(False, labelled=False))
    assert search.best_score_ > 0.8


# ---------------------------------------------------------------------------
# Mahalanobis++ (normalize=True)
# ---------------------------------------------------------------------------
def test_mahalanobis_plus_plus_follows_the_readme_recipe():
    # The MPP README recipe, written with scikit-learn: normalise, class means,
    # EmpiricalCovariance(assume_centered=True) of the class-centred rows, min distance.
    rng = np.random.default_rng(21)
    X = np.vstack([rng.normal([3, 0, 1], 1.0, (15, 3)), rng.normal([0, 4, 1], 2.0, (12, 3))])
    y = np.repeat([0, 1], [15, 12])
    X_test = rng.normal(1, 3, (6, 3))
    norm = lambda Z: Z / np.linalg.norm(Z, axis=1, keepdims=True)  # noqa: E731
    Xn = norm(X)
    means = np.array([Xn[y == c].mean(axis=0) for c in (0, 1)])
    cov = EmpiricalCovariance(assume_centered=True).fit(Xn - means[y])
    expected = -np.min(np.column_stack([cov.mahalanobis(norm(X_test) - m) for m in means]),
                       axis=1)
    det = Mahalanobis(normalize=True).fit(X, y)
    np.testing.assert_allclose(det.score_samples(X_test), expected, rtol=1e-9)
    np.testing.assert_allclose(det.means_, means)
    # scale of each row is irrelevant; without normalize it is not
    np.testing.assert_allclose(det.score_samples(5 * X_test), expected, rtol=1e-9)
    assert not np.allclose(Mahalanobis().fit(X, y).score_samples(X_test), expected)


def test_mahalanobis_plus_plus_hand_values():
    # Normalised rows: (1, 0), (0, 1) twice each as one class -> mean (.5, .5),
    # centred rows (+-.5, -+.5): covariance [[.25, -.25], [-.25, .25]], singular;
    # pinv = [[1, -1], [-1, 1]]. (3, 4) -> (.6, .8), minus the mean (.1, .3):
    # (.1 - .3)^2 = 0.04.
    X = np.array([[2.0, 0.0], [0.0, 3.0], [5.0, 0.0], [0.0, 0.5]])
    det = Mahalanobis(normalize=True).fit(X)
    np.testing.assert_allclose(det.covariance_, [[0.25, -0.25], [-0.25, 0.25]])
    np.testing.assert_allclose(det.score_samples([[3.0, 4.0]]), [-0.04])
