"""DICE against hand-checked weight masks and energies.

Expected scores come from literal numbers or from explicit loops over samples,
classes and features written independently of the vectorised implementation.
"""

import math

import numpy as np
from sklearn.model_selection import ParameterGrid

from sklearn_ood.detectors.dice import DICE

from _helpers import (
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
    energy_loop,
)
from sklearn_ood.discovery import tuning_grid


DICE_W = np.array([[1.0, 2.0, 3.0], [0.1, 0.2, 0.3]])
DICE_B = np.array([0.2, -0.1])
DICE_TRAIN = np.array([[2.0, 0.0, 1.0], [4.0, 2.0, 0.0]])  # mean (3, 1, 0.5)


def test_dice_mask_over_all_entries_with_training_mean():
    det = DICE((DICE_W, DICE_B), percentile=70).fit(DICE_TRAIN)
    np.testing.assert_array_equal(det.feature_mean_, [3.0, 1.0, 0.5])
    # contrib = [[3, 2, 1.5], [.3, .2, .15]]; sorted .15 .2 .3 1.5 2 3;
    # position 0.7 * 5 = 3.5 -> threshold 1.75 over all 6 entries.
    # (Per row: [T, F, F] / [T, F, F]; with W alone: threshold 1.5 -> [F, T, T].)
    expected_mask = [[True, True, False], [False, False, False]]
    np.testing.assert_array_equal(det.mask_, expected_mask)
    X = np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 5.0]])
    masked = [[DICE_W[k][j] if expected_mask[k][j] else 0.0 for j in range(3)]
              for k in range(2)]
    np.testing.assert_allclose(det.score_samples(X), energy_loop(X, masked, DICE_B))


def test_dice_strict_threshold_and_refit():
    # all contributions equal: percentile == every entry, strict > keeps none
    det = DICE((np.ones((2, 3)), np.zeros(2)), percentile=50).fit(np.ones((2, 3)))
    assert not det.mask_.any()
    np.testing.assert_allclose(det.score_samples(np.ones((1, 3))), [math.log(2.0)])
    det = DICE((DICE_W, DICE_B), percentile=70).fit(DICE_TRAIN)
    assert det.set_params(percentile=0).fit(DICE_TRAIN).mask_.sum() == 5


def test_tuning_grid_candidates_fit():
    candidates = list(ParameterGrid(tuning_grid(DICE, len(DICE_TRAIN))))
    assert len(candidates) == 5
    # contributions sorted .15 .2 .3 1.5 2 3; the p-th percentile sits at 5 * p / 100:
    # 10 -> .175, 30 -> .25, 50 -> .9, 70 -> 1.75, 90 -> 2.5; strict > keeps 5 .. 1 weights
    kept = {10: 5, 30: 4, 50: 3, 70: 2, 90: 1}
    det = DICE((DICE_W, DICE_B))
    for params in candidates:
        det.set_params(**params).fit(DICE_TRAIN)
        assert det.mask_.sum() == kept[params["percentile"]]
        masked = np.where(det.mask_, DICE_W, 0.0)
        np.testing.assert_allclose(det.score_samples(DICE_TRAIN),
                                   energy_loop(DICE_TRAIN, masked, DICE_B))

# ------------------------------------------------------------- shared behaviour
def test_missing_head_is_a_clear_error():
    check_missing_head_is_a_clear_error(DICE)


def test_bad_input_leaves_fitted_estimator_unchanged():
    check_bad_input_leaves_fitted_estimator_unchanged(DICE)


def test_float32_input_gives_float64_scores():
    check_float32_input_gives_float64_scores(DICE)
