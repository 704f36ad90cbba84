"""Metrics against brute-force definitions; scorers inside GridSearchCV."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_ood.metrics import (
    OOD_SCORERS,
    aupr,
    auroc,
    fpr95_scorer,
    fpr_at_tpr,
)


def brute_auroc(id_scores, ood_scores):
    wins = sum((a > b) + 0.5 * (a == b) for a in id_scores for b in ood_scores)
    return wins / (len(id_scores) * len(ood_scores))


def brute_fpr(id_scores, ood_scores, tpr):
    # Largest threshold t that accepts at least tpr of the ID scores (score >= t).
    for t in sorted(set(id_scores) | set(ood_scores), reverse=True):
        if np.mean(np.asarray(id_scores) >= t) >= tpr:
            return float(np.mean(np.asarray(ood_scores) >= t))
    raise AssertionError


def brute_average_precision(pos_scores, neg_scores):
    # AP = mean over positives of the precision at that positive's threshold.
    scores = np.concatenate([pos_scores, neg_scores])
    is_pos = np.r_[np.ones(len(pos_scores)), np.zeros(len(neg_scores))]
    precisions = [is_pos[scores >= s].mean() for s in pos_scores]
    return float(np.mean(precisions))


def test_hand_computed_values():
    y = np.array([3, 0, 1, 2, -1, -1, -1])  # class labels for ID, -1 for OOD
    s = np.array([0.9, 0.8, 0.7, 0.2, 0.75, 0.1, 0.05])
    # ID beats OOD in 3/3 (0.9), 3/3 (0.8), 2/3 (0.7 loses to .75), 2/3 (0.2): 10/12
    assert auroc(y, s) == pytest.approx(10 / 12)
    # 100 % ID TPR needs t = 0.2: OOD above: 0.75 -> 1/3
    assert fpr_at_tpr(y, s, tpr=1.0) == pytest.approx(1 / 3)
    # 50 % TPR: t = 0.8 -> no OOD above
    assert fpr_at_tpr(y, s, tpr=0.5) == 0.0
    # OOD positive: rank by -score; 2/3 OOD detected at -s >= -0.1 -> ID with s <= 0.1: none
    assert fpr_at_tpr(y, s, tpr=2 / 3, positive="ood") == 0.0
    # all OOD detected needs s <= 0.75: ID 0.7, 0.2 flagged -> 2/4
    assert fpr_at_tpr(y, s, tpr=1.0, positive="ood") == pytest.approx(0.5)
    # AUPR-In: ID positives at ranks 1, 2, 4, 5 -> (1 + 1 + 3/4 + 4/5) / 4
    assert aupr(y, s) == pytest.approx((1 + 1 + 0.75 + 0.8) / 4)


def test_ties_move_together():
    y = np.array([0, 0, 0, 0, -1, -1])
    s = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    # any threshold accepting ID also accepts the tied OOD sample
    assert fpr_at_tpr(y, s, tpr=0.25) == 0.5


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=12),
    st.lists(st.integers(0, 6), min_size=1, max_size=12),
    st.sampled_from([0.5, 0.8, 0.95, 1.0]),
)
def test_against_brute_force(id_scores, ood_scores, tpr):
    y = np.r_[np.zeros(len(id_scores)), -np.ones(len(ood_scores))]
    s = np.r_[id_scores, ood_scores].astype(float)
    assert auroc(y, s) == pytest.approx(brute_auroc(id_scores, ood_scores))
    assert fpr_at_tpr(y, s, tpr=tpr) == pytest.approx(brute_fpr(id_scores, ood_scores, tpr))
    assert fpr_at_tpr(y, s, tpr=tpr, positive="ood") == pytest.approx(
        brute_fpr([-v for v in ood_scores], [-v for v in id_scores], tpr))
    assert aupr(y, s) == pytest.approx(brute_average_precision(id_scores, ood_scores))
    assert aupr(y, s, positive="ood") == pytest.approx(
        brute_average_precision([-v for v in ood_scores], [-v for v in id_scores]))


def test_boolean_mask_is_is_id():
    s = np.array([0.9, 0.1])
    assert auroc(np.array([True, False]), s) == 1.0


@pytest.mark.parametrize("y", [[0, 1, 2], [-1, -1, -1]])
def test_single_population_is_an_error(y):
    with pytest.raises(ValueError, match="both ID and OOD"):
        auroc(y, [0.1, 0.2, 0.3])


def test_bad_arguments():
    with pytest.raises(ValueError, match="one label per row"):
        auroc([0, -1], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        auroc([0, -1], [0.1, np.nan])
    with pytest.raises(ValueError, match="positive"):
        aupr([0, -1], [0.1, 0.2], positive="in")
    with pytest.raises(ValueError, match="tpr"):
        fpr_at_tpr([0, -1], [0.1, 0.2], tpr=0)


def test_scorers_call_score_samples_and_read_negative_labels_as_ood():
    from sklearn_ood import MaxLogit

    rng = np.random.default_rng(0)
    X_id = rng.normal(size=(60, 3)) + [4, 0, 0]
    X_ood = rng.normal(size=(60, 3))
    X, y = np.vstack([X_id, X_ood]), np.r_[np.zeros(60, int), -np.ones(60, int)]
    det = MaxLogit().fit(X_id)
    assert OOD_SCORERS["auroc"](det, X, y) == pytest.approx(auroc(y, det.score_samples(X)))
    assert fpr95_scorer(det, X, y) == pytest.approx(-fpr_at_tpr(y, det.score_samples(X)))

    # In a search, each candidate fits on the ID rows of its training folds only.
    scale = FunctionTransformer(lambda X, a: X * a)
    search = GridSearchCV(
        make_pipeline(scale, MaxLogit()),
        {"functiontransformer__kw_args": [{"a": 1.0}, {"a": -1.0}]},
        scoring=OOD_SCORERS, refit="auroc", cv=3,
    )
    order = rng.permutation(120)
    search.fit(X[order], y[order])
    assert search.best_params_["functiontransformer__kw_args"] == {"a": 1.0}
