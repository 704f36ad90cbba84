"""Every candidate of every declared tuning grid fits and scores finite values.

Over the registry: each detector with a grid (its tags' ``grid``) is built as
``tests/_instances.py`` builds it for tiny data (with its head when it can take
one; a detector that runs a model on ``AnyWidth``), every candidate of
``ParameterGrid(tuning_grid(cls, n_fit_rows))`` is fitted, and its scores of
the fit rows must be finite. The detectors' own test files check the values
of the candidates by hand where a grid has a computation of its own.
"""

import warnings

import numpy as np
import pytest
from sklearn.model_selection import ParameterGrid

from _instances import HEAD, X2, X4, Y, array_detectors, make_case, make_model_detector
from _model_state_checks import AnyWidth
from sklearn_ood.discovery import all_detectors, get_detector_tags, tuning_grid

TUNED = [(name, cls) for name, cls in all_detectors() if get_detector_tags(cls).grid]
IMAGES = np.random.default_rng(1).random((24, 1, 4, 4), dtype=np.float32)


def test_every_detector_with_a_grid_is_here():
    untuned = {name for name, cls in all_detectors() if not get_detector_tags(cls).grid}
    assert {name for name, _ in TUNED} | untuned == {name for name, _ in all_detectors()}
    assert all(list(ParameterGrid(tuning_grid(cls, 10**6))) for _, cls in TUNED)


@pytest.mark.parametrize("name, cls", TUNED, ids=[name for name, _ in TUNED])
def test_every_candidate_fits_and_scores_finite(name, cls):
    if (name, cls) in array_detectors():
        # an optional head too: a grid may tune how its score is weighed (NAP-E's weight)
        case = make_case(cls, X2, X4, Y, HEAD, with_head=get_detector_tags(cls).head is not None)
        X, y, make = case.X, case.y, case.make
    else:
        X, y = IMAGES, Y[: len(IMAGES)] if get_detector_tags(cls).labels else None
        model = AnyWidth()

        def make(**params):
            return make_model_detector(cls, model, "features", **params)

    n_fit = len(X) if y is None else int((np.asarray(y) >= 0).sum())
    candidates = list(ParameterGrid(tuning_grid(cls, n_fit)))
    assert candidates
    for params in candidates:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # LINe: classes never predicted
            scores = make(**params).fit(X, y).score_samples(X)
        assert scores.shape == (len(X),)
        assert np.isfinite(scores).all(), f"{name}{params}: non-finite scores"
