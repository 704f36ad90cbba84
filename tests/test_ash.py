"""ASH against hand-shaped rows and energies.

Expected scores come from literal numbers or from explicit loops over samples,
classes and features written independently of the vectorised implementation.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.model_selection import ParameterGrid

from sklearn_ood.detectors.ash import ASH, ash

from _helpers import (
    float32_features,
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
    energy_loop,
)
from sklearn_ood.discovery import tuning_grid


ASH_ROW = np.array([[1.0, 4.0, 0.0, 2.0, 3.0]])  # D=5, p=60: k = 5 - 3 = 2


def test_ash_variants_literal():
    np.testing.assert_array_equal(ash(ASH_ROW, "p", 60), [[0, 4, 0, 0, 3]])
    # s1 = 10, k = 2
    np.testing.assert_array_equal(ash(ASH_ROW, "b", 60), [[0, 5, 0, 0, 5]])
    # s2 = 7
    scale = math.exp(10 / 7)
    np.testing.assert_allclose(ash(ASH_ROW, "s", 60), [[0, 4 * scale, 0, 0, 3 * scale]])


def test_ash_ties_rounding_and_k_zero():
    # ties: exactly k entries kept, lowest index first
    tied = np.array([[2.0, 1.0, 2.0, 2.0]])  # D=4, p=50: k = 2
    np.testing.assert_array_equal(ash(tied, "p", 50), [[2, 0, 2, 0]])
    np.testing.assert_array_equal(ash(tied, "b", 50), [[3.5, 0, 3.5, 0]])  # s1 / k = 7 / 2
    # round half to even like np.round: 5 * 0.5 = 2.5 -> 2 pruned, k = 3
    assert np.count_nonzero(ash(ASH_ROW + 1, "p", 50)) == 3
    # 5 * 0.7 = 3.5 -> 4 pruned, k = 1
    assert np.count_nonzero(ash(ASH_ROW + 1, "p", 70)) == 1
    # percentile 100: k = 0, every variant gives zeros (no division by zero)
    for variant in "pbs":
        np.testing.assert_array_equal(ash(ASH_ROW, variant, 100), np.zeros((1, 5)))


def test_ash_tie_rule_on_a_long_row():
    h = np.array([[float((7 * j) % 3) for j in range(64)]])  # values 0, 1, 2
    k = 64 - 38  # round(64 * 0.6) = round(38.4)
    order = sorted(range(64), key=lambda j: (-h[0, j], j))[:k]  # value, then index
    expected = np.zeros_like(h)
    expected[0, order] = h[0, order]
    np.testing.assert_array_equal(ash(h, "p", 60), expected)


@pytest.mark.parametrize("variant", ["p", "b", "s"])
def test_ash_estimator_scores(variant):
    W = np.array([[1.0, 0.0, -1.0, 0.5, 0.0], [0.0, 0.5, 1.0, 0.0, -0.5]])
    b = np.array([0.1, -0.3])
    X = np.vstack([ASH_ROW, [[0.0, 0.0, 0.0, 0.0, 0.0]], [[3.0, 1.0, 2.0, 0.0, 0.5]]])
    # hand-shaped rows at p=60 (k = 2): row 3 keeps 3 and 2 (s1 = 6.5, s2 = 5)
    shaped = {
        "p": [[0, 4, 0, 0, 3], [0] * 5, [3, 0, 2, 0, 0]],
        "b": [[0, 5, 0, 0, 5], [0] * 5, [3.25, 0, 3.25, 0, 0]],
        "s": [
            [0, 4 * math.exp(10 / 7), 0, 0, 3 * math.exp(10 / 7)],
            [0] * 5,  # s2 = 0: no rescaling, no NaN
            [3 * math.exp(1.3), 0, 2 * math.exp(1.3), 0, 0],
        ],
    }[variant]
    det = ASH((W, b), variant=variant, percentile=60).fit(X)
    np.testing.assert_allclose(det.score_samples(X), energy_loop(shaped, W, b))


@pytest.mark.parametrize("variant", ["p", "b", "s"])
def test_float32_features_scored_in_float32_close_to_float64_by_hand(variant):
    X, (W, b) = float32_features()
    k = 64 - round(64 * 0.9)  # 6 kept per row
    shaped = []
    for x in X.astype(np.float64):
        keep = sorted(range(64), key=lambda j: (-x[j], j))[:k]
        s1, s2 = x.sum(), x[keep].sum()
        value = {"p": lambda j: x[j], "b": lambda j: s1 / k,
                 "s": lambda j: x[j] * math.exp(s1 / s2)}[variant]
        shaped.append([value(j) if j in keep else 0.0 for j in range(64)])
    det = ASH((W, b), variant=variant).fit(X)
    # scored in float32: relative errors of order 1e-7
    np.testing.assert_allclose(det.score_samples(X), energy_loop(shaped, W, b), rtol=1e-5)


def test_ash_s_overflow_gives_inf_not_nan():
    # D = 1000 equal entries, p = 99.9: k = 1, s1 / s2 = 1000, exp(1000) overflows
    h = np.ones((1, 1000))
    heads = {
        "positive": (np.vstack([np.ones(1000), -np.ones(1000)]), np.zeros(2)),
        "zero": (np.vstack([-np.ones(1000), np.zeros(1000)]), np.array([0.0, 0.7])),
        "negative": (np.vstack([-np.ones(1000), -np.ones(1000)]), np.zeros(2)),
    }
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for name, head in heads.items():
            det = ASH(head, variant="s", percentile=99.9).fit(np.zeros((2, 1000)))
            scores[name] = det.score_samples(h)
    assert scores["positive"][0] == np.inf
    assert scores["zero"][0] == 0.7  # the class with no contribution keeps its bias
    assert scores["negative"][0] == -np.inf


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (3, 7), elements=st.floats(0, 10, allow_subnormal=False)),
    st.sampled_from([0, 30, 50, 65, 90, 100]),
)
def test_ash_properties(h, percentile):
    k = 7 - int(np.round(7 * percentile / 100))
    pruned, binarized, scaled = (ash(h, v, percentile) for v in "pbs")
    for row, p_row, b_row, s_row in zip(h, pruned, binarized, scaled):
        kept, dropped = p_row[p_row != 0], row[p_row == 0]
        assert kept.size <= k
        if kept.size and dropped.size:
            assert kept.min() >= dropped.max()
        np.testing.assert_allclose(b_row.sum(), row.sum() if k else 0.0)
        s1, s2 = row.sum(), p_row.sum()
        if s2 > 0:
            np.testing.assert_allclose(s_row.sum(), s2 * math.exp(s1 / s2))


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([np.float32, np.float64]).flatmap(lambda dtype: arrays(
        dtype, st.tuples(st.integers(1, 4), st.integers(1, 12)),
        elements=st.sampled_from([0.0, 1.0, 2.0, 2.5]))),
    st.sampled_from([0, 10, 50, 65, 90, 100]),
)
def test_ash_keeps_the_k_largest_lowest_index_first_with_many_ties(h, percentile):
    d = h.shape[1]
    k = d - int(np.round(d * percentile / 100))
    binarized = ash(h, "b", percentile)  # kept entries (zeros too) become s1 / k
    for row, b_row in zip(h.astype(np.float64), binarized):
        keep = sorted(range(d), key=lambda j: (-row[j], j))[:k]
        expected = [row.sum() / k if j in keep else 0.0 for j in range(d)]
        np.testing.assert_allclose(b_row, expected, rtol=1e-6)


def test_tuning_grid_candidates_fit():
    candidates = list(ParameterGrid(tuning_grid(ASH, len(ASH_ROW))))
    assert len(candidates) == 5
    # ASH_ROW = [1, 4, 0, 2, 3]: k = 5 - round(5 * p / 100) entries kept
    pruned = {
        50: [[0, 4, 0, 2, 3]],  # round(2.5) = 2: k = 3
        65: [[0, 4, 0, 0, 3]],  # round(3.25) = 3: k = 2
        80: [[0, 4, 0, 0, 0]],  # k = 1
        90: [[0, 4, 0, 0, 0]],  # round(4.5) = 4: k = 1
        95: [[0, 0, 0, 0, 0]],  # round(4.75) = 5: k = 0
    }
    W, b = np.eye(5), np.zeros(5)
    det = ASH((W, b), variant="p")
    for params in candidates:
        det.set_params(**params).fit(ASH_ROW)
        np.testing.assert_allclose(det.score_samples(ASH_ROW),
                                   energy_loop(pruned[params["percentile"]], W, b))

# ------------------------------------------------------------- shared behaviour
def test_missing_head_is_a_clear_error():
    check_missing_head_is_a_clear_error(ASH)


def test_bad_input_leaves_fitted_estimator_unchanged():
    check_bad_input_leaves_fitted_estimator_unchanged(ASH)


def test_float32_input_gives_float64_scores():
    check_float32_input_gives_float64_scores(ASH)
