"""Density and distance detectors: Mahalanobis, KNN, ViM, GaussianDensity (+ NAN)."""

import pickle

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ood.detectors.density import (
    KNN,
    GaussianDensity,
    Mahalanobis,
    ViM,
    cholesky_with_jitter,
    kth_neighbor_sqdist,
    vim_principal_dim,
)
from sklearn_ood.metrics import auroc, auroc_scorer

TINY = np.finfo(np.float64).tiny
LADDER = [0, np.finfo(np.float64).tiny] + [10**e for e in range(-308, 0)]


# ---------------------------------------------------------------------------
# scikit-learn compatibility
# ---------------------------------------------------------------------------
def _vim(n_features):
    rng = np.random.default_rng(n_features)
    return ViM(head=(rng.normal(size=(4, n_features)), rng.normal(size=4)))


# The feature count each check feeds to ``fit`` (scikit-learn 1.9). A ViM head
# fixes D, so each check is run by the instance whose head matches its data
# and is expected to fail, with the head-mismatch ValueError, on the others.
VIM_CHECK_FEATURES = {
    1: ["check_fit2d_1feature"],
    2: ["check_classifier_data_not_an_array", "check_estimators_fit_returns_self",
        "check_estimators_overwrite_params", "check_fit_check_is_fitted",
        "check_fit_idempotent", "check_n_features_in", "check_outliers_fit_predict",
        "check_outliers_train", "check_readonly_memmap_input"],
    3: ["check_dict_unchanged", "check_dont_overwrite_parameters",
        "check_estimators_nan_inf", "check_estimators_pickle",
        "check_f_contiguous_array_estimator", "check_fit2d_predict1d",
        "check_fit_score_takes_y", "check_methods_sample_order_invariance",
        "check_methods_subset_invariance", "check_pipeline_consistency"],
    4: ["check_n_features_in_after_fitting", "check_positive_only_tag_during_fit"],
    5: ["check_estimators_dtypes"],
    10: ["check_dtype_object", "check_fit2d_1sample"],
}
KNN_TRAIN_PREDICT = (
    "by design offset_ uses leave-one-out training scores while score_samples on the "
    "training rows counts each row as its own neighbour, so predict(X_train) flags "
    "fewer than contamination of the rows"
)
GDA_NO_Y = "GaussianDensity needs class labels and this check calls fit(X) without y"


def _expected_failed(estimator):
    if isinstance(estimator, ViM):
        n_features = np.shape(estimator.head[0])[1]
        return {
            check: f"the head accepts {n_features} features but this check uses {d}"
            for d, checks in VIM_CHECK_FEATURES.items() if d != n_features
            for check in checks
        }
    if isinstance(estimator, GaussianDensity):
        return {name: GDA_NO_Y for name in ("check_fit_score_takes_y",
                                            "check_outliers_fit_predict",
                                            "check_outliers_train")}
    failed = {}
    if isinstance(estimator, KNN):
        failed.update(check_outliers_fit_predict=KNN_TRAIN_PREDICT,
                      check_outliers_train=KNN_TRAIN_PREDICT)
    return failed


@parametrize_with_checks(
    [Mahalanobis(), Mahalanobis(nan_rescale=True), KNN(n_neighbors=3),
     KNN(n_neighbors=3, nan_rescale=True), GaussianDensity(),
     GaussianDensity(normalize=True)],
    expected_failed_checks=_expected_failed,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _vim_check_params():
    # Every check runs on the ViM instance whose head fits the check's data; the
    # (estimator, check) pairs expected to fail only because of the head size
    # are dropped rather than run as xfail (nothing to learn from them, and
    # pytest's xfail tracebacks through estimator_checks.py are slow).
    # test_vim_errors covers the head-mismatch message.
    marked = parametrize_with_checks([_vim(d) for d in VIM_CHECK_FEATURES],
                                     expected_failed_checks=_expected_failed)
    params, seen = [], set()
    for p in marked.args[1]:
        estimator, check = getattr(p, "values", p)  # a ParameterSet when marked
        key = (_check_name(check), repr(sorted(getattr(check, "keywords", {}).items())))
        if not getattr(p, "marks", ()) and key not in seen:  # head-free checks: once
            seen.add(key)
            params.append((estimator, check))
    covered = {_check_name(check) for _, check in params}
    assert covered >= {c for checks in VIM_CHECK_FEATURES.values() for c in checks}
    return params


def _check_name(check):
    check = getattr(check, "func", check)
    return getattr(check, "__name__", "")


VIM_PARAMS = _vim_check_params()


@pytest.mark.parametrize("estimator, check", VIM_PARAMS, ids=[
    f"ViM(D={est.head[0].shape[1]})-{_check_name(check)}"
    + "".join(f"-{k}={v}" for k, v in getattr(check, "keywords", {}).items())
    for est, check in VIM_PARAMS])
def test_vim_sklearn_compatible(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------
# Mahalanobis
# ---------------------------------------------------------------------------
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


def test_affine_invariance_of_the_gaussian_scores():
    # Mahalanobis distances are invariant under x -> x A + c (A invertible); the
    # GDA log-density shifts by -log|det A|.
    rng = np.random.default_rng(13)
    X, y = rng.normal(size=(20, 3)), np.repeat([0, 1], 10)
    X_test = rng.normal(size=(5, 3))
    A, c = rng.normal(size=(3, 3)) + 2 * np.eye(3), rng.normal(size=3)
    np.testing.assert_allclose(
        Mahalanobis().fit(X @ A + c, y).score_samples(X_test @ A + c),
        Mahalanobis().fit(X, y).score_samples(X_test), rtol=1e-8)
    np.testing.assert_allclose(
        GaussianDensity().fit(X @ A + c, y).score_samples(X_test @ A + c),
        GaussianDensity().fit(X, y).score_samples(X_test) - np.log(abs(np.linalg.det(A))),
        rtol=1e-8)


def test_mahalanobis_singular_covariance_uses_pseudo_inverse():
    # second feature constant: pinv ignores it, distance = (x1 - mean)^2 / var
    X = np.array([[0.0, 1.0], [2.0, 1.0]])
    det = Mahalanobis().fit(X)
    np.testing.assert_allclose(det.score_samples([[3.0, 7.0]]), [-4.0])


# ---------------------------------------------------------------------------
# KNN
# ---------------------------------------------------------------------------
def _loop_knn(bank, X, k, skip_self=False):
    """-(k-th smallest squared distance) between normalised rows, by sorting."""
    out = []
    for i, x in enumerate(X):
        xn = x / np.sqrt(sum(v * v for v in x))
        dists = []
        for j, b in enumerate(bank):
            if skip_self and i == j:
                continue
            bn = b / np.sqrt(sum(v * v for v in b))
            dists.append(sum((xn - bn) ** 2))
        out.append(-sorted(dists)[k - 1])
    return np.array(out)


def test_knn_kth_neighbour_matches_brute_force():
    rng = np.random.default_rng(0)
    bank, X = rng.normal(size=(15, 3)), rng.normal(size=(6, 3))
    det = KNN(n_neighbors=4).fit(bank)
    expected = _loop_knn(bank, X, 4)
    np.testing.assert_allclose(det.score_samples(X), expected, atol=1e-12)
    np.testing.assert_allclose(det.bank_, bank / np.linalg.norm(bank, axis=1)[:, None])
    # k-th distance, not the mean of the k nearest
    mean_of_k = np.mean([_loop_knn(bank, X, j) for j in range(1, 5)], axis=0)
    assert not np.allclose(expected, mean_of_k)
    # scale invariance of the normalised features
    np.testing.assert_allclose(det.score_samples(3 * X), expected, atol=1e-12)


def test_knn_hand_values_and_zero_rows():
    bank = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    det = KNN(n_neighbors=2).fit(bank)
    # (1, 1)/sqrt2: squared distances to e1, e2, -e1 = 2 - sqrt2, 2 - sqrt2, 2 + sqrt2
    # a zero row stays zero: squared distance 1 to every unit bank row
    np.testing.assert_allclose(det.score_samples([[1.0, 1.0], [0.0, 0.0]]),
                               [-(2 - np.sqrt(2)), -1.0])


def test_knn_offset_excludes_each_training_rows_own_match():
    rng = np.random.default_rng(1)
    bank = rng.normal(size=(20, 3))
    det = KNN(n_neighbors=2, contamination=0.2).fit(bank)
    loo = _loop_knn(bank, bank, 2, skip_self=True)
    assert det.offset_ == pytest.approx(np.percentile(loo, 20))
    with_self = _loop_knn(bank, bank, 2)  # what score_samples(bank) gives
    np.testing.assert_allclose(det.score_samples(bank), with_self, atol=1e-12)
    assert det.offset_ < np.percentile(with_self, 20)
    # an exact duplicate of a training row is still a neighbour at distance 0
    dup = np.vstack([bank, bank[:1]])
    np.testing.assert_allclose(kth_neighbor_sqdist(dup, dup, 1, exclude_self=True)[[0, -1]],
                               [0.0, 0.0], atol=1e-12)


def test_kth_neighbor_sqdist_matches_loops_and_errors():
    rng = np.random.default_rng(2)
    bank, X = rng.normal(size=(9, 2)), rng.normal(size=(7, 2))
    full = kth_neighbor_sqdist(X, bank, 3)
    np.testing.assert_allclose(full, [sorted(((x - bank) ** 2).sum(1))[2] for x in X])
    # Leave-one-out: each bank row against the other eight.
    loo = [sorted(np.delete(((b - bank) ** 2).sum(1), i))[7] for i, b in enumerate(bank)]
    np.testing.assert_allclose(kth_neighbor_sqdist(bank, bank, 8, exclude_self=True), loo)
    with pytest.raises(ValueError, match="k=10 neighbours requested but the bank holds 9"):
        kth_neighbor_sqdist(X, bank, 10)
    with pytest.raises(ValueError, match="choose 1 <= k <= 8"):
        kth_neighbor_sqdist(bank, bank, 9, exclude_self=True)


def test_knn_too_many_neighbours_is_a_clear_error():
    with pytest.raises(ValueError, match=r"n_neighbors=5 needs at least 6 .*n_samples=5"):
        KNN(n_neighbors=5).fit(np.eye(5))


def test_knn_keeps_float32_bank():
    X = np.random.default_rng(3).normal(size=(10, 4)).astype(np.float32)
    det = KNN(n_neighbors=2).fit(X)
    assert det.bank_.dtype == np.float32
    scores = det.score_samples(X.astype(np.float64))
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, _loop_knn(X.astype(float), X.astype(float), 2),
                               atol=1e-5)


# ---------------------------------------------------------------------------
# NAN rescaling
# ---------------------------------------------------------------------------
def _nan_by_hand(a):
    flat = a.reshape(len(a), -1)
    return np.array([sum(abs(v) for v in row) / sum(1 for v in row if v > 0)
                     for row in flat])


def test_knn_nan_rescale_2d():
    rng = np.random.default_rng(4)
    bank = np.maximum(rng.normal(size=(12, 5)), 0) + 0.01
    X = np.maximum(rng.normal(size=(5, 5)), 0)
    X[0, :] = [0.0, 2.0, 0.0, 4.0, 0.0]  # NAN = 6 / 2 = 3
    det = KNN(n_neighbors=3, nan_rescale=True).fit(bank)
    d = np.sqrt(-_loop_knn(bank, X, 3))
    np.testing.assert_allclose(det.score_samples(X), -d / _nan_by_hand(X), rtol=1e-10)
    assert det.score_samples(X[:1])[0] == pytest.approx(-d[0] / 3.0)
    # leave-one-out training scores set the offset here too
    loo = np.sqrt(-_loop_knn(bank, bank, 3, skip_self=True)) / _nan_by_hand(bank)
    assert det.offset_ == pytest.approx(np.percentile(-loo, 5))


def test_nan_rescale_4d_uses_pooled_distance_and_flattened_norm():
    rng = np.random.default_rng(5)
    maps = np.maximum(rng.normal(size=(14, 3, 2, 2)), 0)
    test = np.maximum(rng.normal(size=(4, 3, 2, 2)), 0)
    test[1] = 0.0  # no active unit: NAN = 0 -> huge negative but finite
    pooled, test_pooled = maps.mean(axis=(2, 3)), test.mean(axis=(2, 3))
    knn = KNN(n_neighbors=2, nan_rescale=True).fit(maps)
    got = knn.score_samples(test)
    d = np.sqrt(-_loop_knn(pooled, test_pooled[[0, 2, 3]], 2))
    np.testing.assert_allclose(got[[0, 2, 3]], -d / _nan_by_hand(test[[0, 2, 3]]),
                               rtol=1e-10)
    assert np.isfinite(got[1]) and got[1] < -1e300
    # Mahalanobis: min squared distance (pooled, single class) / NAN(flattened map)
    maha = Mahalanobis(nan_rescale=True).fit(maps)
    d2 = -_loop_mahalanobis(pooled, np.zeros(14, int), test_pooled[[0, 2, 3]])
    np.testing.assert_allclose(maha.score_samples(test)[[0, 2, 3]],
                               -d2 / _nan_by_hand(test[[0, 2, 3]]), rtol=1e-8)
    assert np.isfinite(maha.score_samples(test)[1])
    # without nan_rescale a 4-D map is average-pooled
    for det in (KNN(n_neighbors=2), Mahalanobis()):
        np.testing.assert_allclose(det.fit(maps).score_samples(test[[0, 2, 3]]),
                                   det.fit(pooled).score_samples(test_pooled[[0, 2, 3]]))
    with pytest.raises(ValueError, match="fitted on 4-D"):
        knn.score_samples(test_pooled)


def test_mahalanobis_nan_rescale_2d_hand_values():
    X = np.array([[1.0, 0.0], [3.0, 0.0], [1.0, 2.0], [3.0, 2.0]])  # cov = I, mean (2, 1)
    det = Mahalanobis(nan_rescale=True).fit(X)
    # (4, 1): d = 4 + 0 = 4; NAN = 5 / 2 -> -1.6.  (2, 0): d = 1; NAN = 2 / 1 -> -0.5
    np.testing.assert_allclose(det.score_samples([[4.0, 1.0], [2.0, 0.0]]), [-1.6, -0.5])


# ---------------------------------------------------------------------------
# ViM
# ---------------------------------------------------------------------------
def _vim_reference(W, b, X_train, X, n_comp):
    """Step by step, through lstsq and an SVD instead of pinv and eigh."""
    u = -np.linalg.lstsq(W, b, rcond=None)[0]  # minimum-norm solution of W u = -b
    _, _, Vt = np.linalg.svd((X_train - u) / np.sqrt(len(X_train)))
    P = Vt[:n_comp]  # principal directions (rows), singular values descending

    def residual(H):
        C = H - u
        return np.sqrt(((C - (C @ P.T) @ P) ** 2).sum(axis=1))

    def logits(H):
        return np.array([[sum(W[k, j] * h[j] for j in range(len(h))) + b[k]
                          for k in range(len(b))] for h in H])

    alpha = logits(X_train).max(axis=1).mean() / residual(X_train).mean()
    energy = np.log(np.exp(logits(X)).sum(axis=1))
    return -alpha * residual(X) + energy, alpha


def test_vim_matches_step_by_step_reference():
    rng = np.random.default_rng(6)
    W, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    X_train = rng.normal(size=(25, 6)) * np.array([3, 2, 1.5, 1, 0.5, 0.2]) + 1.0
    X = rng.normal(size=(5, 6))
    det = ViM(head=(W, b)).fit(X_train)
    assert det.n_components_ == 3  # D // 2 for D = 6
    expected, alpha = _vim_reference(W, b, X_train, X, 3)
    assert det.alpha_ == pytest.approx(alpha, rel=1e-10)
    np.testing.assert_allclose(det.score_samples(X), expected, rtol=1e-10)
    det2 = ViM(head=(W, b), n_components=4).fit(X_train)
    np.testing.assert_allclose(det2.score_samples(X),
                               _vim_reference(W, b, X_train, X, 4)[0], rtol=1e-10)
    # the same with a torch head
    lin = torch.nn.Linear(6, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W))
        lin.bias.copy_(torch.as_tensor(b))
    np.testing.assert_allclose(ViM(head=lin).fit(X_train).score_samples(X), expected,
                               rtol=1e-10)


def test_vim_principal_dim_rule():
    assert [vim_principal_dim(d) for d in (4096, 2048, 2047, 768, 767, 6, 1)] == [
        1000, 1000, 512, 512, 383, 3, 0]


def test_vim_errors():
    X = np.random.default_rng(7).normal(size=(10, 4))
    head = (np.ones((2, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="n_components=4 and n_features=4"):
        ViM(head=head, n_components=4).fit(X)
    with pytest.raises(ValueError, match="needs the final linear layer"):
        ViM().fit(X)
    with pytest.raises(ValueError, match="head expects 3 features"):
        ViM(head=(np.ones((2, 3)), np.zeros(2))).fit(X)
    with pytest.raises(ValueError, match="no residual.*n_samples=2"):
        ViM(head=head, n_components=2).fit(X[:2])


# ---------------------------------------------------------------------------
# GaussianDensity
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Shared behaviour: errors, pipelines, grid search
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: Mahalanobis(), lambda: KNN(n_neighbors=2),
    lambda: ViM(head=(np.eye(3)[:2], np.zeros(2))), lambda: GaussianDensity(),
])
def test_errors_leave_the_fitted_estimator_unchanged(make):
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(12, 3)), np.repeat([0, 1], 6)
    det = make().fit(X, y)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="NaN"):
        det.fit(np.where(np.eye(12, 3) > 0, np.nan, X), y)
    with pytest.raises(ValueError, match="features"):
        det.score_samples(np.ones((2, 4)))
    if isinstance(det, ViM):
        with pytest.raises(ValueError, match="head expects 3 features"):
            det.fit(np.ones((12, 4)), y)
    with pytest.raises(ValueError, match="contamination"):
        det.set_params(contamination=0.9).fit(X, y)
    det.set_params(contamination=0.05)
    if isinstance(det, KNN):
        with pytest.raises(ValueError, match="n_neighbors=20"):
            det.set_params(n_neighbors=20).fit(X, y)
        det.set_params(n_neighbors=2)
    if isinstance(det, GaussianDensity):
        with pytest.raises(ValueError, match="requires y"):
            det.fit(X)
    with pytest.raises(ValueError, match="y must be 1-D"):
        det.fit(X, y[:5])
    assert pickle.dumps(det) == state


def test_grid_search_tunes_knn_in_a_pipeline():
    rng = np.random.default_rng(12)
    centers = rng.normal(0, 1, (3, 6)) * 4
    ids = rng.integers(0, 3, 90)
    X_id = centers[ids] + rng.normal(size=(90, 6))
    X_ood = rng.normal(0, 1, (45, 6)) * 4
    X, y = np.vstack([X_id, X_ood]), np.r_[ids, -np.ones(45, int)]
    pipe = Pipeline([("shift", FunctionTransformer(lambda Z: Z + 0.5)), ("knn", KNN())])
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, {"knn__n_neighbors": [1, 5, 40]}, scoring=auroc_scorer,
                          cv=cv, error_score="raise").fit(X, y)
    assert search.best_params_["knn__n_neighbors"] in (1, 5, 40)
    assert search.best_score_ > 0.8
    assert auroc(y, search.score_samples(X)) > 0.8
    # labelled detectors get the ID class labels inside the search
    for det, grid in [(GaussianDensity(), {"normalize": [False, True]}),
                      (Mahalanobis(), {"nan_rescale": [False, True]})]:
        s = GridSearchCV(det, grid, scoring=auroc_scorer, cv=cv, error_score="raise")
        assert s.fit(X, y).best_score_ > 0.8


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
