"""Tests of ReAct, DICE, ASH and LINe (sklearn_ood.detectors.activation).

Expected scores come from literal numbers or from explicit loops over samples,
classes and features written independently of the vectorised implementation.
"""

import math
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ood.detectors.activation import (
    ASH,
    DICE,
    LINe,
    ReAct,
    ash,
    line_masks,
)
from sklearn_ood.detectors.logits import Energy
from sklearn_ood.metrics import auroc, auroc_scorer


def _lse(values):
    """log(sum(exp(v))) written out, for hand-checkable references."""
    return math.log(sum(math.exp(v) for v in values))


def _energy_loop(H, W, b):
    """Energy of h W^T + b with explicit loops over samples, classes, features."""
    return np.array([
        _lse([sum(W[k][j] * h[j] for j in range(len(h))) + b[k] for k in range(len(W))])
        for h in H
    ])


def _fitted_state(est):
    return {k: v for k, v in vars(est).items() if k.endswith("_")}


def _assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, after[key])
        else:
            assert value == after[key], key


# ------------------------------------------------------------------------- ReAct
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
    expected = _energy_loop([[min(v, 1.5) for v in x] for x in X], *REACT_HEAD)
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
    a = ReAct(layer, percentile=50).fit(REACT_TRAIN).score_samples(REACT_TRAIN)
    b = ReAct(REACT_HEAD, percentile=50).fit(REACT_TRAIN).score_samples(REACT_TRAIN)
    np.testing.assert_allclose(a, b)


# -------------------------------------------------------------------------- DICE
DICE_W = np.array([[1.0, 2.0, 3.0], [0.1, 0.2, 0.3]])
DICE_B = np.array([0.2, -0.1])
DICE_TRAIN = np.array([[2.0, 0.0, 1.0], [4.0, 2.0, 0.0]])  # mean (3, 1, 0.5)


def test_dice_mask_over_all_entries_with_training_mean():
    det = DICE((DICE_W, DICE_B), percentile=70).fit(DICE_TRAIN)
    np.testing.assert_array_equal(det.feature_mean_, [3.0, 1.0, 0.5])
    # contrib = [[3, 2, 1.5], [.3, .2, .15]]; sorted .15 .2 .3 1.5 2 3;
    # position 0.7 * 5 = 3.5 -> threshold 1.75 over all 6 entries.
    # (Per row: [T, F, F] / [T, F, F]; with W alone: threshold 1.5 -> [F, T, T].)
    expected_mask = [[True, True, False], [False, False, False]]
    np.testing.assert_array_equal(det.mask_, expected_mask)
    X = np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 5.0]])
    masked = [[DICE_W[k][j] if expected_mask[k][j] else 0.0 for j in range(3)]
              for k in range(2)]
    np.testing.assert_allclose(det.score_samples(X), _energy_loop(X, masked, DICE_B))


def test_dice_strict_threshold_and_refit():
    # all contributions equal: percentile == every entry, strict > keeps none
    det = DICE((np.ones((2, 3)), np.zeros(2)), percentile=50).fit(np.ones((2, 3)))
    assert not det.mask_.any()
    np.testing.assert_allclose(det.score_samples(np.ones((1, 3))), [math.log(2.0)])
    det = DICE((DICE_W, DICE_B), percentile=70).fit(DICE_TRAIN)
    assert det.set_params(percentile=0).fit(DICE_TRAIN).mask_.sum() == 5


# --------------------------------------------------------------------------- ASH
ASH_ROW = np.array([[1.0, 4.0, 0.0, 2.0, 3.0]])  # D=5, p=60: k = 5 - 3 = 2


def test_ash_variants_literal():
    np.testing.assert_array_equal(ash(ASH_ROW, "p", 60), [[0, 4, 0, 0, 3]])
    # s1 = 10, k = 2
    np.testing.assert_array_equal(ash(ASH_ROW, "b", 60), [[0, 5, 0, 0, 5]])
    # s2 = 7
    scale = math.exp(10 / 7)
    np.testing.assert_allclose(ash(ASH_ROW, "s", 60), [[0, 4 * scale, 0, 0, 3 * scale]])


def test_ash_ties_rounding_and_k_zero():
    # ties: exactly k entries kept, lowest index first
    tied = np.array([[2.0, 1.0, 2.0, 2.0]])  # D=4, p=50: k = 2
    np.testing.assert_array_equal(ash(tied, "p", 50), [[2, 0, 2, 0]])
    np.testing.assert_array_equal(ash(tied, "b", 50), [[3.5, 0, 3.5, 0]])  # s1 / k = 7 / 2
    # round half to even like np.round: 5 * 0.5 = 2.5 -> 2 pruned, k = 3
    assert np.count_nonzero(ash(ASH_ROW + 1, "p", 50)) == 3
    # 5 * 0.7 = 3.5 -> 4 pruned, k = 1
    assert np.count_nonzero(ash(ASH_ROW + 1, "p", 70)) == 1
    # percentile 100: k = 0, every variant gives zeros (no division by zero)
    for variant in "pbs":
        np.testing.assert_array_equal(ash(ASH_ROW, variant, 100), np.zeros((1, 5)))


def test_ash_tie_rule_on_a_long_row():
    h = np.array([[float((7 * j) % 3) for j in range(64)]])  # values 0, 1, 2
    k = 64 - 38  # round(64 * 0.6) = round(38.4)
    order = sorted(range(64), key=lambda j: (-h[0, j], j))[:k]  # value, then index
    expected = np.zeros_like(h)
    expected[0, order] = h[0, order]
    np.testing.assert_array_equal(ash(h, "p", 60), expected)


@pytest.mark.parametrize("variant", ["p", "b", "s"])
def test_ash_estimator_scores(variant):
    W = np.array([[1.0, 0.0, -1.0, 0.5, 0.0], [0.0, 0.5, 1.0, 0.0, -0.5]])
    b = np.array([0.1, -0.3])
    X = np.vstack([ASH_ROW, [[0.0, 0.0, 0.0, 0.0, 0.0]], [[3.0, 1.0, 2.0, 0.0, 0.5]]])
    # hand-shaped rows at p=60 (k = 2): row 3 keeps 3 and 2 (s1 = 6.5, s2 = 5)
    shaped = {
        "p": [[0, 4, 0, 0, 3], [0] * 5, [3, 0, 2, 0, 0]],
        "b": [[0, 5, 0, 0, 5], [0] * 5, [3.25, 0, 3.25, 0, 0]],
        "s": [
            [0, 4 * math.exp(10 / 7), 0, 0, 3 * math.exp(10 / 7)],
            [0] * 5,  # s2 = 0: no rescaling, no NaN
            [3 * math.exp(1.3), 0, 2 * math.exp(1.3), 0, 0],
        ],
    }[variant]
    det = ASH((W, b), variant=variant, percentile=60).fit(X)
    np.testing.assert_allclose(det.score_samples(X), _energy_loop(shaped, W, b))


def test_ash_s_overflow_gives_inf_not_nan():
    # D = 1000 equal entries, p = 99.9: k = 1, s1 / s2 = 1000, exp(1000) overflows
    h = np.ones((1, 1000))
    heads = {
        "positive": (np.vstack([np.ones(1000), -np.ones(1000)]), np.zeros(2)),
        "zero": (np.vstack([-np.ones(1000), np.zeros(1000)]), np.array([0.0, 0.7])),
        "negative": (np.vstack([-np.ones(1000), -np.ones(1000)]), np.zeros(2)),
    }
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for name, head in heads.items():
            det = ASH(head, variant="s", percentile=99.9).fit(np.zeros((2, 1000)))
            scores[name] = det.score_samples(h)
    assert scores["positive"][0] == np.inf
    assert scores["zero"][0] == 0.7  # the class with no contribution keeps its bias
    assert scores["negative"][0] == -np.inf


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (3, 7), elements=st.floats(0, 10, allow_subnormal=False)),
    st.sampled_from([0, 30, 50, 65, 90, 100]),
)
def test_ash_properties(h, percentile):
    k = 7 - int(np.round(7 * percentile / 100))
    pruned, binarized, scaled = (ash(h, v, percentile) for v in "pbs")
    for row, p_row, b_row, s_row in zip(h, pruned, binarized, scaled):
        kept, dropped = p_row[p_row != 0], row[p_row == 0]
        assert kept.size <= k
        if kept.size and dropped.size:
            assert kept.min() >= dropped.max()
        np.testing.assert_allclose(b_row.sum(), row.sum() if k else 0.0)
        s1, s2 = row.sum(), p_row.sum()
        if s2 > 0:
            np.testing.assert_allclose(s_row.sum(), s2 * math.exp(s1 / s2))


# -------------------------------------------------------------------------- LINe
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
        scores.append(_lse(z))
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


# ------------------------------------------------------------- shared behaviour
HEAD_3 = (LINE_W[:, :3], LINE_B)
ESTIMATORS = [ReAct, DICE, ASH, LINe]


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_missing_head_is_a_clear_error(Est):
    with pytest.raises(ValueError, match=r"needs the final linear layer.*head="):
        Est().fit(LINE_TRAIN)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_bad_input_leaves_fitted_estimator_unchanged(Est):
    det = Est((LINE_W, LINE_B)).fit(LINE_TRAIN)
    before = _fitted_state(det)
    with pytest.raises(ValueError, match=r"head expects 3 features.*X has 4 features"):
        det.set_params(head=HEAD_3).fit(LINE_TRAIN)
    _assert_same_state(before, _fitted_state(det))
    det.set_params(head=(LINE_W, LINE_B))
    bad = LINE_TRAIN.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.fit(bad)
    _assert_same_state(before, _fitted_state(det))
    with pytest.raises(ValueError, match="NaN"):
        det.score_samples(bad)
    with pytest.raises(ValueError, match="4 features"):
        det.score_samples(LINE_TRAIN[:, :3])
    with pytest.raises(ValueError, match=r"coef must have shape"):
        Est((np.ones(4), np.zeros(1))).fit(LINE_TRAIN)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_float32_input_gives_float64_scores(Est):
    det = Est((LINE_W, LINE_B)).fit(LINE_TRAIN, None)
    s32 = det.score_samples(LINE_TEST.astype(np.float32))
    assert s32.dtype == np.float64
    np.testing.assert_allclose(s32, det.score_samples(LINE_TEST), rtol=1e-6)


def _mixed_id_ood(seed=0):
    """8-D non-negative features, 3 classes; OOD rows carry one large spike."""
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


def test_pipeline_grid_search_react_and_line():
    X, y, head = _mixed_id_ood()
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

    line = LINe(head, clip_percentile=90)
    pipe = Pipeline([("abs", FunctionTransformer(np.abs)), ("line", line)])
    search = GridSearchCV(pipe, {"line__p_a": [10, 50, 90]}, scoring=auroc_scorer, cv=cv)
    search.fit(X, y)
    assert search.best_params_["line__p_a"] != 90 and search.best_score_ > 0.95
    best = search.best_estimator_[-1]
    assert best.clip_ == np.percentile(X[y >= 0], 90)
    assert best.activation_masks_.shape == (3, 8)


# -------------------------------------------------------- scikit-learn checks
class _AutoHead:
    """Test-only: without ``head``, build a fixed random (4, D) head for the X seen.

    The checks feed 1 to 10 features; a real head has one input size. This keeps
    every line of the detectors under test except where ``coef_`` comes from.
    """

    def _fit_head(self, X):
        if self.head is not None:
            return super()._fit_head(X)
        rng = np.random.RandomState(0)
        self.coef_, self.intercept_ = rng.randn(4, X.shape[1]), rng.randn(4)


class AutoHeadReAct(_AutoHead, ReAct):
    pass


class AutoHeadDICE(_AutoHead, DICE):
    pass


class AutoHeadASH(_AutoHead, ASH):
    pass


class AutoHeadLINe(_AutoHead, LINe):
    pass


@parametrize_with_checks([
    AutoHeadReAct(), AutoHeadDICE(), AutoHeadASH(percentile=50),
    AutoHeadLINe(p_a=50, p_w=50),
])
def test_sklearn_compatible_any_width(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # LINe: classes never predicted
        check(estimator)


def _head_3_to_4():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 4)


# Checks that feed X with a feature count other than 3, the real head's input
# size: they must fail with the documented "head expects 3 features" error.
_WIDTH_CHECKS = {
    "check_estimators_overwrite_params", "check_estimators_fit_returns_self",
    "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
    "check_outliers_fit_predict", "check_outliers_train", "check_classifier_data_not_an_array",
    "check_fit2d_1sample", "check_fit2d_1feature", "check_fit_idempotent",
    "check_fit_check_is_fitted", "check_n_features_in",
}


def _messages(exc):
    while exc is not None:
        yield str(exc)
        exc = exc.__cause__ or exc.__context__


@parametrize_with_checks([
    ReAct(_head_3_to_4()), DICE(_head_3_to_4()), ASH(_head_3_to_4(), percentile=50),
    LINe(_head_3_to_4(), p_a=50),
])
def test_sklearn_compatible_real_head(estimator, check):
    name = getattr(check, "func", check).__name__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if name not in _WIDTH_CHECKS:
            check(estimator)
            return
        with pytest.raises(Exception) as info:
            check(estimator)
    assert any(
        re.search(r"head expects 3 features .* but X has \d+ features", message)
        for message in _messages(info.value)
    ), str(info.value)
