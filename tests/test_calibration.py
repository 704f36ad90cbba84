"""Calibrating statistics on held-out rows: ``fit(X, y, X_cal=..., y_cal=...)`` and
``calibration_size``, for every detector that declares them, and by hand per detector."""

import pickle

import numpy as np
import pytest
from scipy.special import log_softmax, softmax
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from sklearn_ood import Energy, KLMatching, MaxSoftmax, MultiBlockMahalanobis
from sklearn_ood._base import BaseDetector
from sklearn_ood._calibration import CALIBRATION_CONSTRAINTS
from sklearn_ood.discovery import all_detectors, get_detector_tags

from _helpers import assert_unchanged_after_error
from _instances import HEAD, X2, X4, Y, make_case

#: Parameters that give a class's calibrating statistics something to fit.
CALIBRATING_PARAMS = {"MaxSoftmax": {"temperature": "fit"}}

CALIBRATED = [cls for _, cls in all_detectors() if get_detector_tags(cls).calibrated]


def _case(cls):
    case = make_case(cls, X2, X4, Y, HEAD)
    case.params.update(CALIBRATING_PARAMS.get(cls.__name__, {}))
    return case


def _assert_equal(a, b, name):
    if isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), name
        for u, v in zip(a, b):
            _assert_equal(u, v, name)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=name)
    else:
        assert a == b, name


def _fitted(det):
    return {k: v for k, v in vars(det).items() if k.endswith("_") and not k.startswith("_")}


def test_calibrated_detectors_take_the_calibration_parameters():
    assert {cls.__name__ for cls in CALIBRATED} >= {"MaxSoftmax", "KLMatching",
                                                     "MultiBlockMahalanobis"}
    for cls in CALIBRATED:
        params = cls().get_params()
        assert {"calibration_size", "random_state"} <= set(params), cls.__name__
        for name, constraint in CALIBRATION_CONSTRAINTS.items():
            assert cls._parameter_constraints[name] == constraint, cls.__name__
        assert cls.fit is BaseDetector.fit, cls.__name__  # the one mechanism
        assert set(get_detector_tags(cls).calibrated) <= set(_fitted(_case(cls).fit()))


@pytest.mark.parametrize("cls", CALIBRATED, ids=lambda c: c.__name__)
def test_modelling_statistics_never_see_the_calibration_rows(cls):
    case = _case(cls)
    calibrated = set(get_detector_tags(cls).calibrated)
    X, y = case.X[:24], case.labels(24)
    y_cal = None if y is None else np.where(Y[24:] >= 0, Y[24:], 0)  # ID rows only
    a = case.make().fit(X, y, X_cal=case.X[24:], y_cal=y_cal)
    b = case.make().fit(X, y, X_cal=case.X[24:] * 3.0 + 0.5, y_cal=y_cal)
    fa, fb = _fitted(a), _fitted(b)
    assert fa.keys() == fb.keys()
    for name in fa.keys() - calibrated - {"offset_"}:
        _assert_equal(fa[name], fb[name], name)
    assert any(not np.array_equal(np.ravel(np.asarray(fa[n], dtype=object)),
                                  np.ravel(np.asarray(fb[n], dtype=object)))
               for n in calibrated), "the calibrating statistics ignore X_cal"
    # offset_ from the rows that model, scored with the calibrated statistics
    s = a.score_samples(X if y is None else X[y >= 0])
    if cls.__name__ != "Gram":  # Gram scores its bound rows leave-one-out
        assert a.offset_ == pytest.approx(np.percentile(s, 100 * a.contamination))


@pytest.mark.parametrize("cls", CALIBRATED, ids=lambda c: c.__name__)
def test_calibration_size_is_a_seeded_stratified_split(cls):
    case = _case(cls)
    y = case.labels(len(case.X))
    split = case.make(calibration_size=0.25, random_state=3).fit(case.X, y)
    # the ID rows, split as train_test_split draws it: stratified by class when labelled
    is_id = np.ones(len(case.X), bool) if y is None else y >= 0
    X_id, y_id = case.X[is_id], None if y is None else y[is_id]
    fit_rows, cal_rows = train_test_split(np.arange(len(X_id)), test_size=0.25, stratify=y_id,
                                          random_state=3)
    fit_rows, cal_rows = np.sort(fit_rows), np.sort(cal_rows)
    X_fit = np.concatenate([X_id[fit_rows], case.X[~is_id]])  # OOD rows still in X
    y_fit = None if y is None else np.r_[y_id[fit_rows], y[~is_id]]
    held = case.make().fit(X_fit, y_fit, X_cal=X_id[cal_rows],
                           y_cal=None if y is None else y_id[cal_rows])
    for name, value in _fitted(held).items():
        _assert_equal(_fitted(split)[name], value, name)
    # calibration_size=None: the calibrating statistics on the rows of X themselves
    same = case.make(calibration_size=None).fit(case.X, y, X_cal=X_id, y_cal=y_id)
    for name, value in _fitted(same).items():
        _assert_equal(_fitted(case.make(calibration_size=None).fit(case.X, y))[name],
                      value, name)


# --------------------------------------------------------------------- by hand
def _split_logits(seed=0):
    """Overlapping 3-class logits: a finite temperature, and rows that differ."""
    rng = np.random.default_rng(seed)
    y = np.arange(60) % 3
    Z = rng.normal(size=(60, 3)) + 2.0 * np.eye(3)[y]
    return Z, y


def test_temperature_is_the_nll_minimiser_of_exactly_the_held_out_rows():
    Z, y = _split_logits()
    det = MaxSoftmax(temperature="fit", calibration_size=15, random_state=0).fit(Z, y)
    _, cal = train_test_split(np.arange(60), test_size=15, stratify=y, random_state=0)
    cal = np.sort(cal)  # the split's rows, in their order in X
    # independent: the NLL of the held-out rows on a fine grid of T, then golden refinement
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 4001))
    nll = [-np.mean(log_softmax(Z[cal] / t, axis=1)[np.arange(15), y[cal]]) for t in grid]
    i = int(np.argmin(nll))
    assert 0 < i < grid.size - 1  # an interior optimum
    lo, hi = grid[i - 1], grid[i + 1]
    for _ in range(100):
        m1, m2 = lo + (hi - lo) * 0.382, lo + (hi - lo) * 0.618
        f1, f2 = (-np.mean(log_softmax(Z[cal] / t, axis=1)[np.arange(15), y[cal]])
                  for t in (m1, m2))
        lo, hi = (lo, m2) if f1 < f2 else (m1, hi)
    assert det.temperature_ == pytest.approx((lo + hi) / 2, rel=1e-6)
    # not the minimiser over every row, nor over the other rows
    assert det.temperature_ != pytest.approx(MaxSoftmax(temperature="fit").fit(Z, y)
                                             .temperature_, rel=1e-3)
    # the same T from the rows passed as X_cal; the threshold from the other rows
    passed = MaxSoftmax(temperature="fit").fit(np.delete(Z, cal, 0), X_cal=Z[cal],
                                               y_cal=y[cal])
    assert passed.temperature_ == det.temperature_
    rest = np.setdiff1d(np.arange(60), cal)
    s = softmax(Z[rest] / det.temperature_, axis=1).max(axis=1)
    assert det.offset_ == pytest.approx(np.percentile(s, 5), rel=1e-12)


def test_standardisation_is_the_mean_and_std_of_the_calibration_rows_scores():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 20)
    X = rng.normal(size=(40, 3)) + 2.0 * y[:, None]
    X_cal = rng.normal(size=(9, 3)) * 1.5 + 1.0
    det = MultiBlockMahalanobis([1, 2], combiner="mean").fit(X, y, X_cal=X_cal)
    raw = []  # by hand: each block's class means and pooled 1/N covariance on X only
    for cols in ([0], [1, 2]):
        H, C = X[:, cols], X_cal[:, cols]
        mu = [H[y == k].mean(axis=0) for k in (0, 1)]
        S = sum(np.outer(h - mu[k], h - mu[k]) for h, k in zip(H, y)) / len(H)
        P = np.linalg.pinv(S)
        raw.append([-min((c - m) @ P @ (c - m) for m in mu) for c in C])
    raw = np.array(raw).T
    np.testing.assert_allclose(det.score_mean_, raw.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(det.score_scale_, raw.std(axis=0), rtol=1e-10)
    np.testing.assert_allclose(det.means_[1], [X[y == k][:, 1:].mean(axis=0) for k in (0, 1)])


def test_logistic_combiner_fits_the_calibration_rows_against_the_ood_rows():
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(size=(30, 4)), rng.normal(size=(10, 4)) * 4])
    y = np.r_[np.zeros(30), -np.ones(10)]
    X_cal = rng.normal(size=(12, 4)) + 0.3
    det = MultiBlockMahalanobis([2, 2]).fit(X, y, X_cal=X_cal)
    ref = MultiBlockMahalanobis([2, 2]).fit(np.vstack([X[:30], X_cal, X[30:]]),
                                            np.r_[np.zeros(42), -np.ones(10)])
    assert det.n_ood_fit_ == 10
    # Gaussians from X's ID rows only: not those of X and X_cal together
    np.testing.assert_allclose(det.means_[0], X[:30, :2].mean(axis=0, keepdims=True))
    assert not np.allclose(det.means_[0], ref.means_[0])
    from sklearn.linear_model import LogisticRegression
    Z_id = (det._raw_block_scores(X_cal) - det.score_mean_) / det.score_scale_
    Z_ood = (det._raw_block_scores(X[30:]) - det.score_mean_) / det.score_scale_
    lr = LogisticRegression(class_weight="balanced").fit(
        np.vstack([Z_id, Z_ood]), np.r_[np.ones(12), np.zeros(10)])
    np.testing.assert_allclose(det.weights_, lr.coef_[0], rtol=1e-6)
    # OOD rows of X_cal (negative y_cal) join the combiner's OOD side, never its ID side
    more = MultiBlockMahalanobis([2, 2]).fit(X[:30], np.zeros(30), X_cal=np.vstack([X_cal, X[30:]]),
                                             y_cal=np.r_[np.zeros(12), -np.ones(10)])
    assert more.n_ood_fit_ == 10
    np.testing.assert_allclose(more.weights_, det.weights_, rtol=1e-12)


def test_kl_templates_are_the_calibration_rows_mean_softmax_per_predicted_class():
    Z, _ = _split_logits(3)
    det = KLMatching().fit(Z[:40], X_cal=Z[40:])
    p = softmax(Z[40:], axis=1)
    pred = p.argmax(axis=1)
    expected = [p[pred == k].mean(axis=0) for k in range(3) if (pred == k).any()]
    np.testing.assert_allclose(det.templates_, expected, rtol=1e-12)
    s = det.score_samples(Z[:40])
    assert det.offset_ == pytest.approx(np.percentile(s, 5))


# --------------------------------------------------------------------- bad input
@pytest.mark.parametrize("params, y, match", [
    (dict(calibration_size=60), np.arange(60) % 3, "leaving none for the modelling"),
    (dict(calibration_size=0.99), None, "leaving none for the modelling"),
    (dict(calibration_size=2), np.arange(60) % 3, "at least one row of each of the 3 classes"),
    (dict(calibration_size=58), np.arange(60) % 3, "between 3 and 57 calibration rows"),
    (dict(calibration_size=5), np.r_[np.arange(59) % 3, 3], "class 3 has 1 in-distribution"),
    (dict(calibration_size=5), np.r_[np.zeros(54, int), [1, 1, 2, 2, 3, 3]],
     "without a row to"),
])
def test_a_split_too_small_is_a_clear_error_and_changes_nothing(params, y, match):
    Z, y_ok = _split_logits()
    det = MaxSoftmax(temperature="fit", random_state=0).fit(Z, y_ok)
    det.set_params(**params)
    assert_unchanged_after_error(det, lambda: det.fit(Z, y), ValueError, match)


def test_calibration_rows_bad_input():
    Z, y = _split_logits()
    det = MaxSoftmax(temperature="fit").fit(Z, y)
    for call, match in [
        (lambda: det.fit(Z, y, y_cal=y), "y_cal without X_cal"),
        (lambda: det.fit(Z, y, X_cal=Z[:, :2], y_cal=y), "features"),
        (lambda: det.fit(Z, y, X_cal=Z), "calibration rows have no labels"),
        (lambda: det.fit(Z, y, X_cal=Z, y_cal=-np.ones(60)), "y_cal"),
        (lambda: det.fit(Z, y, X_cal=Z, y_cal=y[:10]), "y_cal"),
        (lambda: det.fit(Z, y, X_cal=np.full((3, 3), np.nan), y_cal=[0, 1, 2]), "NaN"),
    ]:
        assert_unchanged_after_error(det, call, ValueError, match)
    energy = Energy().fit(Z)
    assert_unchanged_after_error(energy, lambda: energy.fit(Z, X_cal=Z), TypeError,
                                 "no calibrating statistics")


def test_clone_pickle_and_seed():
    Z, y = _split_logits()
    det = MaxSoftmax(temperature="fit", calibration_size=0.25, random_state=0)
    assert clone(det).get_params() == det.get_params()
    det.fit(Z, y)
    again = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(again.score_samples(Z), det.score_samples(Z))
    assert clone(det).fit(Z, y).temperature_ == det.temperature_  # seeded: the same rows
    assert det.set_params(random_state=1).fit(Z, y).temperature_ != again.temperature_


def test_conformal_detector_holds_out_its_rows_first_then_the_detector_its_share():
    from sklearn_ood import ConformalDetector

    Z, y = _split_logits()
    inner = MaxSoftmax(temperature="fit", calibration_size=0.5, random_state=0)
    conformal = ConformalDetector(inner, calibration_size=20, random_state=0).fit(Z, y)
    fit_rows = np.setdiff1d(np.arange(60), conformal.calibration_rows_[0])
    alone = clone(inner).fit(Z[fit_rows], y[fit_rows])
    assert conformal.detectors_[0].temperature_ == alone.temperature_
