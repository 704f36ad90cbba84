"""NegativeAwareNorm (NAN) against hand-checkable computations."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.pipeline import make_pipeline

from sklearn_ood.detectors.negative_aware_norm import (
    NegativeAwareNorm,
    l1_norm,
    negative_aware_norm,
    negative_aware_rescaled_score,
)
from sklearn_ood.extraction import BlockFeatureExtractor

from _helpers import (
    check_bad_maps_leave_detector_unchanged,
    images,
    negative_aware_norm_by_hand,
    small_net,
)

# (2, 3, 2, 2) maps with negative entries, channel by channel:
#   sample 0: [3, 4, 0, -5], [-1, -2, -3, -4], [1, 1, 1, 1]
#   sample 1: [0, 0, 0, 2], [6, -8, 0, 0], [-1, 2, 2, 1]
MAPS = np.array(
    [
        [[[3.0, 4.0], [0.0, -5.0]], [[-1.0, -2.0], [-3.0, -4.0]], [[1.0, 1.0], [1.0, 1.0]]],
        [[[0.0, 0.0], [0.0, 2.0]], [[6.0, -8.0], [0.0, 0.0]], [[-1.0, 2.0], [2.0, 1.0]]],
    ]
)


def test_negative_aware_norm_by_hand():
    a = np.array([[2.0, 0.0, 4.0, -1.0], [0.0, 0.0, 0.0, 0.0], [-1.0, -2.0, 0.0, 0.0],
                  [1.0, 1.0, 1.0, 3.0]])
    # ||a||_1 counts |-1|: 7 / 2 active; zero and all-negative rows -> 0 (guard); 6 / 4.
    expected = [3.5, 0.0, 0.0, 1.5]
    np.testing.assert_allclose(negative_aware_norm(a), expected)
    np.testing.assert_allclose(NegativeAwareNorm().fit(a).score_samples(a), expected)


def test_negative_aware_rescaled_score_by_hand():
    a = np.array([[1.0, 3.0], [0.0, -2.0], [0.0, -2.0], [0.0, 0.0], [-1.0, 4.0]])
    d = np.array([2.0, 3.0, 5.0, 0.0, 5.0])
    # NAN: 4 / 2 = 2; three rows without active unit (NAN = 0), divided by the
    # smallest positive float64 instead (5 / tiny overflows: floored at -finfo.max;
    # a zero distance stays 0); 5 / 1 = 5.
    tiny, fmax = np.finfo(np.float64).tiny, np.finfo(np.float64).max
    np.testing.assert_array_equal(negative_aware_rescaled_score(d, a),
                                  [-1.0, -3.0 / tiny, -fmax, 0.0, -1.0])


def test_negative_aware_norm_flattens_maps():
    # sample 0: sum |.| = (3+4+5) + (1+2+3+4) + 4 = 26 over 6 positives (3,4,1,1,1,1);
    # sample 1: 2 + (6+8) + (1+2+2+1) = 22 over 5 positives (2,6,2,2,1).
    maps = MAPS
    expected = []
    for sample in maps:
        values = sample.ravel()
        expected.append(sum(abs(v) for v in values) / sum(1 for v in values if v > 0))
    np.testing.assert_allclose(expected, [26 / 6, 22 / 5])
    det = NegativeAwareNorm().fit(maps)
    np.testing.assert_allclose(det.score_samples(maps), expected)
    assert det.input_ndim_ == 4
    # Per-batch path: flatten reduction then NAN.
    net, X = small_net(), images()
    raw = BlockFeatureExtractor(net, "2", reduce=None).fit(X).transform(X)
    pipe = make_pipeline(BlockFeatureExtractor(net, "2", reduce="flatten"),
                         NegativeAwareNorm()).fit(X)
    np.testing.assert_allclose(pipe.score_samples(X),
                               negative_aware_norm_by_hand(raw.astype(np.float64)), rtol=1e-5)


def test_without_the_sparsity_term_scores_the_l1_norm():
    # Table 5 ablation on MAPS: sample 0 sums |.| to 26, sample 1 to 22 (see above); NAN
    # divides them by 6 and 5 active entries, the ablation does not. The ranking flips:
    # NAN ranks sample 1 higher (26 / 6 = 4.33 < 22 / 5 = 4.4), the L1 norm sample 0.
    ablation = NegativeAwareNorm(divide_by_active=False).fit(MAPS)
    np.testing.assert_allclose(ablation.score_samples(MAPS), [26.0, 22.0])
    np.testing.assert_allclose(l1_norm(MAPS), [26.0, 22.0])
    nan = NegativeAwareNorm().fit(MAPS).score_samples(MAPS)
    assert nan[0] < nan[1] and ablation.score_samples(MAPS)[0] > ablation.score_samples(MAPS)[1]
    # offset_: the 5th percentile of the two training scores, 22 + 0.05 * (26 - 22)
    assert ablation.offset_ == pytest.approx(22.2)
    with pytest.raises(ValueError, match="divide_by_active"):
        NegativeAwareNorm(divide_by_active="yes").fit(MAPS)


def test_negative_aware_norm_reduction_keeps_one_number_per_image():
    # The extractor's "negative_aware_norm" reduction on the hand-checked maps, plus an
    # all-negative map.
    identity = torch.nn.Sequential(torch.nn.Identity())
    maps = np.concatenate([MAPS, -np.abs(MAPS[:1])]).astype(np.float32)
    ext = BlockFeatureExtractor(identity, "0", reduce="negative_aware_norm").fit(maps)
    np.testing.assert_allclose(ext.transform(maps), [[26 / 6], [22 / 5], [0.0]], rtol=1e-6)
    assert list(ext.get_feature_names_out()) == ["0__0"]
    # NAN of that single number is the number itself: same scores as the full maps.
    net, X = small_net(), images()
    raw = BlockFeatureExtractor(net, "2", reduce=None).fit(X).transform(X)
    pipe = make_pipeline(BlockFeatureExtractor(net, "2", reduce="negative_aware_norm"),
                         NegativeAwareNorm()).fit(X)
    np.testing.assert_allclose(pipe.score_samples(X),
                               negative_aware_norm_by_hand(raw.astype(np.float64)), rtol=1e-5)


def test_bad_input_leaves_fitted_detector_unchanged():
    check_bad_maps_leave_detector_unchanged(NegativeAwareNorm(), MAPS)


MAPS_STRATEGY = arrays(
    np.float64, st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
                          st.integers(1, 3)),
    elements=st.floats(-10, 10, allow_nan=False, width=32),
)


@settings(max_examples=40, deadline=None)
@given(maps=MAPS_STRATEGY, scale=st.floats(0.1, 10), seed=st.integers(0, 2**16))
def test_negative_aware_norm_properties(maps, scale, seed):
    # Invariant to the order of channels and of pixels; positively homogeneous.
    rng = np.random.default_rng(seed)
    n, c, h, w = maps.shape
    shuffled = maps[:, rng.permutation(c)].reshape(n, c, h * w)[:, :, rng.permutation(h * w)]
    shuffled = shuffled.reshape(n, c, h, w)
    np.testing.assert_allclose(negative_aware_norm(shuffled), negative_aware_norm(maps),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(negative_aware_norm(scale * maps),
                               scale * negative_aware_norm(maps), rtol=1e-10, atol=1e-12)
