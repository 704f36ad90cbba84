"""ReAct against hand-checked clip values and energies.

Expected scores come from literal numbers or from explicit loops over samples,
classes and features written independently of the vectorised implementation.
"""

import math

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_ood.detectors.logits import Energy
from sklearn_ood.detectors.react import ReAct
from sklearn_ood.metrics import auroc, auroc_scorer

from _helpers import (
    float32_features,
    score_peak_bytes,
    activations_with_spiky_ood,
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
    energy_loop,
)
from sklearn_ood.discovery import tuning_grid


# Per-column 50th percentiles are (1, 5); over all six entries it is 3.
REACT_TRAIN = np.array([[0.0, 4.0], [1.0, 5.0], [2.0, 6.0]])
REACT_HEAD = (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.5, -0.5]))


def test_react_clip_is_percentile_of_all_entries():
    det = ReAct(REACT_HEAD, percentile=50).fit(REACT_TRAIN)
    assert det.clip_ == 3.0  # (2 + 4) / 2, not the per-column (1, 5)
    # default 90: sorted entries 0 1 2 4 5 6, position 0.9 * 5 = 4.5 -> 5.5
    assert ReAct(REACT_HEAD).fit(REACT_TRAIN).clip_ == 5.5
    # [5, 1] -> clipped [3, 1] -> logits [3.5, 0.5]
    score = det.score_samples(np.array([[5.0, 1.0]]))
    np.testing.assert_allclose(score, [math.log(math.exp(3.5) + math.exp(0.5))])


def test_react_absolute_clip_overrides_percentile():
    det = ReAct(REACT_HEAD, percentile=50, clip=1.5).fit(REACT_TRAIN)
    assert det.clip_ == 1.5
    X = np.array([[0.5, 4.0], [2.0, 1.0]])
    expected = energy_loop([[min(v, 1.5) for v in x] for x in X], *REACT_HEAD)
    np.testing.assert_allclose(det.score_samples(X), expected)
    # set_params + fit recomputes the clip: no stale state
    assert det.set_params(clip=None).fit(REACT_TRAIN).clip_ == 3.0


def test_react_clip_ignores_ood_rows():
    y = np.array([0, 1, -1])  # the row [2, 6] is OOD
    det = ReAct(REACT_HEAD, percentile=50).fit(REACT_TRAIN, y)
    assert det.clip_ == 2.5  # median of 0, 1, 4, 5


def test_react_accepts_torch_linear_head():
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(REACT_HEAD[0]))
        layer.bias.copy_(torch.tensor(REACT_HEAD[1]))
    det = ReAct(layer, percentile=50).fit(REACT_TRAIN)
    assert det.clip_ == 3.0
    expected = energy_loop([[min(v, 3.0) for v in x] for x in REACT_TRAIN], *REACT_HEAD)
    np.testing.assert_allclose(det.score_samples(REACT_TRAIN), expected)


def test_pipeline_grid_search_react():
    X, y, head = activations_with_spiky_ood()
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    pipe = Pipeline([("abs", FunctionTransformer(np.abs)), ("react", ReAct(head))])
    grid = {"react__percentile": [50, 90, 100]}
    search = GridSearchCV(pipe, grid, scoring=auroc_scorer, cv=cv)
    search.fit(X, y)
    p = search.best_params_["react__percentile"]
    assert search.best_score_ > 0.95 and p != 50
    # the refitted clip comes from the ID rows only
    assert search.best_estimator_[-1].clip_ == np.percentile(X[y >= 0], p)
    no_clip = auroc(y, Energy(head).fit(X, y).score_samples(X))
    assert auroc(y, search.score_samples(X)) > no_clip + 0.3


def test_clip_equals_numpy_percentile_of_a_float64_copy():
    X, head = float32_features(n=3000, d=20)
    for p in [0, 37.5, 90, 100]:
        assert ReAct(head, percentile=p).fit(X).clip_ == np.percentile(X.astype(np.float64), p)


def test_float32_features_scored_in_float32_close_to_float64_by_hand():
    X, (W, b) = float32_features()
    det = ReAct((W, b)).fit(X)
    clipped = [[min(float(v), det.clip_) for v in x] for x in X]
    # scored in float32: relative errors of order 1e-7
    np.testing.assert_allclose(det.score_samples(X), energy_loop(clipped, W, b), rtol=1e-5)
    # no float64 copy of the features (one would take 2 x X.nbytes)
    X, head = float32_features(n=2000, d=256)
    assert score_peak_bytes(ReAct(head).fit(X), X) < 2 * X.nbytes


def test_tuning_grid_candidates_fit():
    candidates = list(ParameterGrid(tuning_grid(ReAct, len(REACT_TRAIN))))
    assert len(candidates) == 5
    # sorted entries 0 1 2 4 5 6: the p-th percentile sits at 5 * p / 100 -> 4 .. 4.95
    clips = {80: 5.0, 85: 5.25, 90: 5.5, 95: 5.75, 99: 5.95}
    det = ReAct(REACT_HEAD)
    for params in candidates:
        det.set_params(**params).fit(REACT_TRAIN)
        assert det.clip_ == pytest.approx(clips[params["percentile"]])
        np.testing.assert_allclose(
            det.score_samples(REACT_TRAIN),
            energy_loop([[min(v, det.clip_) for v in x] for x in REACT_TRAIN], *REACT_HEAD))

# ------------------------------------------------------------- shared behaviour
def test_missing_head_is_a_clear_error():
    check_missing_head_is_a_clear_error(ReAct)


def test_bad_input_leaves_fitted_estimator_unchanged():
    check_bad_input_leaves_fitted_estimator_unchanged(ReAct)


def test_float32_input_gives_float64_scores():
    check_float32_input_gives_float64_scores(ReAct)
