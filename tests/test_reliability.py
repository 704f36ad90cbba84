"""Reliability: bad inputs, hook hygiene, persistence, determinism.

Every estimator either raises a clear ValueError/TypeError (asserted on a
message fragment) or returns a documented, finite result; a failed call never
changes a fitted estimator; hooks never outlive a call; fitted pipelines
survive pickle/joblib; seeded runs are bit-for-bit reproducible on CPU.
"""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline

from sklearn_ood.model_detectors.block_selection import BlockSelection
from sklearn_ood.detectors import (
    ASH,
    DICE,
    KNN,
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
from sklearn_ood.extraction import BlockFeatureExtractor, iter_block_batches
from sklearn_ood.metrics import auroc_scorer
from sklearn_ood.models import SmallCNN, make_classifier
from sklearn_ood.pseudo_ood import jigsaw


# --------------------------------------------------------------------------- models
class TinyNet(torch.nn.Module):
    """Module-level (picklable) 1-channel CNN: two conv blocks, pool, fc (3 classes)."""

    def __init__(self, fail=False):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.block1 = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU())
        self.block2 = torch.nn.Sequential(
            torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), torch.nn.BatchNorm2d(6),
            torch.nn.ReLU(),
        )
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.flat = torch.nn.Flatten()
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(6, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.fail = fail

    def forward(self, x):
        x = self.block1(x)
        if self.fail:
            raise RuntimeError("boom inside forward")
        x = self.block2(x)
        return self.fc(self.drop(self.flat(self.pool(x))))


def no_hooks(model):
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in model.modules()
    )


def modes(model):
    return [m.training for m in model.modules()]


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


def state(est):
    return pickle.dumps(est.__dict__)


def assert_unchanged_after_error(est, call, exc, match):
    before = state(est)
    with pytest.raises(exc, match=match):
        call()
    assert state(est) == before, "a failed call changed the fitted estimator"


ALL_2D = list(DETECTORS_2D)


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
    """Finite but extreme features: no NaN score, fit or score (an error is fine)."""
    make, needs_y = DETECTORS_2D[name]
    Xs = X2 * scale
    try:
        est = make().fit(X2, Y if needs_y else None)
    except ValueError:  # pragma: no cover
        return
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


@pytest.mark.parametrize("name", ALL_2D)
def test_fit_on_overflowing_features_clear_error_or_valid_threshold(name):
    """Fitting on features around 1e200: a ValueError, or a non-NaN offset_ and scores."""
    make, needs_y = DETECTORS_2D[name]
    with np.errstate(all="ignore"):
        try:
            est = make().fit(X2 * 1e200, Y if needs_y else None)
        except ValueError:  # incl. numpy LinAlgError, a ValueError subclass
            return
        s = est.score_samples(X2 * 1e200)
        pred = est.predict(X2 * 1e200)
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


# ----------------------------------------------------------- bad input: extractor
def test_extractor_bad_inputs():
    net = TinyNet()
    ext = BlockFeatureExtractor(net, ["block1", "block2"]).fit(IMAGES)
    expected = ext.transform(IMAGES)
    for bad, match in [(np.nan, "NaN"), (np.inf, "infinity")]:
        Xb = IMAGES.copy()
        Xb[0, 0, 1, 1] = bad
        assert_unchanged_after_error(ext, lambda: ext.transform(Xb), ValueError, match)
        assert_unchanged_after_error(ext, lambda: ext.fit(Xb), ValueError, match)
    assert_unchanged_after_error(ext, lambda: ext.transform(IMAGES[:0]), ValueError, "empty")
    assert_unchanged_after_error(ext, lambda: ext.transform(IMAGES[0, 0, 0]), ValueError,
                                 "sample dimension|2D array")
    assert_unchanged_after_error(ext, lambda: ext.transform(np.repeat(IMAGES, 3, axis=1)),
                                 ValueError, "fitted on samples of shape")
    assert_unchanged_after_error(ext, lambda: ext.transform(IMAGES[:, 0]), ValueError,
                                 "fitted on samples of shape")
    assert_unchanged_after_error(ext, lambda: ext.fit(IMAGES.astype(object)), TypeError,
                                 "numeric")
    # one sample, dtypes (cast to the model's float32), non-contiguous input
    np.testing.assert_allclose(ext.transform(IMAGES[3:4]), expected[3:4], rtol=1e-5,
                               atol=1e-6)
    for Xd in (IMAGES.astype(np.float64), np.asfortranarray(IMAGES),
               np.repeat(IMAGES, 2, axis=3)[..., ::2], torch.from_numpy(IMAGES)):
        out = ext.transform(Xd)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, expected)
    ints = (IMAGES * 10).astype(np.int64)
    np.testing.assert_array_equal(ext.transform(ints), ext.transform(ints.astype(np.float32)))
    halves = IMAGES.astype(np.float16)
    np.testing.assert_array_equal(ext.transform(halves),
                                  ext.transform(halves.astype(np.float32)))
    assert no_hooks(net)


def test_extractor_unknown_block_and_wrong_channels():
    net = TinyNet()
    with pytest.raises(ValueError, match="Unknown block"):
        BlockFeatureExtractor(net, ["block1", "layer9"]).fit(IMAGES)
    with pytest.raises(ValueError, match="Unknown block"):
        BlockSelection(net, blocks=["nope"]).fit(IMAGES)
    ext = BlockFeatureExtractor(net, "block2").fit(IMAGES)
    before = state(ext)
    # The model takes 1 channel: 3-channel images fail inside torch's conv.
    with pytest.raises((ValueError, RuntimeError), match="channels"):
        ext.fit(np.repeat(IMAGES, 3, axis=1))
    assert state(ext) == before
    assert no_hooks(net)


def test_block_selection_bad_inputs():
    net = TinyNet()
    det = BlockSelection(net, random_state=0).fit(IMAGES)
    s = det.score_samples(IMAGES)
    assert np.isfinite(s).all()
    np.testing.assert_allclose(det.score_samples(IMAGES[2:3]), s[2:3], rtol=1e-5)
    Xb = IMAGES.copy()
    Xb[0, 0, 0, 0] = np.nan
    assert_unchanged_after_error(det, lambda: det.fit(Xb), ValueError, "NaN")
    assert_unchanged_after_error(det, lambda: det.score_samples(Xb), ValueError, "NaN")
    assert_unchanged_after_error(det, lambda: det.score_samples(IMAGES[:, 0]), ValueError,
                                 "expects images")
    assert_unchanged_after_error(det, lambda: det.score_samples(IMAGES[:0]), ValueError,
                                 "empty")
    assert_unchanged_after_error(det, lambda: det.score_samples(np.repeat(IMAGES, 2, 1)),
                                 ValueError, "channels")
    np.testing.assert_allclose(det.score_samples(IMAGES.astype(np.float64)), s, rtol=1e-6)
    assert no_hooks(net)


# ------------------------------------------------------------------ hook hygiene
def mixed_mode_net(fail=False):
    net = TinyNet(fail=fail)
    net.train()
    net.block2.eval()
    net.drop.eval()
    net.block1[1].train()
    return net


def test_hooks_removed_and_modes_restored_after_normal_calls():
    net = mixed_mode_net()
    flags = modes(net)
    BlockFeatureExtractor(net, ["block1", "block2", "fc"]).fit(IMAGES).transform(IMAGES)
    det = BlockSelection(net, blocks=["block1", "block2"], random_state=0).fit(IMAGES)
    det.score_samples(IMAGES)
    make_pipeline(BlockFeatureExtractor(net, "block2", reduce=["max", "avg"]),
                  NAP()).fit(IMAGES).score_samples(IMAGES)
    assert no_hooks(net)
    assert modes(net) == flags


def test_hooks_removed_and_modes_restored_after_exception_in_forward():
    net = mixed_mode_net()
    flags = modes(net)
    ext = BlockFeatureExtractor(net, "block2").fit(IMAGES)
    net.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        ext.transform(IMAGES)
    with pytest.raises(RuntimeError, match="boom"):
        BlockFeatureExtractor(net, "block2").fit(IMAGES)
    with pytest.raises(RuntimeError, match="boom"):
        BlockSelection(net, blocks=["block1", "block2"]).fit(IMAGES)
    assert no_hooks(net)
    assert modes(net) == flags


def test_hooks_removed_after_error_in_reduce_and_early_close():
    net = mixed_mode_net()
    flags = modes(net)

    def bad_reduce(t):
        raise ZeroDivisionError("bad reduce")

    ext = BlockFeatureExtractor(net, "block1", reduce=lambda t: t.flatten(1)).fit(IMAGES)
    ext.set_params(reduce=bad_reduce)
    with pytest.raises(ZeroDivisionError):
        ext.transform(IMAGES)
    assert no_hooks(net) and modes(net) == flags
    gen = iter_block_batches(net, ["block1"], torch.from_numpy(IMAGES), batch_size=4)
    next(gen)
    assert not no_hooks(net)  # a generator half way through holds its hook ...
    gen.close()
    assert no_hooks(net) and modes(net) == flags  # ... and close() removes it


# ------------------------------------------------------------------ persistence
def fitted_pipelines():
    net = TinyNet()
    head = net.fc
    return {
        "energy": make_pipeline(BlockFeatureExtractor(net, "flat"), Energy(head)),
        "knn": make_pipeline(BlockFeatureExtractor(net, "flat"), KNN(n_neighbors=2)),
        "mahalanobis": make_pipeline(BlockFeatureExtractor(net, "flat"), Mahalanobis()),
        "nap": make_pipeline(BlockFeatureExtractor(net, "block2", reduce=["max", "avg"]),
                             NAP(head, weight=0.4)),
        "featurenorm": make_pipeline(BlockFeatureExtractor(net, "block2", reduce="norm"),
                                     FeatureNorm()),
        "block_selection": BlockSelection(net, random_state=0),
    }


@pytest.mark.parametrize("name", list(fitted_pipelines()))
def test_pickle_and_joblib_round_trip(name, tmp_path):
    pipe = fitted_pipelines()[name].fit(IMAGES)
    expected = pipe.score_samples(IMAGES)
    pred = pipe.predict(IMAGES)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.score_samples(IMAGES), expected)
    np.testing.assert_array_equal(restored.predict(IMAGES), pred)
    joblib.dump(pipe, tmp_path / "p.joblib")
    restored = joblib.load(tmp_path / "p.joblib")
    np.testing.assert_array_equal(restored.score_samples(IMAGES), expected)


def test_grid_search_n_jobs_2_on_torch_pipeline():
    rng = np.random.default_rng(1)
    X_id = rng.random((24, 1, 8, 8), dtype=np.float32)
    X_ood = rng.random((24, 1, 8, 8), dtype=np.float32) * 3.0 + 1.0
    X = np.concatenate([X_id, X_ood])
    y = np.r_[np.arange(24) % 3, -np.ones(24, dtype=int)]
    pipe = make_pipeline(BlockFeatureExtractor(TinyNet(), "flat"), KNN())
    search = GridSearchCV(
        pipe, {"knn__n_neighbors": [1, 3]}, scoring=auroc_scorer, n_jobs=2,
        cv=KFold(2, shuffle=True, random_state=0),
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["knn__n_neighbors"] in (1, 3)
    assert search.best_score_ > 0.9


# ------------------------------------------------------------------ determinism
def _digits(n=120):
    X, y = load_digits(return_X_y=True)
    return (X[:n] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), y[:n].astype(np.int64)


def _train_and_score(X, y):
    net = make_classifier(SmallCNN, max_epochs=1, width=4, num_classes=10, batch_size=32,
                          random_state=0).fit(X, y)
    module = net.module_
    pipe = make_pipeline(BlockFeatureExtractor(module, "penultimate"), Energy(module.fc))
    return pipe.fit(X).score_samples(X), [p.detach().clone() for p in module.parameters()]


def test_same_seed_same_model_same_scores_bit_for_bit():
    X, y = _digits()
    s1, p1 = _train_and_score(X, y)
    s2, p2 = _train_and_score(X, y)
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))
    np.testing.assert_array_equal(s1, s2)


def test_block_selection_and_jigsaw_deterministic_with_random_state():
    X, _ = _digits(40)
    np.testing.assert_array_equal(jigsaw(X, 3, random_state=0), jigsaw(X, 3, random_state=0))
    net = TinyNet()
    a = BlockSelection(net, blocks=["block1", "block2"], random_state=0).fit(X)
    b = BlockSelection(net, blocks=["block1", "block2"], random_state=0).fit(X)
    assert a.norm_ratios_ == b.norm_ratios_ and a.block_ == b.block_
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
