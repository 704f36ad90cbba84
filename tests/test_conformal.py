"""Conformal calibration: p-values and thresholds by hand, the guarantees by seeded draws.

The statistical tests use fixed seeds (no flakiness) and bands at a 1e-5 tail of
the exact binomial law, wide enough for a correct method and narrow enough
that each test fails for the wrong threshold it is paired with (asserted too).
"""

import pickle

import numpy as np
import pytest
import torch
from scipy.stats import binom
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import ShuffleSplit
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch.utils.data import DataLoader, TensorDataset

from sklearn_ood import ConformalDetector, Mahalanobis
from sklearn_ood.conformal import (
    acceptance_shares, benjamini_hochberg, calibration_split, conformal_p_values,
    conformal_threshold, simes_band,
)
from sklearn_ood.model_detectors import ODIN

TAIL = 1e-5


def binomial_band(n, p):
    """Counts outside which a Bin(n, p) count falls with probability <= 2e-5."""
    return binom.ppf(TAIL, n, p), binom.isf(TAIL, n, p)


class FirstColumn(OutlierMixin, BaseEstimator):
    """Score = the first column; ``fit`` records the second column (row ids) and ``y``."""

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        self.fit_ids_, self.fit_y_ = X[:, 1].astype(int), y
        self.offset_ = 0.0
        return self

    def score_samples(self, X):
        return np.asarray(X, dtype=float)[:, 0]


def with_ids(scores):
    scores = np.asarray(scores, dtype=float)
    return np.column_stack([scores, np.arange(len(scores))])


# ----------------------------------------------------------------- by hand
def test_p_values_threshold_and_predict_by_hand():
    calibration = [1.0, 2.0, 2.0, 5.0]
    new = np.array([0.0, 1.0, 2.0, 3.0, 6.0])
    # #{S_i <= s} = 0, 1, 3, 3, 4 of n = 4; p = (1 + count) / 5
    expected = np.array([0.2, 0.4, 0.8, 0.8, 1.0])
    np.testing.assert_allclose(conformal_p_values(calibration, new), expected)
    # alpha = 0.2 rejects count 0 (k = 1): below the smallest score; 0.4 counts 0 and 1
    assert conformal_threshold(calibration, 0.2) == pytest.approx(1.0)
    assert conformal_threshold(calibration, 0.4) == pytest.approx(2.0)

    fitted = FirstColumn().fit(with_ids([0.0]))
    det = ConformalDetector(FrozenEstimator(fitted), alpha=0.4).fit(with_ids(calibration))
    X_new = with_ids(new)
    np.testing.assert_allclose(det.p_values(X_new), expected)
    assert det.offset_ == pytest.approx(2.0) and det.n_calibration_ == 4
    np.testing.assert_array_equal(det.predict(X_new), [-1, -1, 1, 1, 1])
    np.testing.assert_array_equal(det.predict(X_new), np.where(expected > 0.4, 1, -1))
    np.testing.assert_allclose(det.decision_function(X_new), new - det.offset_)
    # a calibration row scored again keeps its decision, whatever the round-off
    assert det.predict(with_ids([2.0 * (1 - 1e-15)]))[0] == 1


def test_benjamini_hochberg_by_hand():
    # sorted 0.02, 0.06, 0.07, 0.5 vs lines 0.025, 0.05, 0.075, 0.1: the largest
    # p_(r) <= r q / m is r = 3, so 0.06 (above its own line) is rejected too
    np.testing.assert_array_equal(benjamini_hochberg([0.06, 0.5, 0.02, 0.07], 0.1),
                                  [True, False, True, True])
    np.testing.assert_array_equal(benjamini_hochberg([0.03, 0.5], 0.05), [False, False])
    np.testing.assert_array_equal(benjamini_hochberg([0.01, 0.02], 0.05), [True, True])


def test_simes_band_by_hand_and_by_simulation():
    # n = 4, k = 2, delta = 0.1: b_{5-i} = 1 - sqrt(0.1 * i (i-1) / (4 * 3)), b_4 = 1
    expected = 1 - np.sqrt(0.1 * np.array([12, 6, 2]) / 12)
    np.testing.assert_allclose(simes_band(4, 0.1), [*expected, 1.0])
    # P(U_(j) > b_j for some j) <= delta for the order statistics of n uniforms
    n, delta, draws = 40, 0.2, 20_000
    uniforms = np.sort(np.random.default_rng(0).random((draws, n)), axis=1)
    crossings = np.count_nonzero((uniforms > simes_band(n, delta)).any(axis=1))
    assert crossings <= binomial_band(draws, delta)[1]


def test_calibration_conditional_p_values_by_hand():
    # n = 4, delta = 0.1: counts 0, 1, 3, 4 -> b_1, b_2, b_4 = 1, and 1 above every score
    b = simes_band(4, 0.1)
    p = conformal_p_values([1.0, 2.0, 3.0, 5.0], [0.0, 1.0, 3.0, 6.0], delta=0.1)
    np.testing.assert_allclose(p, [b[0], b[1], b[3], 1.0])


# ------------------------------------------------------- the guarantees
def test_split_threshold_coverage_is_exact():
    """P(accept a new ID row) = 1 - floor(alpha (n+1)) / (n+1) for continuous scores."""
    rng = np.random.default_rng(0)
    draws, n, alpha = 20_000, 30, 0.05
    calibration, new = rng.random((draws, n)), rng.random(draws)
    thresholds = np.array([conformal_threshold(c, alpha) for c in calibration])
    accepted = np.count_nonzero(new >= thresholds)
    low, high = binomial_band(draws, 1 - 1 / 31)  # k = floor(0.05 * 31) = 1
    assert low <= accepted <= high
    # the usual mistake, an interpolated 5th percentile, fails this test
    wrong = np.count_nonzero(new >= np.percentile(calibration, 100 * alpha, axis=1))
    assert wrong < binomial_band(draws, 1 - alpha)[0]
    # ties (integer scores) only make the threshold more conservative
    calibration, new = rng.integers(0, 6, (draws, n)), rng.integers(0, 6, draws)
    thresholds = np.array([conformal_threshold(c, alpha) for c in calibration])
    assert np.count_nonzero(new >= thresholds) >= binomial_band(draws, 1 - alpha)[0]


def test_training_threshold_undercovers_and_conformal_detector_covers():
    """Mahalanobis in 8-D on 41 rows: its own offset_ accepts ~76 % of new ID rows.

    Each draw fits on 60 rows and measures the share of 1,000 new rows accepted;
    with 19 calibration rows (k = 1) its expectation is 19/20 exactly. The band
    is 4.5 standard errors of the mean over the draws (seeded: no flakiness).
    """
    rng = np.random.default_rng(1)
    plain, conformal = [], []
    for draw in range(200):
        X, X_new = rng.normal(size=(60, 8)), rng.normal(size=(1000, 8))
        plain.append(np.mean(Mahalanobis().fit(X[:41]).predict(X_new) == 1))
        det = ConformalDetector(Mahalanobis(), calibration_size=19, random_state=draw).fit(X)
        conformal.append(np.mean(det.predict(X_new) == 1))
    for shares, within in [(conformal, True), (plain, False)]:
        error = np.mean(shares) - 0.95
        assert bool(abs(error) <= 4.5 * np.std(shares) / np.sqrt(len(shares))) is within, error


def test_conditional_threshold_holds_given_the_calibration_rows():
    """With delta, P(reject | calibration) <= alpha on >= 1 - delta of calibration draws."""
    rng = np.random.default_rng(2)
    draws, n, alpha, delta = 2000, 200, 0.1, 0.1
    calibration = rng.random((draws, n))
    # uniform ID scores: P(reject an ID row | calibration) = P(U < t) = t
    conditional = np.array([conformal_threshold(c, alpha, delta=delta) for c in calibration])
    marginal = np.array([conformal_threshold(c, alpha) for c in calibration])
    assert np.count_nonzero(conditional > alpha) <= binomial_band(draws, delta)[1]
    assert np.count_nonzero(marginal > alpha) > binomial_band(draws, delta)[1]
    assert marginal.mean() <= alpha  # the marginal guarantee, on average


def test_benjamini_hochberg_controls_the_fdr_on_a_mixture():
    """80 ID rows N(0, 1) and 20 OOD rows N(-3, 1); FDR <= q * 80 / 100."""
    rng = np.random.default_rng(3)
    draws, q, n_id, n_ood = 2000, 0.1, 80, 20
    is_id = np.r_[np.ones(n_id, bool), np.zeros(n_ood, bool)]
    fdp = {"marginal": [], "conditional": [], "p <= q": []}
    for _ in range(draws):
        calibration = rng.normal(size=200)
        batch = np.r_[rng.normal(size=n_id), rng.normal(-3, 1, size=n_ood)]
        p = conformal_p_values(calibration, batch)
        for name, rejected in [
            ("marginal", benjamini_hochberg(p, q)),
            ("conditional", benjamini_hochberg(
                conformal_p_values(calibration, batch, delta=0.1), q)),
            ("p <= q", p <= q),  # no multiplicity correction: fails
        ]:
            fdp[name].append(np.count_nonzero(rejected & is_id) / max(rejected.sum(), 1))
    bound = q * n_id / (n_id + n_ood)
    for name, values in fdp.items():
        mean, se = np.mean(values), np.std(values) / np.sqrt(draws)
        if name == "p <= q":
            assert mean - 4.5 * se > bound
        else:
            assert mean <= bound + 4.5 * se, (name, mean)


# ----------------------------------------------------------- the folds
def test_split_fits_and_calibrates_on_disjoint_rows():
    n = 30
    X = with_ids(np.random.default_rng(0).normal(size=n))
    y = np.r_[np.zeros(25), -np.ones(5)]  # the last 5 rows are OOD
    det = ConformalDetector(FirstColumn(), calibration_size=7, alpha=0.25,
                            random_state=0).fit(X, y)
    fitted, = det.detectors_
    calib = det.calibration_rows_[0]
    assert len(calib) == det.n_calibration_ == 7 and set(calib) <= set(range(25))
    np.testing.assert_array_equal(np.sort(np.r_[fitted.fit_ids_, calib]), np.arange(n))
    np.testing.assert_array_equal(fitted.fit_y_, y[fitted.fit_ids_])
    np.testing.assert_array_equal(det.calibration_scores_[0], X[calib, 0])
    assert np.all(np.diff(det.calibration_scores_[0]) >= 0)
    # k = floor(0.25 * 8) = 2: the second smallest calibration score
    assert det.offset_ == pytest.approx(np.sort(X[calib, 0])[1])
    grid = with_ids(np.linspace(-3, 3, 61))
    np.testing.assert_array_equal(det.predict(grid), np.where(det.p_values(grid) > 0.25, 1, -1))


def test_cross_conformal_folds_recomputed_independently():
    rng = np.random.default_rng(4)
    X, X_new = rng.normal(size=(40, 3)), rng.normal(size=(12, 3)) * 1.5
    alpha = 0.2
    det = ConformalDetector(Mahalanobis(), method="cross", cv=4, alpha=alpha,
                            random_state=0).fit(X)
    folds = det.calibration_rows_
    assert len(folds) == len(det.detectors_) == 4
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(40))
    fold_detectors = []
    for fold, scores in zip(folds, det.calibration_scores_):
        mine = Mahalanobis().fit(np.delete(X, fold, axis=0))
        np.testing.assert_allclose(scores, mine.score_samples(X[fold]))
        fold_detectors.append(mine)
    # p(x) = (1 + sum over folds k, rows i of fold k of [S_i <= s_k(x)]) / (n + 1)
    expected = []
    for x in X_new:
        count = 0
        for fold, mine in zip(folds, fold_detectors):
            s = mine.score_samples(x[None])[0]
            count += sum(S <= s for S in mine.score_samples(X[fold]))
        expected.append((1 + count) / 41)
    np.testing.assert_allclose(det.p_values(X_new), expected)
    np.testing.assert_allclose(det.score_samples(X_new), expected)
    assert det.offset_ == pytest.approx((8 + 1) / 41)  # k = floor(0.2 * 41) = 8
    np.testing.assert_array_equal(det.predict(X_new), np.where(np.array(expected) > alpha, 1, -1))

    # OOD rows (negative labels) go to every fold's fit and never calibrate
    y = np.r_[np.zeros(35), -np.ones(5)]
    det = ConformalDetector(FirstColumn(), method="cross", cv=5, alpha=0.2,
                            random_state=0).fit(with_ids(X[:, 0]), y)
    for fitted, fold in zip(det.detectors_, det.calibration_rows_):
        assert set(range(35, 40)) <= set(fitted.fit_ids_) and not set(fold) & set(range(35, 40))
        np.testing.assert_array_equal(np.sort(np.r_[fitted.fit_ids_, fold]), np.arange(40))


# -------------------------------------------------------------- errors
def test_bad_input_raises_and_leaves_the_estimator_unchanged():
    X = np.random.default_rng(5).normal(size=(100, 3))
    det = ConformalDetector(Mahalanobis(), calibration_size=20, random_state=0).fit(X)
    before = pickle.dumps(det)

    for alpha in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="'alpha' parameter"):
            clone(det).set_params(alpha=alpha).fit(X)
    with pytest.raises(ValueError, match="at least 99 calibration rows"):
        det.set_params(alpha=0.01).fit(X)
    with pytest.raises(ValueError, match="at least 90 calibration rows"):
        det.set_params(alpha=0.05, delta=0.1).fit(X)  # 2 ln(0.1) / ln(0.95) -> 90
    with pytest.raises(ValueError, match="method='cross'"):
        det.set_params(delta=0.1, method="cross").fit(X)
    with pytest.raises(ValueError, match="leaves no row"):
        det.set_params(delta=None, method="split", calibration_size=100).fit(X)
    with pytest.raises(ValueError, match="1 sample"):
        det.set_params(calibration_size=0.2).fit(X[:1])
    with pytest.raises(ValueError, match="partition"):
        det.set_params(method="cross", cv=ShuffleSplit(3, random_state=0)).fit(X)
    with pytest.raises(TypeError, match="FrozenEstimator"):
        det.set_params(method="split").fit(iter([X]))
    loader = DataLoader(TensorDataset(torch.zeros(10, 1, 2, 2)), batch_size=4, shuffle=True)
    with pytest.raises(TypeError, match="shuffle=False"):
        det.fit(loader)
    det.set_params(cv=5, calibration_size=20)
    assert pickle.dumps(det) == before

    with pytest.raises(ValueError, match="NaN"):
        det.p_values(np.full((2, 3), np.nan))
    bad = with_ids(np.arange(30.0))
    bad[7, 0] = np.nan
    frozen = ConformalDetector(FrozenEstimator(FirstColumn().fit(bad)))
    with pytest.raises(ValueError, match="non-finite score.*row 7 of X"):
        frozen.fit(bad)
    assert not hasattr(frozen, "offset_")


# ------------------------------------------------------ model detectors
def test_model_detector_calibrates_from_arrays_datasets_and_loaders():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3)).double()
    images = np.random.default_rng(6).normal(size=(40, 2, 2, 2))
    tensor = torch.from_numpy(images)
    inputs = [images, tensor, TensorDataset(tensor),
              DataLoader(TensorDataset(tensor), batch_size=7)]
    fitted = [ConformalDetector(ODIN(net, batch_size=4), calibration_size=15, alpha=0.2,
                                random_state=0).fit(X) for X in inputs]
    for det in fitted[1:]:
        np.testing.assert_array_equal(det.calibration_rows_[0], fitted[0].calibration_rows_[0])
        np.testing.assert_allclose(det.calibration_scores_[0], fitted[0].calibration_scores_[0])
        assert det.n_features_in_ == 2
    np.testing.assert_allclose(fitted[3].p_values(images), fitted[0].p_values(images))

    # a detector fitted elsewhere, calibrated on a DataLoader or a one-shot iterator
    odin = ODIN(net, batch_size=4).fit(images[:25])
    calib = images[25:]
    by_loader = ConformalDetector(FrozenEstimator(odin), alpha=0.2).fit(
        DataLoader(TensorDataset(torch.from_numpy(calib)), batch_size=4))
    by_batches = ConformalDetector(FrozenEstimator(odin), alpha=0.2).fit(
        iter([calib[:6], calib[6:]]))
    np.testing.assert_allclose(by_loader.calibration_scores_[0],
                               np.sort(odin.score_samples(calib)))
    np.testing.assert_allclose(by_batches.calibration_scores_[0],
                               by_loader.calibration_scores_[0])

    cross = ConformalDetector(ODIN(net, batch_size=4), method="cross", cv=3, alpha=0.2,
                              random_state=0).fit(inputs[3])
    restored = pickle.loads(pickle.dumps(cross))
    np.testing.assert_allclose(restored.p_values(inputs[3]), cross.p_values(images))
    with pytest.raises(TypeError, match="one-shot"):
        cross.p_values(iter([images]))


# -------------------------------------------------------- benchmark help
def test_acceptance_shares_by_hand():
    rng = np.random.default_rng(7)
    y = np.repeat([0, 1], 50)
    scores = {"ID test": rng.normal(size=100), "OOD": np.array([-5.0, 0.0, 5.0])}
    result = acceptance_shares(scores, offset=0.0, alpha=0.1, calibration_size=20, y=y,
                               random_state=0)
    calib, rest = calibration_split(y, 20, random_state=0)
    np.testing.assert_array_equal(result.calibration_rows, calib)
    assert np.bincount(y[calib]).tolist() == [10, 10]
    threshold = np.sort(scores["ID test"][calib])[1]  # k = floor(0.1 * 21) = 2
    assert result.conformal_offset == pytest.approx(threshold)
    assert result.plain == {"ID test": np.mean(scores["ID test"][rest] >= 0.0), "OOD": 2 / 3}
    assert result.conformal["ID test"] == np.mean(scores["ID test"][rest] >= threshold)


@parametrize_with_checks([
    ConformalDetector(Mahalanobis(), alpha=0.3, calibration_size=0.5, random_state=0),
    ConformalDetector(Mahalanobis(), method="cross", cv=3, alpha=0.3, random_state=0),
])
def test_sklearn_compatible(estimator, check):
    # alpha=0.3: the checks fit on 10 - 20 rows, too few calibration rows for 0.05
    check(estimator)


def test_fitted_attributes_are_documented():
    pd = pytest.importorskip("pandas")
    from test_docstrings import assert_documented

    X = pd.DataFrame(np.random.default_rng(8).normal(size=(60, 2)), columns=["a", "b"])
    det = ConformalDetector(Mahalanobis(), calibration_size=30, random_state=0).fit(X)
    assert list(det.feature_names_in_) == ["a", "b"]
    assert_documented(det)
