"""The estimator contract (BaseDetector, ModelDetector).

First on toy detectors computed by hand here, so every expectation is
independent of the detectors of the library; then on every detector of the
library: each either raises a clear ValueError/TypeError (asserted on a
message fragment) or returns a documented, finite result, and a failed call
never changes a fitted estimator.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

import sklearn_ood
from _helpers import assert_unchanged_after_error, float32_features
from _instances import (
    B, D, HEAD, N, VARIANTS, W, X2, X4, Y, array_detectors, cases, model_detectors,
)
from sklearn_ood import KNN
from sklearn_ood.detectors import LINe, NAP
from sklearn_ood.discovery import all_detectors, get_detector_tags
from sklearn_ood._base import OFFSET_SAMPLE_SIZE, BaseDetector, scores_only
from sklearn_ood.model_detectors import ModelDetector


class MinusSquaredNorm(BaseDetector):
    """Score ``-||x - mean||^2``; ``fail`` makes ``_fit`` raise after setting state."""

    def __init__(self, *, contamination=0.05, fail=False, nonfinite=False):
        self.contamination = contamination
        self.fail = fail
        self.nonfinite = nonfinite

    def _fit(self, X, y):
        self.mean_ = X.mean(axis=0)
        self.labels_seen_ = y
        if self.fail:
            raise RuntimeError("boom in _fit")

    def _score(self, X):
        scores = -((X - self.mean_) ** 2).sum(axis=1)
        return np.full(len(X), np.nan) if self.nonfinite else scores


class LeaveOutTraining(MinusSquaredNorm):
    """Training scores from a separate rule, as KNN's leave-one-out."""

    def _training_scores(self, X, rows):
        return rows.astype(float)


X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 1.0]])


def test_threshold_decision_and_predict_follow_one_invariant():
    det = MinusSquaredNorm(contamination=0.4).fit(X)
    mean = X.mean(axis=0)
    train = -((X - mean) ** 2).sum(axis=1)
    assert det.offset_ == np.percentile(train, 40)
    new = np.array([[0.2, 1.2], [5.0, 5.0]])
    want = -((new - mean) ** 2).sum(axis=1)
    np.testing.assert_array_equal(det.score_samples(new), want)
    np.testing.assert_array_equal(det.decision_function(new), want - det.offset_)
    np.testing.assert_array_equal(det.predict(new), np.where(want >= det.offset_, 1, -1))


def test_negative_labels_mark_ood_rows_that_fit_ignores():
    y = np.array([0, 1, -1, 1, -1])
    det = MinusSquaredNorm().fit(X, y)
    np.testing.assert_array_equal(det.mean_, X[[0, 1, 3]].mean(axis=0))
    assert det.labels_seen_.tolist() == [0, 1, 1]


def test_training_scores_step_sets_the_offset():
    det = LeaveOutTraining(contamination=0.25).fit(X)
    assert det.offset_ == np.percentile(np.arange(5.0), 25)


def test_offset_from_a_seeded_sample_of_large_training_sets():
    rng = np.random.default_rng(0)
    X_big = rng.normal(size=(OFFSET_SAMPLE_SIZE + 500, 2))
    det = MinusSquaredNorm(contamination=0.1).fit(X_big)
    keys = np.random.Generator(np.random.PCG64(0)).random(len(X_big))
    rows = np.argsort(keys)[:OFFSET_SAMPLE_SIZE]  # the rows with the smallest seeded keys
    scores = -((X_big[rows] - X_big.mean(axis=0)) ** 2).sum(axis=1)
    assert det.offset_ == np.percentile(scores, 10)
    assert MinusSquaredNorm(contamination=0.1).fit(X_big).offset_ == det.offset_


def test_knn_threshold_uses_leave_one_out_scores():
    bank = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    det = KNN(n_neighbors=1, contamination=0.5).fit(bank)
    unit = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    sq = ((unit[:, None] - unit[None]) ** 2).sum(-1)
    np.fill_diagonal(sq, np.inf)  # leave each row's own match out
    assert det.offset_ == np.percentile(-sq.min(axis=1), 50)
    # score_samples itself leaves nothing out: a training row is at distance 0.
    assert det.score_samples(bank[:1])[0] == 0.0


def test_failed_fit_leaves_the_estimator_as_it_was():
    det = MinusSquaredNorm().fit(X)
    before = {k: np.copy(v) if isinstance(v, np.ndarray) else v
              for k, v in det.__dict__.items()}
    det.set_params(fail=True)
    with pytest.raises(RuntimeError, match="boom in _fit"):
        det.fit(X[:3] + 10.0)
    np.testing.assert_array_equal(det.mean_, before["mean_"])
    assert det.offset_ == before["offset_"]
    fresh = MinusSquaredNorm(fail=True)
    with pytest.raises(RuntimeError):
        fresh.fit(X)
    assert not hasattr(fresh, "mean_") and not hasattr(fresh, "offset_")


def test_nonfinite_training_scores_are_an_error():
    det = MinusSquaredNorm(nonfinite=True)
    with pytest.raises(ValueError, match="non-finite scores on its training data"):
        det.fit(X)
    assert not hasattr(det, "offset_")


def test_parameters_are_validated_in_fit_before_any_state_changes():
    det = MinusSquaredNorm(contamination=0.7)  # __init__ stores it untouched
    assert det.contamination == 0.7
    with pytest.raises(InvalidParameterError, match="contamination"):
        det.fit(X)
    assert not hasattr(det, "n_features_in_")


class MeanPixel(ModelDetector):
    """Score: the mean of the model's output per image."""

    def __init__(self, model, *, batch_size=2, device="cpu", contamination=0.05):
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.contamination = contamination

    def _fit_images(self, data):
        self.n_fit_ = sum(len(batch) for batch in data.batches())

    def _score_batches(self, batches):
        with torch.no_grad():
            return np.concatenate([self.model(x).flatten(1).mean(1).double().numpy()
                                   for x in batches])


def test_model_detector_takes_images_and_shares_the_contract():
    images = np.arange(5 * 2 * 3 * 3, dtype=np.float32).reshape(5, 2, 3, 3) / 10
    det = MeanPixel(torch.nn.Identity(), contamination=0.2)
    det.fit(images, y=[0, 0, -1, 0, 0])
    assert det.n_fit_ == 4 and det.n_features_in_ == 2
    kept = images[[0, 1, 3, 4]].reshape(4, -1).mean(1)
    assert det.offset_ == pytest.approx(np.percentile(kept, 20))
    np.testing.assert_allclose(det.score_samples(torch.from_numpy(images)),
                               images.reshape(5, -1).mean(1), rtol=1e-6)


@pytest.mark.parametrize("bad, error, match", [
    (np.zeros((3, 4), np.float32), ValueError, "images of shape"),
    (np.zeros((3, 1, 3, 3), np.float32), ValueError, "2 channels"),
    (np.full((3, 2, 3, 3), np.nan, np.float32), ValueError, "NaN"),
])
def test_model_detector_rejects_bad_images_after_fit(bad, error, match):
    det = MeanPixel(torch.nn.Identity()).fit(np.ones((4, 2, 3, 3), np.float32))
    offset = det.offset_
    with pytest.raises(error, match=match):
        det.score_samples(bad)
    assert det.offset_ == offset


def test_model_detector_parameters_are_validated():
    with pytest.raises(InvalidParameterError, match="model"):
        MeanPixel("not a module").fit(np.ones((4, 2, 3, 3), np.float32))
    with pytest.raises(InvalidParameterError, match="batch_size"):
        MeanPixel(torch.nn.Identity(), batch_size=0).fit(np.ones((4, 2, 3, 3), np.float32))


# ===================================================== every detector of the library
# Derived from the registry (tests/_instances.py): every detector that takes arrays, on
# the tiny data there, each on the rank its tags prefer (2-D rows when accepted, else
# 4-D maps), plus NAP-E; the 4-D tests on every detector that accepts maps.
CASES = cases(X2, X4, Y, HEAD)
MAPS = cases(X2, X4, Y, HEAD, ndim=4)
ALL = list(CASES)
HEADED = [name for name, case in CASES.items() if case.head_width is not None]
LABELLED = [name for name, case in CASES.items() if case.y is not None]


def test_every_public_detector_is_registered_and_in_these_tables():
    public = {name for name in sklearn_ood.__all__
              if isinstance(getattr(sklearn_ood, name), type)
              and issubclass(getattr(sklearn_ood, name), BaseDetector)}
    registered = {name for name, _ in all_detectors()}
    assert public == registered
    images = {name for name, _ in model_detectors()}
    assert images == {n for n, c in all_detectors() if get_detector_tags(c).input == "images"}
    assert set(CASES) - set(VARIANTS) == registered - images
    only_2d = {n for n, c in array_detectors() if 4 not in get_detector_tags(c).ndim}
    assert set(MAPS) - set(VARIANTS) == registered - images - only_2d


# ----------------------------------------------------------------- bad input
def _corrupt(X, value):
    Xb = X.copy()
    Xb[(3,) + (2,) * (X.ndim - 1)] = value
    return Xb


@pytest.mark.parametrize("name", ALL)
def test_fit_keeps_no_private_state(name):
    # The fit steps hand data on through return values: a fitted detector holds its
    # parameters and documented fitted attributes (test_docstrings), nothing else.
    assert [key for key in vars(CASES[name].fit()) if key.startswith("_")] == []



# Their fit scores the offset sample anyway (the standardisation of the block scores).
SCORES_COMPUTED_BY_FIT = {"MultiBlockMahalanobis"}


@pytest.mark.parametrize("name", ALL)
def test_scores_only_fit_scores_no_training_row_and_drops_the_threshold(name, monkeypatch):
    case = CASES[name]
    scored = []
    score = case.cls._score
    monkeypatch.setattr(case.cls, "_score",
                        lambda self, X, *a, **k: scored.append(len(X)) or score(self, X, *a, **k))
    det = case.fit()
    if name in SCORES_COMPUTED_BY_FIT:  # they set the threshold, also inside scores_only()
        with scores_only():
            det.fit(case.X, case.labels(len(case.X)))
        assert scored == [] and hasattr(det, "offset_")
        return
    assert sum(scored) > 0 and hasattr(det, "offset_")  # the threshold step scores rows
    scored.clear()
    with scores_only():
        det.fit(case.X, case.labels(len(case.X)))
    assert scored == [] and not hasattr(det, "offset_")  # an earlier threshold is stale
    np.testing.assert_array_equal(det.score_samples(case.X), case.fit().score_samples(case.X))
    with pytest.raises(AttributeError, match="offset_"):
        det.predict(case.X[:2])

@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad, match", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_nonfinite_input_rejected_and_state_kept(name, bad, match):
    case = CASES[name]
    est = case.fit()
    Xb = _corrupt(case.X, bad)
    assert_unchanged_after_error(est, lambda: est.fit(Xb, case.y), ValueError, match)
    assert_unchanged_after_error(est, lambda: est.score_samples(Xb), ValueError, match)
    assert_unchanged_after_error(est, lambda: est.predict(Xb), ValueError, match)


@pytest.mark.parametrize("name", ALL)
def test_empty_input_rejected(name):
    case = CASES[name]
    est = case.fit()
    assert_unchanged_after_error(est, lambda: est.fit(case.X[:0], case.labels(0)),
                                 ValueError, "0 sample")
    assert_unchanged_after_error(est, lambda: est.score_samples(case.X[:0]), ValueError,
                                 "0 sample")


@pytest.mark.parametrize("name", ALL)
def test_one_sample_score_matches_batch(name):
    case = CASES[name]
    est = case.fit()
    full = est.score_samples(case.X)
    assert np.isfinite(full).all()
    for i in (0, 7):
        one = est.score_samples(case.X[i : i + 1])
        assert one.shape == (1,)
        np.testing.assert_allclose(one, full[i : i + 1], rtol=1e-10, atol=1e-12)


# Fitting on ONE sample: a clear error or finite scores (documented degenerate fit).
ONE_SAMPLE_ERRORS = {
    "KNN": "n_neighbors", "GaussianDensity": "at least 2 samples", "ViM": "residual",
    "NNGuide": "n_neighbors",  # its bank needs n_neighbors rows
    "OpenMax": "at least 2 training rows per class",  # a Weibull tail per class
    "SHE": "no training row",  # one stored pattern per class of the head
    # the logistic combiner needs ID and pseudo-OOD rows; one row is only one of them
    "MultiBlockMahalanobis": "pseudo-OOD rows",
    # by default 10 % of the rows are held out of the bounds for E_l: none is left
    "Gram": "leaving none for the modelling statistics",
}


@pytest.mark.parametrize("name", ALL)
def test_fit_on_one_sample(name):
    case = CASES[name]
    est = case.make()
    if name in ONE_SAMPLE_ERRORS:
        with pytest.raises(ValueError, match=ONE_SAMPLE_ERRORS[name]):
            est.fit(case.X[:1], case.labels(1))
        assert not hasattr(est, "offset_")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # LINe: classes without samples
        est.fit(case.X[:1], case.labels(1))
    scores = est.score_samples(case.X)
    assert not np.isnan(scores).any()


@pytest.mark.parametrize("name", ALL)
def test_wrong_ndim_rejected(name):
    """One rank below and one above the input (ranks 2 and 4 only are accepted)."""
    case = CASES[name]
    est = case.fit()
    for Xb in (case.X[0], case.X[..., None]):
        assert_unchanged_after_error(est, lambda: est.score_samples(Xb), ValueError,
                                     r"2D array|2-D|4-D|dim|shape")
        with pytest.raises(ValueError, match=r"2D array|2-D|4-D|dim|shape"):
            case.make().fit(Xb, case.labels(len(Xb)) if Xb.ndim > 1 else None)


@pytest.mark.parametrize("name", ALL)
def test_feature_count_mismatch_after_fit(name):
    case = CASES[name]
    est = case.fit()
    assert_unchanged_after_error(est, lambda: est.score_samples(case.X[:, :-2]), ValueError,
                                 "features|channels")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.float64])
def test_input_dtypes(name, dtype):
    """Integer / float16 / float64 input works and is read as its values (float32 below)."""
    case = CASES[name]
    Xd = (case.X * 4).astype(dtype)
    ref = case.fit(Xd.astype(np.float64))
    s = case.fit(Xd).score_samples(Xd)
    assert s.dtype == np.float64 and np.isfinite(s).all()
    np.testing.assert_allclose(s, ref.score_samples(Xd.astype(np.float64)), rtol=1e-10,
                               atol=1e-6)


# Float32 features as a network gives them: non-negative, D = 64 (products long enough
# for float32 rounding to show), strongly correlated (16 latent factors plus 0.2 % noise,
# 3 % zeros: a covariance of condition number ~1e5, which amplifies rounding errors; a
# Mahalanobis distance computed in float32 fails this test); and float32 maps for the
# map-only detectors.
_rng = np.random.default_rng(2)
F32_X = np.maximum(_rng.standard_normal((400, 16)) @ _rng.standard_normal((16, 64)) / 4 + 2.0
                   + 0.002 * _rng.standard_normal((400, 64)), 0.0).astype(np.float32)
F32_HEAD = float32_features(d=64, k=10)[1]
F32_MAPS = np.abs(np.random.default_rng(3).standard_normal((400, 8, 4, 4))).astype(np.float32)
F32_CASES = cases(F32_X, F32_MAPS, np.arange(400) % 10, F32_HEAD, small=False)


@pytest.mark.parametrize("name", list(F32_CASES))
def test_float32_input_scores_within_1e5_of_float64(name):
    """Float32 features are scored (and fitted) in float32 where the detector can, and the
    scores and ``offset_`` stay within 1e-5 of fitting and scoring the same values in
    float64: relative, with an absolute floor of 1e-5 x the largest score (scores that
    cross 0 have no relative precision). The public scores stay float64."""
    case = F32_CASES[name]
    assert case.X.dtype == np.float32
    X64 = case.X.astype(np.float64)
    det32, det64 = case.fit(case.X), case.fit(X64)
    s32, s64 = det32.score_samples(case.X), det64.score_samples(X64)
    assert s32.dtype == np.float64
    tol = 1e-5 * np.abs(s64).max()
    np.testing.assert_allclose(s32, s64, rtol=1e-5, atol=tol)
    np.testing.assert_allclose(det32.offset_, det64.offset_, rtol=1e-5, atol=tol)


@pytest.mark.parametrize("name", ALL)
def test_non_contiguous_input_same_result(name):
    case = CASES[name]
    ref = case.fit()
    expected = ref.score_samples(case.X)
    fortran = np.asfortranarray(case.X)
    strided = np.repeat(case.X, 2, axis=-1)[..., ::2]
    assert not strided.flags.c_contiguous and not fortran.flags.c_contiguous
    for Xnc in (fortran, strided):
        np.testing.assert_allclose(ref.score_samples(Xnc), expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(case.fit(Xnc).score_samples(case.X), expected,
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", HEADED)
def test_head_of_wrong_shape(name):
    case = CASES[name]
    width, y = case.head_width, case.y
    narrow = (W[:, : width - 1], B)
    est = case.make(head=narrow)
    with pytest.raises(ValueError, match=f"head expects {width - 1} features"):
        est.fit(case.X, y)
    with pytest.raises(ValueError, match="intercept"):
        case.make(head=(W[:, :width], B[:2])).fit(case.X, y)
    with pytest.raises(TypeError, match="head must be"):
        case.make(head="fc").fit(case.X, y)
    # a fitted estimator whose refit fails keeps its fitted attributes
    est = case.fit()
    before = {k: pickle.dumps(v) for k, v in est.__dict__.items() if k.endswith("_")}
    est.set_params(head=narrow)
    with pytest.raises(ValueError, match="head expects"):
        est.fit(case.X, y)
    after = {k: pickle.dumps(v) for k, v in est.__dict__.items() if k.endswith("_")}
    assert after == before


def test_nap_head_must_take_channels():
    with pytest.raises(ValueError, match="head expects"):
        NAP(HEAD, weight=0.4).fit(X2)  # 2-D width 6 -> 3 channels, head takes 6


@pytest.mark.parametrize("name", ["Mahalanobis", "GaussianDensity"])
def test_single_class_labels_is_one_gaussian(name):
    """One class: documented as a single class-conditional Gaussian."""
    est = CASES[name].make().fit(X2, np.zeros(N, dtype=int))
    s = est.score_samples(X2)
    assert np.isfinite(s).all()
    assert est.means_.shape == (1, D)


def test_line_single_class_labels_warns_and_scores():
    with pytest.warns(UserWarning, match="no training sample for class"):
        est = LINe(HEAD, clip=None, p_w=50, p_a=50).fit(X2, np.zeros(N, dtype=int))
    assert np.isfinite(est.score_samples(X2)).all()


@pytest.mark.parametrize("name", LABELLED)
def test_labels_all_ood_rejected(name):
    case = CASES[name]
    est = case.fit()
    assert_unchanged_after_error(est, lambda: est.fit(case.X, -np.ones(N, dtype=int)),
                                 ValueError, "every row as OOD")


@pytest.mark.parametrize("name", [n for n, c in array_detectors()
                                  if get_detector_tags(c).labels == "required"])
def test_missing_labels_rejected(name):
    with pytest.raises(ValueError, match="requires y"):
        CASES[name].make().fit(CASES[name].X)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("scale", [1e-300, 1e150])
def test_extreme_magnitudes_never_nan(name, scale):
    """Fitted on ordinary features, scoring finite but extreme ones gives no NaN."""
    case = CASES[name]
    est = case.fit()
    with np.errstate(all="ignore"):
        s = est.score_samples(case.X * scale)
    assert not np.isnan(s).any(), f"{name} gives NaN scores for inputs scaled by {scale}"


@pytest.mark.parametrize("name", ALL)
def test_overflowing_features_never_nan_score(name):
    """Features around 1e200 overflow squares/products: +-inf is acceptable, NaN is not."""
    case = CASES[name]
    est = case.fit()
    with np.errstate(all="ignore"):
        s = est.score_samples(case.X * 1e200)
    assert not np.isnan(s).any(), f"{name}: NaN score for features of magnitude 1e200"


# Detectors whose statistics overflow float64 on features around 1e200, and the
# clear error each gives; every other detector must fit and give a valid threshold.
OVERFLOW_ERRORS = {
    **dict.fromkeys(["Mahalanobis", "ViM", "NECO", "RelativeMahalanobis",
                     "MultiBlockMahalanobis", "GaussianMixture"], "covariance overflows"),
    "OpenMax": "distances to the class means overflow",
    # the training scores overflow (NAP's ratios, NNGuide's and SHE's inner products) or
    # are undefined (Gram: inf - inf of infinite bounds; KLMatching: templates of
    # saturated softmaxes, 0 log 0): BaseDetector's error, nothing fitted
    **dict.fromkeys(["NAP", "NAP-E", "Gram", "KLMatching", "NNGuide", "SHE"],
                    "non-finite scores on its training data"),
}


@pytest.mark.parametrize("name", ALL)
def test_fit_on_overflowing_features_clear_error_or_valid_threshold(name):
    """Fitting on features around 1e200: the documented error, or a valid threshold."""
    case = CASES[name]
    X_big = case.X * 1e200
    with np.errstate(all="ignore"):
        if name in OVERFLOW_ERRORS:
            with pytest.raises(ValueError, match=OVERFLOW_ERRORS[name]):
                case.fit(X_big)
            return
        est = case.fit(X_big)
        s = est.score_samples(X_big)
        pred = est.predict(X_big)
    assert not np.isnan(est.offset_), f"{name}: offset_ is NaN, so predict is meaningless"
    assert not np.isnan(s).any()
    assert (pred == 1).mean() >= 0.5


def test_knn_is_scale_invariant_even_for_huge_features():
    """KNN L2-normalises rows, so scaling the features must not change the scores.

    With features around 1e200 the squared row norm overflows: the rows must not
    silently collapse to zero vectors (which gives every sample the same score).
    """
    est = KNN(n_neighbors=3).fit(X2)
    expected = est.score_samples(X2)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(est.score_samples(X2 * 1e200), expected, atol=1e-12)
        np.testing.assert_allclose(KNN(n_neighbors=3).fit(X2 * 1e200).score_samples(X2),
                                   expected, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_zero_rows_never_nan(name):
    case = CASES[name]
    est = case.fit()
    Xz = case.X.copy()
    Xz[:5] = 0.0
    assert not np.isnan(est.score_samples(Xz)).any()


# ----------------------------------------------------------------- 4-D maps
@pytest.mark.parametrize("name", list(MAPS))
def test_maps_nonfinite_empty_and_mismatch(name):
    case = MAPS[name]
    est = case.fit()
    s = est.score_samples(X4)
    assert s.shape == (N,) and np.isfinite(s).all()
    for bad, match in [(np.nan, "NaN"), (np.inf, "infinity")]:
        Xb = _corrupt(X4, bad)
        assert_unchanged_after_error(est, lambda: est.fit(Xb, case.y), ValueError, match)
        assert_unchanged_after_error(est, lambda: est.score_samples(Xb), ValueError, match)
    assert_unchanged_after_error(est, lambda: est.score_samples(X4[:0]), ValueError,
                                 "0 sample")
    assert_unchanged_after_error(est, lambda: est.score_samples(X4[:, :3]), ValueError,
                                 "channels")
    assert_unchanged_after_error(est, lambda: est.score_samples(X4[:, :, :, :, None]),
                                 ValueError, "4-D")
    assert_unchanged_after_error(est, lambda: est.score_samples(X4[:, 0]), ValueError,
                                 "4-D")
    assert_unchanged_after_error(est, lambda: est.score_samples(X4.mean(axis=(2, 3))),
                                 ValueError, "4-D")
    # a different spatial size is fine (documented): scores stay finite
    assert np.isfinite(est.score_samples(X4[:, :, :2, :2])).all()


@pytest.mark.parametrize("name", list(MAPS))
def test_maps_dtypes_and_non_contiguous(name):
    case = MAPS[name]
    ref = case.fit()
    expected = ref.score_samples(X4)
    np.testing.assert_allclose(ref.score_samples(X4[:1]), expected[:1], rtol=1e-10)
    for Xnc in (np.asfortranarray(X4), np.repeat(X4, 2, axis=3)[:, :, :, ::2],
                X4.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)):
        assert not Xnc.flags.c_contiguous
        np.testing.assert_allclose(ref.score_samples(Xnc), expected, rtol=1e-10, atol=1e-12)
    for dtype in (np.int64, np.float16, np.float32):
        Xd = (X4 * 4).astype(dtype)
        s = case.fit(Xd).score_samples(Xd)
        s64 = case.fit(Xd.astype(np.float64)).score_samples(Xd.astype(np.float64))
        rtol = 1e-5 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(s, s64, rtol=rtol, atol=1e-6)


def test_fit_predict_passes_the_labels_to_fit():
    # scikit-learn's OutlierMixin.fit_predict drops y: the labels must reach fit.
    det = MinusSquaredNorm(contamination=0.4)
    y = np.array([0, 1, -1, 1, -1])
    np.testing.assert_array_equal(det.fit_predict(X, y), det.fit(X, y).predict(X))
    assert det.labels_seen_.tolist() == [0, 1, 1]
