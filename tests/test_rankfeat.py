"""RankFeat against a hand-computed SVD and a plain power-iteration reference."""

import math

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ood._base import BaseDetector
from sklearn_ood.detectors.rankfeat import RankFeat

from _helpers import AutoHead, energy_loop, head_3_to_4


def rank1_removed_pooled_loop(F, steps=500):
    """Per sample: power iteration for (sigma, u, v), subtract, mean over positions."""
    out = []
    for sample in F:
        M = [list(row.ravel()) for row in sample]  # C rows of H*W entries
        C, P = len(M), len(M[0])
        v = [1.0 + 0.1 * j for j in range(P)]
        for _ in range(steps):
            u = [sum(M[i][j] * v[j] for j in range(P)) for i in range(C)]
            nu = math.sqrt(sum(x * x for x in u))
            u = [x / nu for x in u]
            v = [sum(M[i][j] * u[i] for i in range(C)) for j in range(P)]
            nv = math.sqrt(sum(x * x for x in v))
            v = [x / nv for x in v]
        sigma = sum(u[i] * M[i][j] * v[j] for i in range(C) for j in range(P))
        out.append([sum(M[i][j] - sigma * u[i] * v[j] for j in range(P)) / P
                    for i in range(C)])
    return out


def test_diagonal_map_by_hand():
    # one sample, C = 2, positions 2: diag(3, 1) -> rank-1 part is the 3
    F = np.array([[[[3.0, 0.0]], [[0.0, 1.0]]]])
    W, b = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0.0, 0.5])
    det = RankFeat((W, b)).fit(F)
    # pooled (0, 0.5) -> logits (0, 1.5)
    np.testing.assert_allclose(det.score_samples(F), [math.log(1 + math.exp(1.5))])
    det2 = RankFeat((W, b), temperature=2.0).fit(F)
    np.testing.assert_allclose(det2.score_samples(F),
                               [2 * math.log(1 + math.exp(0.75))])


def test_random_maps_against_power_iteration():
    rng = np.random.default_rng(0)
    F = np.abs(rng.normal(size=(5, 4, 3, 2)))  # post-ReLU-like, sigma_1 well separated
    W, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    det = RankFeat((W, b)).fit(F)
    expected = energy_loop(rank1_removed_pooled_loop(F), W, b)
    np.testing.assert_allclose(det.score_samples(F), expected, rtol=1e-7)
    # (N, C, H*W, 1), as the benchmark's "maps", gives the same scores
    np.testing.assert_allclose(det.score_samples(F.reshape(5, 4, 6, 1)), expected, rtol=1e-7)


def test_2d_input_says_what_to_pass():
    with pytest.raises(ValueError, match=r"needs 4-D feature maps .*reduce=None"):
        RankFeat((np.eye(2), np.zeros(2))).fit(np.ones((3, 2)))


def test_bad_maps_leave_detector_unchanged():
    rng = np.random.default_rng(1)
    maps = np.abs(rng.normal(size=(8, 4, 3, 3)))
    det = RankFeat((rng.normal(size=(2, 4)), np.zeros(2)))
    with pytest.raises(ValueError, match="2-D"):
        RankFeat((np.eye(4), np.zeros(4))).fit(maps.reshape(8, -1)[:, :4])
    check_bad_maps_leave_detector_unchanged_but_2d(det, maps)


def check_bad_maps_leave_detector_unchanged_but_2d(det, maps):
    det.fit(maps)
    offset = det.offset_
    bad = maps.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.fit(bad)
    with pytest.raises(ValueError, match="channels"):
        det.score_samples(maps[:, :2])
    assert det.offset_ == offset


# -------------------------------------------------------- scikit-learn checks
class AutoMapsRankFeat(AutoHead, RankFeat):
    """Test-only: a 2-D row x becomes the map with positions (x, x**2 + 1).

    The checks feed 2-D features; this keeps every line of RankFeat except
    where the 4-D map comes from (rank-2 maps, so the removal leaves a signal).
    """

    def _validate_input(self, X, *, reset):
        X = BaseDetector._validate_input(self, X, reset=reset)
        if X.ndim == 2:
            X = np.stack([X, X ** 2 + 1.0], axis=-1)[:, :, None, :]
        return X


def needs_maps(estimator):
    if isinstance(estimator, AutoMapsRankFeat):
        return {}
    reason = ("RankFeat needs 4-D maps (N, C, H, W); the check feeds 2-D features and "
              "fit raises 'needs 4-D feature maps'")
    return dict.fromkeys(REAL_FAILURES, reason)


#: Every check that fits on 2-D data (all of the rest pass on the real class too).
REAL_FAILURES = [
    "check_classifier_data_not_an_array", "check_dict_unchanged",
    "check_dont_overwrite_parameters", "check_dtype_object", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_nan_inf",
    "check_estimators_overwrite_params", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent",
    "check_fit_score_takes_y", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_outliers_fit_predict",
    "check_outliers_train", "check_pipeline_consistency",
    "check_positive_only_tag_during_fit", "check_readonly_memmap_input",
]


@parametrize_with_checks([AutoMapsRankFeat(), RankFeat(head_3_to_4())],
                         expected_failed_checks=needs_maps, xfail_strict=True)
def test_sklearn_compatible(estimator, check):
    check(estimator)
