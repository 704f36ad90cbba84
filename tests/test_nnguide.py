"""NNGuide: energy times the mean top-k similarity to an energy-scaled bank."""

import math

import numpy as np
import pytest
from sklearn.model_selection import ParameterGrid

from sklearn_ood.detectors.nnguide import NNGuide

from _helpers import (
    CONTRACT_HEAD,
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
    lse,
)
from sklearn_ood.discovery import tuning_grid


def _loop_nnguide(bank_rows, W, b, X, k):
    """Bank and score with explicit sums; ``bank_rows`` are the raw training rows."""
    D, K = len(W[0]), len(W)

    def energy(x):
        return lse([sum(W[c][j] * x[j] for j in range(D)) + b[c] for c in range(K)])

    def unit(x):
        n = math.sqrt(sum(v * v for v in x))
        return [v / n for v in x]

    bank = [[energy(r) * v for v in unit(r)] for r in bank_rows]
    out = []
    for x in X:
        sims = sorted((sum(u * v for u, v in zip(unit(x), row)) for row in bank), reverse=True)
        out.append(sum(sims[:k]) / k * energy(x))
    return np.array(out)


def test_nnguide_full_bank_matches_the_loop():
    W, b = CONTRACT_HEAD
    rng = np.random.default_rng(7)
    X_train, X = rng.normal(size=(12, 4)), rng.normal(size=(5, 4))
    for k in (1, 3, 12):
        det = NNGuide(CONTRACT_HEAD, n_neighbors=k, bank_fraction=1.0).fit(X_train)
        np.testing.assert_allclose(det.score_samples(X), _loop_nnguide(X_train, W, b, X, k),
                                   rtol=1e-10)


def test_nnguide_hand_values():
    # zero head: every energy is log 2; bank rows e1, e2 times log 2.
    det = NNGuide((np.zeros((2, 2)), np.zeros(2)), n_neighbors=1, bank_fraction=1.0)
    det.fit([[3.0, 0.0], [0.0, 0.5]])
    # (1, 1)/sqrt2: similarities log2/sqrt2 twice; score = log2/sqrt2 * log2
    np.testing.assert_allclose(det.score_samples([[1.0, 1.0]]),
                               [math.log(2) ** 2 / math.sqrt(2)])


def test_nnguide_bank_is_a_seeded_subset():
    W, b = CONTRACT_HEAD
    rng = np.random.default_rng(8)
    X_train, X = rng.normal(size=(200, 4)), rng.normal(size=(4, 4))
    det = NNGuide(CONTRACT_HEAD, n_neighbors=3, bank_fraction=0.05, random_state=0).fit(X_train)
    assert det.bank_.shape == (10, 4)  # 5 % of 200
    rows = np.sort(np.random.RandomState(0).choice(200, 10, replace=False))
    np.testing.assert_allclose(det.score_samples(X), _loop_nnguide(X_train[rows], W, b, X, 3),
                               rtol=1e-10)
    # 1 % of 200 = 2 rows, fewer than n_neighbors: the bank holds n_neighbors rows
    det = NNGuide(CONTRACT_HEAD, n_neighbors=3, random_state=0).fit(X_train)
    assert det.bank_.shape == (3, 4)
    with pytest.raises(ValueError, match=r"n_neighbors=10 needs at least 10 .*n_samples=5"):
        NNGuide(CONTRACT_HEAD).fit(X_train[:5])


def test_nnguide_contract():
    check_missing_head_is_a_clear_error(NNGuide)
    check_float32_input_gives_float64_scores(lambda head: NNGuide(head, n_neighbors=2))
    check_bad_input_leaves_fitted_estimator_unchanged(
        lambda head: NNGuide(head, n_neighbors=2))


@pytest.mark.parametrize("n_samples", [3, 20, 150])
def test_tuning_grid_candidates_fit(n_samples):
    W, b = CONTRACT_HEAD
    rng = np.random.default_rng(n_samples)
    X_train, X = rng.normal(size=(n_samples, 4)), rng.normal(size=(3, 4))
    candidates = list(ParameterGrid(tuning_grid(NNGuide, n_samples)))
    assert candidates and all(c["n_neighbors"] <= n_samples for c in candidates)
    for params in candidates:
        det = NNGuide(CONTRACT_HEAD, random_state=0, **params).fit(X_train)
        if params["bank_fraction"] == 1.0:
            np.testing.assert_allclose(
                det.score_samples(X),
                _loop_nnguide(X_train, W, b, X, params["n_neighbors"]), rtol=1e-10)
