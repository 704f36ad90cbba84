"""LINe against a naive reference with loops and the full K x K x D masks.

Expected scores come from literal numbers or from explicit loops over samples,
classes and features written independently of the vectorised implementation.
"""

import math

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_ood.detectors.line import LINe, line_masks
from sklearn_ood.metrics import auroc_scorer

from _helpers import (
    activations_with_spiky_ood,
    check_bad_input_leaves_fitted_estimator_unchanged,
    check_float32_input_gives_float64_scores,
    check_missing_head_is_a_clear_error,
    lse,
)
from sklearn_ood.discovery import tuning_grid


# 3 classes, 4 features. The fixture is chosen so that every pitfall variant in
# _naive_line (predicted labels, clipped Phi, per-row weight percentile, |W|,
# argmax of unclipped or masked logits, no bias, >= instead of >) changes a score.
LINE_W = np.array([[1.5, -1.0, 1.5, 1.0], [1.0, 0.5, 0.5, 0.0], [-1.0, 1.5, 0.0, 1.0]])
LINE_B = np.array([0.2, 0.5, -0.2])
LINE_TRAIN = np.array([
    [0.0, 1.9, 1.7, 1.5],
    [1.0, 1.4, 1.6, 0.7],
    [1.5, 1.5, 1.2, 0.8],
    [1.4, 0.0, 1.5, 1.8],
    [0.5, 0.2, 0.4, 0.6],
    [1.8, 1.1, 0.6, 0.3],
])
LINE_Y = np.array([0, 0, 1, 1, 2, 2])  # predicted labels are 2 0 0 0 0 1
LINE_TEST = np.array([
    [0.6, 1.2, 0.6, 1.1],
    [0.9, 1.7, 0.9, 0.7],
    [1.3, 0.4, 0.9, 0.6],
    [1.3, 1.8, 0.9, 1.6],
    [0.0, 1.7, 1.6, 1.7],
])
LINE_PARAMS = dict(clip=1.0, p_a=50, p_w=60)


def _naive_line(Xtr, ytr, W, b, Xte, clip, p_a, p_w, labels="truth", phi_clip=False,
                row_pct=False, abs_w=False, argmax="clipped", bias=True, nonstrict=False):
    """LINe with loops and a full K x K x D masked weight array; flags = pitfalls."""
    K, D = len(W), len(W[0])
    if labels == "pred":
        ytr = [int(np.argmax([sum(W[k][j] * x[j] for j in range(D)) + b[k] for k in range(K)]))
               for x in Xtr]
    phi = [[0.0] * D for _ in range(K)]
    for c in range(K):
        rows = [x for x, y in zip(Xtr, ytr) if y == c]
        for j in range(D):
            contribs = [W[c][j] * (min(r[j], clip) if phi_clip else r[j]) for r in rows]
            phi[c][j] = sum(contribs) / len(contribs)
    keep = (lambda v, t: v >= t) if nonstrict else (lambda v, t: v > t)
    act = [[keep(phi[c][j], np.percentile(phi[c], p_a)) for j in range(D)] for c in range(K)]
    masked_w = [[[0.0] * D for _ in range(K)] for _ in range(K)]
    for c in range(K):
        S = [[abs(phi[c][j]) * (abs(W[k][j]) if abs_w else W[k][j]) for j in range(D)]
             for k in range(K)]
        for k in range(K):
            t = np.percentile(S[k], p_w) if row_pct else np.percentile(S, p_w)
            for j in range(D):
                masked_w[c][k][j] = W[k][j] if keep(S[k][j], t) else 0.0
    scores = []
    for x in Xte:
        hc = [min(v, clip) for v in x]
        src = list(x) if argmax == "unclipped" else hc
        logits = [sum(W[k][j] * src[j] for j in range(D)) + b[k] for k in range(K)]
        if argmax == "masked":
            logits = [max(sum(masked_w[c][k][j] * hc[j] * act[c][j] for j in range(D)) + b[k]
                          for k in range(K)) for c in range(K)]
        c = max(range(K), key=lambda k: logits[k])
        z = [sum(masked_w[c][k][j] * hc[j] * act[c][j] for j in range(D))
             + (b[k] if bias else 0.0) for k in range(K)]
        scores.append(lse(z))
    return np.array(scores)


def test_line_matches_naive_reference():
    det = LINe((LINE_W, LINE_B), **LINE_PARAMS).fit(LINE_TRAIN, LINE_Y)
    expected = _naive_line(LINE_TRAIN, LINE_Y, LINE_W, LINE_B, LINE_TEST, **LINE_PARAMS)
    np.testing.assert_allclose(det.score_samples(LINE_TEST), expected, rtol=1e-12)


@pytest.mark.parametrize("pitfall", [
    dict(labels="pred"), dict(phi_clip=True), dict(row_pct=True), dict(abs_w=True),
    dict(argmax="unclipped"), dict(argmax="masked"), dict(bias=False), dict(nonstrict=True),
])
def test_line_fixture_detects_pitfall(pitfall):
    det = LINe((LINE_W, LINE_B), **LINE_PARAMS).fit(LINE_TRAIN, LINE_Y)
    wrong = _naive_line(LINE_TRAIN, LINE_Y, LINE_W, LINE_B, LINE_TEST, **LINE_PARAMS,
                        **pitfall)
    assert np.abs(det.score_samples(LINE_TEST) - wrong).max() > 0.1


def test_line_fitted_attributes():
    det = LINe((LINE_W, LINE_B), **LINE_PARAMS).fit(LINE_TRAIN, LINE_Y)
    # class 0 rows: [0, 1.9, 1.7, 1.5], [1, 1.4, 1.6, .7] -> mean [.5, 1.65, 1.65, 1.1]
    np.testing.assert_allclose(det.shapley_[0], [0.75, -1.65, 2.475, 1.1])
    # class 2 rows: [.5, .2, .4, .6], [1.8, 1.1, .6, .3] -> mean [1.15, .65, .5, .45]
    np.testing.assert_allclose(det.shapley_[2], [-1.15, 0.975, 0.0, 0.45])
    # row median of Phi[0] = (0.75 + 1.1) / 2 -> neurons 2 and 3
    np.testing.assert_array_equal(det.activation_masks_[0], [False, False, True, True])
    assert det.activation_masks_.dtype == bool and det.weight_thresholds_.shape == (3,)
    assert det.clip_ == 1.0


def test_line_masks_strict_per_row():
    phi = np.array([[1.0, 2.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    masks, _ = line_masks(phi, np.ones((2, 4)), p_a=50, p_w=50)
    # row percentile 2 (strict >): only 3; a whole-matrix percentile (0.5) would keep row 0
    np.testing.assert_array_equal(masks, [[False, False, False, True], [False] * 4])


def test_line_without_y_uses_predicted_labels():
    det = LINe((LINE_W, LINE_B), **LINE_PARAMS).fit(LINE_TRAIN)
    expected = _naive_line(LINE_TRAIN, LINE_Y, LINE_W, LINE_B, LINE_TEST, **LINE_PARAMS,
                           labels="pred")
    np.testing.assert_allclose(det.score_samples(LINE_TEST), expected, rtol=1e-12)
    predicted = np.argmax(LINE_TRAIN @ LINE_W.T + LINE_B, axis=1)
    twin = LINe((LINE_W, LINE_B), **LINE_PARAMS).fit(LINE_TRAIN, predicted)
    np.testing.assert_array_equal(det.shapley_, twin.shapley_)


def test_line_predicted_labels_come_from_unclipped_features():
    W, b = np.array([[1.0, 0.0], [0.0, 1.2]]), np.zeros(2)
    X = np.array([[3.0, 1.5], [0.5, 0.2], [0.1, 0.9]])
    # unclipped logits [3, 1.8], [.5, .24], [.1, 1.08] -> labels 0 0 1
    # (clipped at 1 the first row would be [1, 1.2] -> class 1)
    det = LINe((W, b), clip=1.0).fit(X)
    np.testing.assert_allclose(det.shapley_, [[1.75, 0.0], [0.0, 1.08]])


def test_line_clip_none_and_clip_percentile():
    no_clip = LINe((LINE_W, LINE_B), clip=None, p_a=50, p_w=60).fit(LINE_TRAIN, LINE_Y)
    assert no_clip.clip_ is None
    expected = _naive_line(LINE_TRAIN, LINE_Y, LINE_W, LINE_B, LINE_TEST, clip=math.inf,
                           p_a=50, p_w=60)
    np.testing.assert_allclose(no_clip.score_samples(LINE_TEST), expected, rtol=1e-12)
    det = LINe((LINE_W, LINE_B), clip=5.0, clip_percentile=50, p_a=50, p_w=60)
    det.fit(LINE_TRAIN, LINE_Y)
    sorted_entries = sorted(LINE_TRAIN.ravel())  # 24 entries: median = mean of 12th, 13th
    assert det.clip_ == pytest.approx((sorted_entries[11] + sorted_entries[12]) / 2)
    expected = _naive_line(LINE_TRAIN, LINE_Y, LINE_W, LINE_B, LINE_TEST, clip=det.clip_,
                           p_a=50, p_w=60)
    np.testing.assert_allclose(det.score_samples(LINE_TEST), expected, rtol=1e-12)


def test_line_class_without_samples_uses_global_mean():
    y = np.array([0, 0, 1, 1, 1, 0])  # no sample of class 2
    with pytest.warns(UserWarning, match=r"no training sample for class\(es\) \[2\]"):
        det = LINe((LINE_W, LINE_B), **LINE_PARAMS).fit(LINE_TRAIN, y)
    np.testing.assert_allclose(det.shapley_[2], LINE_W[2] * LINE_TRAIN.mean(axis=0))


@pytest.mark.parametrize("y, match", [
    ([0, 0, 1, 1, 2, 3], r"head has 3 classes"),
    (["a", "a", "b", "b", "c", "c"], r"integer class indices"),
    ([0, 0, 1, 1, 2, 1.5], r"integer class indices"),
])
def test_line_bad_labels(y, match):
    with pytest.raises(ValueError, match=match):
        LINe((LINE_W, LINE_B)).fit(LINE_TRAIN, y)


def test_line_refit_recomputes_masks():
    det = LINe((LINE_W, LINE_B), **LINE_PARAMS).fit(LINE_TRAIN, LINE_Y)
    det.set_params(p_a=0).fit(LINE_TRAIN, LINE_Y)
    assert det.activation_masks_.sum(axis=1).tolist() == [3, 3, 3]


def test_pipeline_grid_search_line():
    X, y, head = activations_with_spiky_ood()
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    line = LINe(head, clip_percentile=90)
    pipe = Pipeline([("abs", FunctionTransformer(np.abs)), ("line", line)])
    search = GridSearchCV(pipe, {"line__p_a": [10, 50, 90]}, scoring=auroc_scorer, cv=cv)
    search.fit(X, y)
    assert search.best_params_["line__p_a"] != 90 and search.best_score_ > 0.95
    best = search.best_estimator_[-1]
    assert best.clip_ == np.percentile(X[y >= 0], 90)
    assert best.activation_masks_.shape == (3, 8)


def test_tuning_grid_candidates_fit():
    candidates = list(ParameterGrid(tuning_grid(LINe, len(LINE_TRAIN))))
    assert len(candidates) == 18
    det = LINe((LINE_W, LINE_B))
    for params in candidates:
        det.set_params(**params).fit(LINE_TRAIN, LINE_Y)
        clip = np.percentile(LINE_TRAIN, params["clip_percentile"])
        assert det.clip_ == clip
        expected = _naive_line(LINE_TRAIN, LINE_Y, LINE_W, LINE_B, LINE_TEST, clip=clip,
                               p_a=params["p_a"], p_w=params["p_w"])
        np.testing.assert_allclose(det.score_samples(LINE_TEST), expected, rtol=1e-12)

# ------------------------------------------------------------- shared behaviour
def test_missing_head_is_a_clear_error():
    check_missing_head_is_a_clear_error(LINe)


def test_bad_input_leaves_fitted_estimator_unchanged():
    check_bad_input_leaves_fitted_estimator_unchanged(LINe)


def test_float32_input_gives_float64_scores():
    check_float32_input_gives_float64_scores(LINe)
