"""Fixtures and checks shared by the test files of several detectors."""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError


# ------------------------------------------------------------- map detectors
def small_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(3, 4, 3, padding=1),  # "2": pre-ReLU output, has negatives
        torch.nn.ReLU(),  # "3": post-ReLU
    )


def images(n=12, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 2, 5, 5)).astype(np.float32)


def check_bad_maps_leave_detector_unchanged(det, maps):
    """Fit ``det`` on 4-D ``maps``; bad input raises and changes nothing."""
    det.fit(maps)
    offset = det.offset_
    bad = maps.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.fit(bad)
    with pytest.raises(ValueError, match="NaN"):
        det.score_samples(bad)
    with pytest.raises(ValueError, match="channels"):
        det.score_samples(maps[:, :2])
    with pytest.raises(ValueError, match="2-D"):
        det.score_samples(maps.reshape(len(maps), -1))
    with pytest.raises(ValueError, match="4-D"):
        det.fit(maps[0])
    assert det.offset_ == offset and det.input_ndim_ == 4
    np.testing.assert_allclose(pickle.loads(pickle.dumps(det)).score_samples(maps),
                               det.score_samples(maps))
    with pytest.raises(NotFittedError):
        clone(det).score_samples(maps)


# ------------------------------------------------------- feature detectors
def negative_aware_norm_by_hand(a):
    """``||a||_1 / ||a||_0`` of each flattened row, by sums over its entries."""
    flat = a.reshape(len(a), -1)
    return np.array([sum(abs(v) for v in row) / sum(1 for v in row if v > 0)
                     for row in flat])


def blobs_with_ood(seed=12):
    """90 ID rows around 3 centres in 6-D (labels 0-2) and 45 wide OOD rows (-1)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (3, 6)) * 4
    ids = rng.integers(0, 3, 90)
    X_id = centers[ids] + rng.normal(size=(90, 6))
    X_ood = rng.normal(0, 1, (45, 6)) * 4
    return np.vstack([X_id, X_ood]), np.r_[ids, -np.ones(45, int)]


def check_failed_calls_leave_detector_unchanged(det, X, y):
    """On fitted ``det``: bad data and parameters raise and change nothing."""
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="NaN"):
        det.fit(np.where(np.eye(*X.shape) > 0, np.nan, X), y)
    with pytest.raises(ValueError, match="features"):
        det.score_samples(np.ones((2, X.shape[1] + 1)))
    contamination = det.contamination
    with pytest.raises(ValueError, match="contamination"):
        det.set_params(contamination=0.9).fit(X, y)
    det.set_params(contamination=contamination)
    with pytest.raises(ValueError, match="y must be 1-D"):
        det.fit(X, y[:5])
    assert pickle.dumps(det) == state


# ------------------------------------------------------ detectors with a head
def lse(values):
    """log(sum(exp(v))) written out, for hand-checkable references."""
    return math.log(sum(math.exp(v) for v in values))


def energy_loop(H, W, b):
    """Energy of h W^T + b with explicit loops over samples, classes, features."""
    return np.array([
        lse([sum(W[k][j] * h[j] for j in range(len(h))) + b[k] for k in range(len(W))])
        for h in H
    ])


def fitted_state(est):
    return {k: v for k, v in vars(est).items() if k.endswith("_")}


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, after[key])
        else:
            assert value == after[key], key


def activations_with_spiky_ood(seed=0):
    """8-D non-negative features, 3 classes; OOD rows carry one large spike.

    Returns ``X``, ``y`` (-1 for OOD) and a head ``(class centres, zeros)``.
    """
    rng = np.random.RandomState(seed)
    centers = np.full((3, 8), 0.2)
    for c in range(3):
        centers[c, 2 * c:2 * c + 2] += 1.0
    y_id = np.repeat([0, 1, 2], 30)
    X_id = np.maximum(centers[y_id] + 0.15 * rng.randn(90, 8), 0)
    X_ood = np.maximum(0.2 + 0.15 * rng.randn(45, 8), 0)
    X_ood[np.arange(45), rng.randint(0, 8, 45)] += rng.uniform(2, 4, 45)
    X = np.vstack([X_id, X_ood])
    y = np.concatenate([y_id, -np.ones(45, dtype=int)])
    return X, y, (centers, np.zeros(3))


# A head of 3 classes on 4 features and non-negative features for it.
CONTRACT_HEAD = (np.array([[1.5, -1.0, 1.5, 1.0], [1.0, 0.5, 0.5, 0.0],
                           [-1.0, 1.5, 0.0, 1.0]]), np.array([0.2, 0.5, -0.2]))
CONTRACT_TRAIN = np.abs(np.random.default_rng(0).normal(size=(6, 4)))
CONTRACT_TEST = np.abs(np.random.default_rng(1).normal(size=(5, 4)))


def check_missing_head_is_a_clear_error(Est):
    with pytest.raises(ValueError, match=r"needs the final linear layer.*head="):
        Est().fit(CONTRACT_TRAIN)


def check_bad_input_leaves_fitted_estimator_unchanged(Est):
    det = Est(CONTRACT_HEAD).fit(CONTRACT_TRAIN)
    before = fitted_state(det)
    with pytest.raises(ValueError, match=r"head expects 3 features.*X has 4 features"):
        det.set_params(head=(CONTRACT_HEAD[0][:, :3], CONTRACT_HEAD[1])).fit(CONTRACT_TRAIN)
    assert_same_state(before, fitted_state(det))
    det.set_params(head=CONTRACT_HEAD)
    bad = CONTRACT_TRAIN.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.fit(bad)
    assert_same_state(before, fitted_state(det))
    with pytest.raises(ValueError, match="NaN"):
        det.score_samples(bad)
    with pytest.raises(ValueError, match="4 features"):
        det.score_samples(CONTRACT_TRAIN[:, :3])
    with pytest.raises(ValueError, match=r"coef must have shape"):
        Est((np.ones(4), np.zeros(1))).fit(CONTRACT_TRAIN)


def check_float32_input_gives_float64_scores(Est):
    det = Est(CONTRACT_HEAD).fit(CONTRACT_TRAIN, None)
    s32 = det.score_samples(CONTRACT_TEST.astype(np.float32))
    assert s32.dtype == np.float64
    np.testing.assert_allclose(s32, det.score_samples(CONTRACT_TEST), rtol=1e-6)


# ------------------------------------------------------------- failed calls
def state(est):
    return pickle.dumps(est.__dict__)


def assert_unchanged_after_error(est, call, exc, match):
    before = state(est)
    with pytest.raises(exc, match=match):
        call()
    assert state(est) == before, "a failed call changed the fitted estimator"


# ------------------------------------------------------------- float32 scoring
def float32_features(n=200, d=64, k=10, seed=0):
    """Post-ReLU-like float32 features (about 40 % zeros) and a float64 head."""
    rng = np.random.default_rng(seed)
    X = np.maximum(rng.standard_normal((n, d)) + 0.3, 0.0).astype(np.float32)
    return X, (rng.standard_normal((k, d)) / np.sqrt(d), 0.1 * rng.standard_normal(k))


def score_peak_bytes(det, X):
    """``tracemalloc`` peak of ``det.score_samples(X)``, in bytes."""
    import tracemalloc

    tracemalloc.start()
    try:
        det.score_samples(X)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
