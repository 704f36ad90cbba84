"""OpenMax (pytorch-ood's variant): MAVs, Weibull tails and the revision, against loops."""

import math
import pickle

import numpy as np
import pytest
from scipy import stats
from sklearn.model_selection import ParameterGrid

from sklearn_ood.detectors.openmax import OpenMax, openmax_unknown_probability

from _helpers import CONTRACT_HEAD, check_failed_calls_leave_detector_unchanged
from sklearn_ood.discovery import tuning_grid


def _loop_openmax(Z_train, y, Z, tailsize, alpha, euclid_weight):
    """-P(unknown), every step written out; the Weibull fitted as pytorch-ood does."""
    K = Z_train.shape[1]

    def dist(z, m):
        eu = math.sqrt(sum((a - b) ** 2 for a, b in zip(z, m)))
        nz, nm = math.sqrt(sum(a * a for a in z)), math.sqrt(sum(b * b for b in m))
        cos = sum(a * b for a, b in zip(z, m)) / (nz * nm) if nz * nm > 0 else 0.0
        return euclid_weight * eu + (1 - euclid_weight) * (1 - cos)

    mavs, models = [], []
    for c in range(K):
        rows = [z for z, label in zip(Z_train, y) if label == c]
        mav = [sum(r[j] for r in rows) / len(rows) for j in range(K)]
        tail = sorted(dist(r, mav) for r in rows)[-tailsize:]
        shift = 10000 - tail[0]
        # pytorch-ood's call (exponweib with a = 1, loc = 0); its optimiser stops close to
        # the optimum the detector solves for exactly
        _, shape, _, scale = stats.exponweib.fit([t + shift for t in tail], fa=1, floc=0)
        mavs.append(mav)
        models.append((shift, shape, scale))
    out = []
    for z in Z:
        order = sorted(range(K), key=lambda c: -z[c])
        v0, v = 0.0, list(z)
        for rank, c in enumerate(order[:alpha], start=1):
            shift, shape, scale = models[c]
            w = 1 - math.exp(-(((dist(z, mavs[c]) + shift) / scale) ** shape))
            omega = (alpha + 1 - rank) / alpha
            v[c] = z[c] * (1 - omega * w)
            v0 += z[c] * omega * w
        top = max([v0] + v)
        e = [math.exp(t - top) for t in [v0] + v]
        out.append(-e[0] / sum(e))
    return np.array(out)


def _logit_data(seed=12):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], 30)
    Z = 4 * np.eye(3)[y] + rng.normal(0, 1, (90, 3))
    Z_test = np.vstack([4 * np.eye(3)[[0, 1, 2]] + rng.normal(0, 1, (3, 3)),
                        rng.normal(0, 6, (4, 3))])
    return Z, y, Z_test


@pytest.mark.parametrize("tailsize, alpha, euclid_weight",
                         [(25, 10, 1.0), (10, 2, 0.5), (50, 1, 0.0)])
def test_openmax_matches_the_loop(tailsize, alpha, euclid_weight):
    Z, y, Z_test = _logit_data()
    det = OpenMax(tailsize=tailsize, alpha=alpha, euclid_weight=euclid_weight).fit(Z, y)
    np.testing.assert_allclose(det.score_samples(Z_test),
                               _loop_openmax(Z, y, Z_test, tailsize, alpha,
                                             euclid_weight), atol=1e-4)


def test_openmax_with_a_head_revises_its_logits():
    W, b = CONTRACT_HEAD
    rng = np.random.default_rng(13)
    X = np.abs(rng.normal(size=(60, 4))) * 2
    y = np.argmax(X @ W.T + b, axis=1)
    X_test = rng.normal(size=(5, 4)) * 3
    det = OpenMax(CONTRACT_HEAD, tailsize=10, alpha=2).fit(X, y)
    np.testing.assert_allclose(
        det.score_samples(X_test),
        _loop_openmax(X @ W.T + b, y, X_test @ W.T + b, 10, 2, 1.0), atol=1e-4)


def test_openmax_revision_by_hand():
    # Weibull shape 1, scale 1, no shift: w = 1 - exp(-d). z = (2, 1), d = (log 2, log 4)
    # -> w = (1/2, 3/4); alpha = 2: omega = (1, 1/2). v1 = 2 (1 - 1/2) = 1,
    # v2 = 1 (1 - 3/8) = 5/8, v0 = 2/2 + 3/8 = 11/8.
    params = np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    got = openmax_unknown_probability(np.array([[2.0, 1.0]]),
                                      np.log([[2.0, 4.0]]), params, 2)
    e = np.exp([11 / 8, 1.0, 5 / 8])
    np.testing.assert_allclose(got, [e[0] / e.sum()])
    # alpha = 1: only the top class moves, v = (1, 1) and v0 = 1
    got = openmax_unknown_probability(np.array([[2.0, 1.0]]), np.log([[2.0, 4.0]]), params, 1)
    np.testing.assert_allclose(got, [1 / 3])


def test_openmax_errors_say_what_to_pass():
    Z, y, _ = _logit_data()
    with pytest.raises(ValueError, match=r"OpenMax requires y.*fit\(X, y\)"):
        OpenMax().fit(Z)
    with pytest.raises(ValueError, match=r"class indices 0..2"):
        OpenMax().fit(Z, y + 1)
    with pytest.raises(ValueError, match=r"2 training rows per class.*class 2 .* 1 sample"):
        OpenMax().fit(Z[:61], y[:61])
    det = OpenMax().fit(Z, y)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="requires y"):
        det.fit(Z)
    assert pickle.dumps(det) == state
    check_failed_calls_leave_detector_unchanged(det, Z, y)


def test_overflowing_logits_are_a_clear_error():
    Z = np.random.default_rng(4).normal(size=(12, 3)) * 1e200
    with pytest.raises(ValueError, match="distances to the class means overflow float64"):
        OpenMax(tailsize=3).fit(Z, np.arange(12) % 3)


def test_tuning_grid_candidates_fit():
    Z, y, Z_test = _logit_data(14)
    candidates = list(ParameterGrid(tuning_grid(OpenMax, len(Z))))
    assert len(candidates) == 18
    for params in candidates:
        det = OpenMax(**params).fit(Z, y)
        np.testing.assert_allclose(
            det.score_samples(Z_test),
            _loop_openmax(Z, y, Z_test, params["tailsize"], params["alpha"],
                          params["euclid_weight"]), atol=1e-4)
