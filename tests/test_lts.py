"""LTS against a plain-loop reference of the official code's formula."""

import math

import numpy as np
import pytest

from sklearn_ood import LTS

from _helpers import (
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
    lse,
)

H = np.array([[1.0, 2.0, 0.0, 1.0], [0.5, -0.1, 3.0, 0.2], [1.0, 1.0, 1.0, 1.0],
              [-1.0, -2.0, 0.0, -0.5]])
HEAD = (np.array([[1.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.5, 0.0]]), np.array([0.2, -0.3]))


def lts_loop(h, W, b, p):
    a = [max(v, 0.0) for v in h]
    k = max(1, len(a) - round(len(a) * p / 100))  # Python's round halves to even, as NumPy's
    top = sum(sorted(a, reverse=True)[:k])
    s = (sum(a) / top) ** 2 if top > 0 else 1.0
    return lse([s * (sum(w * v for w, v in zip(w_k, h)) + b_k) for w_k, b_k in zip(W, b)])


def test_lts_by_hand():
    # row 0, p = 50: k = 2, a = (1, 2, 0, 1): s = (4 / 3)^2; row 3 has no positive entry: s = 1
    z0 = [1.0 - 0.0 + 0.5 + 0.2, 2.0 - 0.3]
    assert lts_loop(H[0], *HEAD, 50) == pytest.approx(lse([(4 / 3) ** 2 * v for v in z0]))
    for p in (0, 50, 95, 99.9):
        det = LTS(HEAD, percentile=p).fit(H)
        np.testing.assert_allclose(det.score_samples(H), [lts_loop(h, *HEAD, p) for h in H])


def test_scale_one_when_the_top_k_holds_everything():
    # percentile 0 keeps every entry: s = 1, the plain energy of the logits
    det = LTS(HEAD, percentile=0).fit(H)
    z = H @ HEAD[0].T + HEAD[1]
    np.testing.assert_allclose(det.score_samples(H), [math.log(np.exp(r).sum()) for r in z])


def test_missing_head_is_a_clear_error():
    check_missing_head_is_a_clear_error(LTS)


def test_bad_input_leaves_fitted_estimator_unchanged():
    check_bad_input_leaves_fitted_estimator_unchanged(LTS)


def test_float32_input_gives_float64_scores():
    check_float32_input_gives_float64_scores(LTS)
