"""Fixtures and checks shared by the test files of several detectors."""

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
