"""FeatureNorm against hand-checkable computations."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.pipeline import make_pipeline

from sklearn_ood.detectors.feature_norm import FeatureNorm, feature_norm
from sklearn_ood.extraction import BlockFeatureExtractor

from _helpers import check_bad_maps_leave_detector_unchanged, images, small_net

# (2, 3, 2, 2) maps with negative entries. By hand, per-channel norms of ReLU(map):
#   sample 0: ch0 relu -> 3,4,0,0 -> 5;  ch1 all negative -> 0;  ch2 -> 1,1,1,1 -> 2
#   sample 1: ch0 -> 2;  ch1 -> 6,0,0,0 -> 6;  ch2 -> 0,2,2,1 -> 3
# FeatureNorm = mean over channels: 7/3 and 11/3.
MAPS = np.array(
    [
        [[[3.0, 4.0], [0.0, -5.0]], [[-1.0, -2.0], [-3.0, -4.0]], [[1.0, 1.0], [1.0, 1.0]]],
        [[[0.0, 0.0], [0.0, 2.0]], [[6.0, -8.0], [0.0, 0.0]], [[-1.0, 2.0], [2.0, 1.0]]],
    ]
)
FN_BY_HAND = np.array([7 / 3, 11 / 3])


def loop_feature_norm(maps):
    out = []
    for sample in maps:
        total = 0.0
        for channel in sample:
            total += math.sqrt(sum(max(v, 0.0) ** 2 for v in channel.ravel()))
        out.append(total / len(sample))
    return np.array(out)


def test_feature_norm_matches_hand_values_and_loops():
    np.testing.assert_allclose(loop_feature_norm(MAPS), FN_BY_HAND)
    np.testing.assert_allclose(feature_norm(MAPS), FN_BY_HAND)
    det = FeatureNorm().fit(MAPS)
    np.testing.assert_allclose(det.score_samples(MAPS), FN_BY_HAND)
    assert det.n_features_in_ == 3


def test_feature_norm_is_not_frobenius_nor_pooled_norm():
    relu = np.maximum(MAPS, 0)
    frobenius = np.sqrt((relu**2).sum(axis=(1, 2, 3)))
    pooled = np.linalg.norm(relu.mean(axis=(2, 3)), axis=1)
    no_relu = np.sqrt((MAPS**2).sum(axis=(2, 3))).mean(axis=1)
    scores = FeatureNorm().fit(MAPS).score_samples(MAPS)
    for wrong in (frobenius, frobenius / 3, pooled, no_relu):
        assert not np.allclose(scores, wrong)


def test_feature_norm_2d_is_mean_relu():
    X = np.array([[5.0, -3.0, 1.0], [0.0, 0.0, -1.0]])
    np.testing.assert_allclose(FeatureNorm().fit(X).score_samples(X), [2.0, 0.0])


def test_feature_norm_per_batch_path_equals_maps():
    net, X = small_net(), images()
    for block in ("2", "3"):
        maps = BlockFeatureExtractor(net, block, reduce=None).fit(X).transform(X)
        assert (maps < 0).any() or block == "3"
        expected = loop_feature_norm(maps.astype(np.float64))
        np.testing.assert_allclose(FeatureNorm().fit(maps).score_samples(maps), expected,
                                   rtol=1e-5)
        pipe = make_pipeline(
            BlockFeatureExtractor(net, block, reduce="norm", batch_size=5), FeatureNorm()
        ).fit(X)
        np.testing.assert_allclose(pipe.score_samples(X), expected, rtol=1e-5)


def test_bad_input_leaves_fitted_detector_unchanged():
    check_bad_maps_leave_detector_unchanged(FeatureNorm(), MAPS)


def test_offset_and_predict_follow_contamination():
    X = np.arange(1.0, 41.0).reshape(20, 2)  # FeatureNorm = row mean, all distinct
    det = FeatureNorm(contamination=0.1).fit(X)
    np.testing.assert_allclose(det.offset_, np.percentile(X.mean(axis=1), 10))
    assert (det.predict(X) == -1).sum() == 2
    np.testing.assert_allclose(det.decision_function(X), det.score_samples(X) - det.offset_)


MAPS_STRATEGY = arrays(
    np.float64, st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
                          st.integers(1, 3)),
    elements=st.floats(-10, 10, allow_nan=False, width=32),
)


@settings(max_examples=40, deadline=None)
@given(maps=MAPS_STRATEGY, scale=st.floats(0.1, 10), seed=st.integers(0, 2**16))
def test_feature_norm_properties(maps, scale, seed):
    # Invariant to the order of channels and of pixels, positively homogeneous,
    # blind to negative entries.
    rng = np.random.default_rng(seed)
    n, c, h, w = maps.shape
    shuffled = maps[:, rng.permutation(c)].reshape(n, c, h * w)[:, :, rng.permutation(h * w)]
    shuffled = shuffled.reshape(n, c, h, w)
    np.testing.assert_allclose(feature_norm(shuffled), feature_norm(maps),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(feature_norm(scale * maps), scale * feature_norm(maps),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(feature_norm(np.minimum(maps, 0)), 0.0)
