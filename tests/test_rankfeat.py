"""RankFeat against a hand-computed SVD and a plain power-iteration reference."""

import math

import numpy as np
import pytest

from sklearn_ood.detectors.rankfeat import RankFeat

from _helpers import energy_loop


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
