"""Held-out classes as pseudo-OOD: HeldOutClassSplit and ClassSubsetDetector."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_ood import Energy, KNN, MaxLogit, SHE
from sklearn_ood.held_out_classes import (
    ClassSubsetDetector, HeldOutClassSplit, held_out_schedule, reads_head, restrict_head,
)
from sklearn_ood.selection import SourceScorer


def fpr_by_hand(s_id, s_ood):
    """FPR at 95 % TPR, ID positive: the threshold is the ceil(0.95 n)-th best ID score."""
    k = -(-95 * len(s_id) // 100)
    threshold = np.sort(s_id)[::-1][k - 1]
    return float(np.mean(s_ood >= threshold))


# ----------------------------------------------------------------- the splitter
def test_split_by_hand():
    # Unshuffled: StratifiedKFold puts the first row of each class in fold 0; fold k
    # leaves out class k; OOD rows 6 and 7 go to folds 0 and 1.
    y = np.array([0, 0, 1, 1, 2, 2, -1, -1])
    folds = list(HeldOutClassSplit(2, n_held_out=1, shuffle=False).split(np.zeros((8, 1)), y))
    assert [(train.tolist(), test.tolist()) for train, test in folds] == [
        ([3, 5], [0, 1, 2, 4, 6]),     # class 0 out: rows 0, 1 tested, never trained
        ([0, 4], [1, 2, 3, 5, 7]),     # class 1 out: rows 2, 3
    ]


def test_schedule_by_hand():
    # 5 classes, 2 out per split, no shuffle: the cycle 0 1 | 2 3 | 4 0 | 1 2
    held = held_out_schedule([4, 3, 2, 1, 0], 4, 2, random_state=False)
    assert [h.tolist() for h in held] == [[0, 1], [2, 3], [0, 4], [1, 2]]
    shuffled = held_out_schedule(range(10), 5, 2, random_state=0)
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(10))  # each out once


@pytest.mark.parametrize("seed", [0, 1])
def test_split_invariants(seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.array([0] * 12 + [1] * 12 + [2] * 12 + [3] * 12 + [-1] * 8 + [-2] * 8))
    cv = HeldOutClassSplit(4, n_held_out=0.25, random_state=seed)
    folds = list(cv.split(np.zeros((len(y), 1)), y))
    assert len(folds) == 4 == cv.get_n_splits()
    out = []
    for train, test in folds:
        assert not set(train) & set(test)
        held = np.setdiff1d(np.arange(4), y[train])
        assert held.size == 1                          # one class of four left out
        assert set(np.flatnonzero(y == held[0])) <= set(test)   # all its rows tested
        assert (y[train] >= 0).all()                   # OOD never trained on
        assert ((y[test] < 0).sum()) == 4              # a quarter of the OOD rows
        out.append(held[0])
    assert sorted(out) == [0, 1, 2, 3]                 # each class left out once
    again = [t.tolist() for _, t in HeldOutClassSplit(
        4, n_held_out=1, random_state=seed).split(np.zeros((len(y), 1)), y)]
    assert again == [t.tolist() for _, t in folds]


@pytest.mark.parametrize("make, match", [
    (lambda: HeldOutClassSplit(1), "n_splits"),
    (lambda: HeldOutClassSplit(2, n_held_out=0), "n_held_out"),
    (lambda: HeldOutClassSplit(2, n_held_out=1.5), "n_held_out"),
    (lambda: HeldOutClassSplit(2, shuffle=False, random_state=0), "shuffle=False"),
    (lambda: list(HeldOutClassSplit(2).split(np.zeros((4, 1)), None)), "needs y"),
    (lambda: list(HeldOutClassSplit(2).split(np.zeros((4, 1)), [0, 0, 0, 0])), "2 ID classes"),
    (lambda: list(HeldOutClassSplit(2, n_held_out=2).split(np.zeros((4, 1)), [0, 0, 1, 1])),
     "n_held_out must leave"),
    (lambda: list(HeldOutClassSplit(2).split(np.zeros((3, 1)), [0.0, 1.0, np.nan])), "NaN"),
])
def test_split_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------- the masked head
HEAD = (np.array([[1.0, 0.0], [5.0, 5.0], [0.0, 1.0]]), np.array([0.0, 0.0, 0.5]))


def test_restrict_head_by_hand():
    coef, intercept = restrict_head(HEAD, [2, 0])
    np.testing.assert_array_equal(coef, [[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(intercept, [0.5, 0.0])
    with pytest.raises(ValueError, match="index the head's 3 rows"):
        restrict_head(HEAD, [3])
    with pytest.raises(TypeError, match="module name"):
        restrict_head("fc", [0])


def test_masked_head_scores_by_hand():
    # Fitted on classes 0 and 2: logits x W[[0, 2]] + b[[0, 2]]; class 1's row (which
    # would dominate) is gone. x = (2, 1): kept logits (2, 1.5) -> MaxLogit 2.
    X = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0], [4.0, 0.0]])
    y = np.array([0, 2, 2, -1])
    det = ClassSubsetDetector(MaxLogit(head=HEAD)).fit(X, y)
    np.testing.assert_array_equal(det.classes_, [0, 2])
    np.testing.assert_allclose(det.score_samples(X), [2.0, 3.5, 1.5, 4.0])
    full = MaxLogit(head=HEAD).fit(X[:3]).score_samples(X)
    np.testing.assert_allclose(full, [15.0, 15.0, 10.0, 20.0])
    assert det.predict(X).shape == (4,) and det.decision_function(X).shape == (4,)


def test_labels_reencoded_for_the_restricted_head():
    # SHE's pattern of class c = mean of the rows of label c that the head classifies
    # as c. Classes 1 and 2 kept: codes 0 (class 1) and 1 (class 2).
    X = np.array([[3.0, 3.0], [1.0, 1.0], [0.0, 2.0], [0.0, 4.0]])
    y = np.array([1, 1, 2, 2])
    with pytest.warns(UserWarning, match="no correctly classified"):
        det = ClassSubsetDetector(SHE(head=HEAD)).fit(X, y)
    # restricted logits: row 1 -> (30, 3.5), row 2 -> (10, 1.5): both class 1 (code 0);
    # rows 3, 4 -> (10, 2.5), (20, 4.5): predicted class 1, labelled 2: no correct row,
    # so pattern 1 is the mean of its rows (with a warning).
    np.testing.assert_allclose(det.detector_.patterns_, [[2.0, 2.0], [0.0, 3.0]])


def test_all_classes_leave_the_head_untouched():
    det = ClassSubsetDetector(Energy(head=HEAD)).fit(np.eye(2)[[0, 1, 0]], [0, 1, 2])
    np.testing.assert_array_equal(det.detector_.coef_, HEAD[0])  # all 3 rows
    knn = ClassSubsetDetector(KNN(n_neighbors=1), use_labels=False).fit(np.eye(2), [3, 5])
    np.testing.assert_array_equal(knn.classes_, [3, 5])  # no head: any labels
    assert reads_head(Energy()) and not reads_head(KNN())


def test_subset_detector_is_a_clean_estimator():
    det = ClassSubsetDetector(Energy(head=HEAD), use_labels=False)
    assert clone(det).get_params()["use_labels"] is False
    with pytest.raises(ValueError, match="needs y"):
        det.fit(np.eye(2), None)
    with pytest.raises(ValueError, match="class label of every ID row"):
        det.fit(np.eye(2), [0.0, np.nan])
    assert not hasattr(det, "classes_")


# ------------------------------------------------- a search over held-out classes
def test_grid_search_scores_held_out_classes_by_hand():
    # Features are logits of 4 classes (identity head); class c's rows are loud in
    # column c. Each fold's detector keeps 3 columns; the rows of the held-out class
    # are pseudo-OOD. The search score is recomputed fold by fold.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 15)
    X = rng.normal(0.0, 1.0, (60, 4)) + 3.0 * np.eye(4)[y]
    head = (np.eye(4), np.zeros(4))
    cv = HeldOutClassSplit(4, n_held_out=1, random_state=0)
    search = GridSearchCV(ClassSubsetDetector(MaxLogit(head=head)),
                          {"detector__head": [head]}, cv=cv,
                          scoring={"held": SourceScorer("held_out")}, refit=False)
    search.fit(X, y)
    expected = []
    for train, test in cv.split(X, y):
        kept = np.unique(y[train])
        s = X[test][:, kept].max(axis=1)
        seen = np.isin(y[test], kept)
        expected.append(-fpr_by_hand(s[seen], s[~seen]))
    got = [search.cv_results_[f"split{k}_test_held"][0] for k in range(4)]
    np.testing.assert_allclose(got, expected)
