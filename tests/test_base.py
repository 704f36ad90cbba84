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

from _helpers import assert_unchanged_after_error
from sklearn_ood import KNN
from sklearn_ood.detectors import (
    ASH,
    DICE,
    NAP,
    Energy,
    FeatureNorm,
    GaussianDensity,
    LINe,
    Mahalanobis,
    MaxLogit,
    MaxSoftmax,
    NegativeAwareNorm,
    ReAct,
    ViM,
)
from sklearn_ood._base import OFFSET_SAMPLE_SIZE, BaseDetector
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
# --------------------------------------------------------------------------- data
RNG = np.random.default_rng(0)
N, D, K = 36, 6, 3
X2 = np.abs(RNG.normal(size=(N, D))) * (RNG.random((N, D)) > 0.2)  # post-ReLU-like
Y = np.arange(N) % K
W = RNG.normal(size=(K, D))
B = RNG.normal(size=K) * 0.1
HEAD = (W, B)
X4 = np.abs(RNG.normal(size=(N, 4, 3, 3)))
IMAGES = RNG.random((12, 1, 8, 8), dtype=np.float32)

# name -> (factory, needs labels)
DETECTORS_2D = {
    "MaxSoftmax": (lambda: MaxSoftmax(HEAD), False),
    "MaxLogit": (lambda: MaxLogit(HEAD), False),
    "Energy": (lambda: Energy(HEAD), False),
    "ReAct": (lambda: ReAct(HEAD), False),
    "DICE": (lambda: DICE(HEAD, percentile=50), False),
    "ASH": (lambda: ASH(HEAD, percentile=50), False),
    "LINe": (lambda: LINe(HEAD, clip=None, p_w=50, p_a=50), True),
    "Mahalanobis": (lambda: Mahalanobis(), True),
    "KNN": (lambda: KNN(n_neighbors=3), False),
    "ViM": (lambda: ViM(HEAD, n_components=3), False),
    "GaussianDensity": (lambda: GaussianDensity(), True),
    "FeatureNorm": (lambda: FeatureNorm(), False),
    "NegativeAwareNorm": (lambda: NegativeAwareNorm(), False),
    "NAP": (lambda: NAP(), False),
    "NAP-E": (lambda: NAP((W[:, :3], B), weight=0.4), False),  # 2D = [max(3) | mean(3)]
}
HEAD_DETECTORS = ["MaxSoftmax", "MaxLogit", "Energy", "ReAct", "DICE", "ASH", "LINe", "ViM"]
LABEL_DETECTORS = [k for k, (_, y) in DETECTORS_2D.items() if y]
# detectors accepting 4-D maps (N, C, H, W)
DETECTORS_4D = {
    "FeatureNorm": lambda: FeatureNorm(),
    "NegativeAwareNorm": lambda: NegativeAwareNorm(),
    "NAP": lambda: NAP(),
    "NAP-E": lambda: NAP((W[:, :4], B), weight=0.4),
    "Mahalanobis": lambda: Mahalanobis(),
    "KNN": lambda: KNN(n_neighbors=3),
}


def fitted(name, X=X2):
    make, needs_y = DETECTORS_2D[name]
    return make().fit(X, Y[: len(X)] if needs_y else None)


ALL_2D = list(DETECTORS_2D)


@pytest.mark.parametrize("name", ALL_2D)
def test_fit_keeps_no_private_state(name):
    # The fit steps hand data on through return values: a fitted detector holds its
    # parameters and documented fitted attributes (test_docstrings), nothing else.
    assert [key for key in vars(fitted(name)) if key.startswith("_")] == []


# ----------------------------------------------------------------- bad input: 2-D
@pytest.mark.parametrize("name", ALL_2D)
@pytest.mark.parametrize("bad, match", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_nonfinite_input_rejected_and_state_kept(name, bad, match):
    est = fitted(name)
    Xb = X2.copy()
    Xb[3, 2] = bad
    _, needs_y = DETECTORS_2D[name]
    assert_unchanged_after_error(est, lambda: est.fit(Xb, Y if needs_y else None),
                                 ValueError, match)
    assert_unchanged_after_error(est, lambda: est.score_samples(Xb), ValueError, match)
    assert_unchanged_after_error(est, lambda: est.predict(Xb), ValueError, match)


@pytest.mark.parametrize("name", ALL_2D)
def test_empty_input_rejected(name):
    est = fitted(name)
    _, needs_y = DETECTORS_2D[name]
    assert_unchanged_after_error(est, lambda: est.fit(X2[:0], Y[:0] if needs_y else None),
                                 ValueError, "0 sample")
    assert_unchanged_after_error(est, lambda: est.score_samples(X2[:0]), ValueError,
                                 "0 sample")


@pytest.mark.parametrize("name", ALL_2D)
def test_one_sample_score_matches_batch(name):
    est = fitted(name)
    full = est.score_samples(X2)
    assert np.isfinite(full).all()
    for i in (0, 7):
        one = est.score_samples(X2[i : i + 1])
        assert one.shape == (1,)
        np.testing.assert_allclose(one, full[i : i + 1], rtol=1e-10, atol=1e-12)


# Fitting on ONE sample: a clear error or finite scores (documented degenerate fit).
ONE_SAMPLE_ERRORS = {"KNN": "n_neighbors", "GaussianDensity": "at least 2 samples",
                     "ViM": "residual"}


@pytest.mark.parametrize("name", ALL_2D)
def test_fit_on_one_sample(name):
    make, needs_y = DETECTORS_2D[name]
    est = make()
    if name in ONE_SAMPLE_ERRORS:
        with pytest.raises(ValueError, match=ONE_SAMPLE_ERRORS[name]):
            est.fit(X2[:1], Y[:1] if needs_y else None)
        assert not hasattr(est, "offset_")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # LINe: classes without samples
        est.fit(X2[:1], Y[:1] if needs_y else None)
    scores = est.score_samples(X2)
    assert not np.isnan(scores).any()


@pytest.mark.parametrize("name", ALL_2D)
@pytest.mark.parametrize("shape", [(D,), (N, D, 1)])
def test_wrong_ndim_rejected(name, shape):
    est = fitted(name)
    Xb = X2[0] if len(shape) == 1 else X2[:, :, None]
    assert_unchanged_after_error(est, lambda: est.score_samples(Xb), ValueError,
                                 r"2D array|2-D|dim|shape")
    make, needs_y = DETECTORS_2D[name]
    with pytest.raises(ValueError, match=r"2D array|2-D|dim|shape"):
        make().fit(Xb, Y[: len(Xb)] if needs_y and Xb.ndim > 1 else None)


@pytest.mark.parametrize("name", ALL_2D)
def test_feature_count_mismatch_after_fit(name):
    est = fitted(name)
    assert_unchanged_after_error(est, lambda: est.score_samples(X2[:, :4]), ValueError,
                                 "features")


@pytest.mark.parametrize("name", ALL_2D)
@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.float32, np.float64])
def test_input_dtypes(name, dtype):
    """Integer / float16 / float32 / float64 input works and is read as its values."""
    make, needs_y = DETECTORS_2D[name]
    Xd = (X2 * 4).astype(dtype)
    ref = make().fit(Xd.astype(np.float64), Y if needs_y else None)
    est = make().fit(Xd, Y if needs_y else None)
    s = est.score_samples(Xd)
    assert s.dtype == np.float64 and np.isfinite(s).all()
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(s, ref.score_samples(Xd.astype(np.float64)), rtol=rtol,
                               atol=1e-6)


@pytest.mark.parametrize("name", ALL_2D)
def test_non_contiguous_input_same_result(name):
    make, needs_y = DETECTORS_2D[name]
    y = Y if needs_y else None
    ref = make().fit(X2, y)
    expected = ref.score_samples(X2)
    fortran = np.asfortranarray(X2)
    strided = np.repeat(X2, 2, axis=1)[:, ::2]
    assert not strided.flags.c_contiguous and not fortran.flags.c_contiguous
    for Xnc in (fortran, strided):
        np.testing.assert_allclose(ref.score_samples(Xnc), expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(make().fit(Xnc, y).score_samples(X2), expected,
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", HEAD_DETECTORS)
def test_head_of_wrong_shape(name):
    make, needs_y = DETECTORS_2D[name]
    y = Y if needs_y else None
    est = make().set_params(head=(W[:, :4], B))
    with pytest.raises(ValueError, match="head expects 4 features"):
        est.fit(X2, y)
    with pytest.raises(ValueError, match="intercept"):
        make().set_params(head=(W, B[:2])).fit(X2, y)
    with pytest.raises(TypeError, match="head must be"):
        make().set_params(head="fc").fit(X2, y)
    # a fitted estimator whose refit fails keeps its fitted attributes
    est = fitted(name)
    before = {k: pickle.dumps(v) for k, v in est.__dict__.items() if k.endswith("_")}
    est.set_params(head=(W[:, :4], B))
    with pytest.raises(ValueError, match="head expects"):
        est.fit(X2, y)
    after = {k: pickle.dumps(v) for k, v in est.__dict__.items() if k.endswith("_")}
    assert after == before


def test_nap_head_must_take_channels():
    with pytest.raises(ValueError, match="head expects"):
        NAP(HEAD, weight=0.4).fit(X2)  # 2-D width 6 -> 3 channels, head takes 6


@pytest.mark.parametrize("name", ["Mahalanobis", "GaussianDensity"])
def test_single_class_labels_is_one_gaussian(name):
    """One class: documented as a single class-conditional Gaussian."""
    est = DETECTORS_2D[name][0]().fit(X2, np.zeros(N, dtype=int))
    s = est.score_samples(X2)
    assert np.isfinite(s).all()
    assert est.means_.shape == (1, D)


def test_line_single_class_labels_warns_and_scores():
    with pytest.warns(UserWarning, match="no training sample for class"):
        est = LINe(HEAD, clip=None, p_w=50, p_a=50).fit(X2, np.zeros(N, dtype=int))
    assert np.isfinite(est.score_samples(X2)).all()


@pytest.mark.parametrize("name", LABEL_DETECTORS)
def test_labels_all_ood_rejected(name):
    est = fitted(name)
    assert_unchanged_after_error(est, lambda: est.fit(X2, -np.ones(N, dtype=int)),
                                 ValueError, "every row as OOD")


@pytest.mark.parametrize("name", ["GaussianDensity"])
def test_missing_labels_rejected(name):
    with pytest.raises(ValueError, match="requires y"):
        DETECTORS_2D[name][0]().fit(X2)


@pytest.mark.parametrize("name", ALL_2D)
@pytest.mark.parametrize("scale", [1e-300, 1e150])
def test_extreme_magnitudes_never_nan(name, scale):
    """Fitted on ordinary features, scoring finite but extreme ones gives no NaN."""
    make, needs_y = DETECTORS_2D[name]
    Xs = X2 * scale
    est = make().fit(X2, Y if needs_y else None)
    with np.errstate(all="ignore"):
        s = est.score_samples(Xs)
    assert not np.isnan(s).any(), f"{name} gives NaN scores for inputs scaled by {scale}"


@pytest.mark.parametrize("name", ALL_2D)
def test_overflowing_features_never_nan_score(name):
    """Features around 1e200 overflow squares/products: +-inf is acceptable, NaN is not."""
    make, needs_y = DETECTORS_2D[name]
    est = make().fit(X2, Y if needs_y else None)
    with np.errstate(all="ignore"):
        s = est.score_samples(X2 * 1e200)
    assert not np.isnan(s).any(), f"{name}: NaN score for features of magnitude 1e200"


# Detectors whose statistics overflow float64 on features around 1e200, and the
# clear error each gives; every other detector must fit and give a valid threshold.
OVERFLOW_ERRORS = {
    "Mahalanobis": "covariance overflows",
    "ViM": "covariance overflows",
    "NAP": "non-finite scores on its training data",
    "NAP-E": "non-finite scores on its training data",
}


@pytest.mark.parametrize("name", ALL_2D)
def test_fit_on_overflowing_features_clear_error_or_valid_threshold(name):
    """Fitting on features around 1e200: the documented error, or a valid threshold."""
    make, needs_y = DETECTORS_2D[name]
    X_big, y = X2 * 1e200, Y if needs_y else None
    with np.errstate(all="ignore"):
        if name in OVERFLOW_ERRORS:
            with pytest.raises(ValueError, match=OVERFLOW_ERRORS[name]):
                make().fit(X_big, y)
            return
        est = make().fit(X_big, y)
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


@pytest.mark.parametrize("name", ALL_2D)
def test_zero_rows_never_nan(name):
    make, needs_y = DETECTORS_2D[name]
    est = make().fit(X2, Y if needs_y else None)
    Xz = X2.copy()
    Xz[:5] = 0.0
    assert not np.isnan(est.score_samples(Xz)).any()


# ----------------------------------------------------------------- bad input: 4-D
M4 = list(DETECTORS_4D)


@pytest.mark.parametrize("name", M4)
def test_maps_nonfinite_empty_and_mismatch(name):
    est = DETECTORS_4D[name]().fit(X4)
    s = est.score_samples(X4)
    assert s.shape == (N,) and np.isfinite(s).all()
    for bad, match in [(np.nan, "NaN"), (np.inf, "infinity")]:
        Xb = X4.copy()
        Xb[1, 2, 0, 1] = bad
        assert_unchanged_after_error(est, lambda: est.fit(Xb), ValueError, match)
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


@pytest.mark.parametrize("name", M4)
def test_maps_dtypes_and_non_contiguous(name):
    make = DETECTORS_4D[name]
    ref = make().fit(X4)
    expected = ref.score_samples(X4)
    np.testing.assert_allclose(ref.score_samples(X4[:1]), expected[:1], rtol=1e-10)
    for Xnc in (np.asfortranarray(X4), np.repeat(X4, 2, axis=3)[:, :, :, ::2],
                X4.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)):
        assert not Xnc.flags.c_contiguous
        np.testing.assert_allclose(ref.score_samples(Xnc), expected, rtol=1e-10, atol=1e-12)
    for dtype in (np.int64, np.float16, np.float32):
        Xd = (X4 * 4).astype(dtype)
        s = make().fit(Xd).score_samples(Xd)
        s64 = make().fit(Xd.astype(np.float64)).score_samples(Xd.astype(np.float64))
        rtol = 1e-5 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(s, s64, rtol=rtol, atol=1e-6)
