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
