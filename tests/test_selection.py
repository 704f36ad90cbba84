"""Several pseudo-OOD sources, one rule: sources data, per-source scorers, the rule."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from sklearn_ood import BlockFeatureExtractor, Energy, KNN, MaxLogit, make_pseudo_ood
from sklearn_ood.held_out_classes import ClassSubsetDetector, HeldOutClassSplit
from sklearn_ood.selection import (
    SelectionRule, SourceScorer, combine_sources, make_pseudo_ood_sources, source_scorers,
)
from sklearn_ood.tuning import tune_on_pseudo_ood


def fpr_by_hand(s_id, s_ood):
    k = -(-95 * len(s_id) // 100)
    threshold = np.sort(s_id)[::-1][k - 1]
    return float(np.mean(s_ood >= threshold))


def ranks_by_hand(column):
    """1 = best (largest), ties share the mean of their ranks."""
    return np.array([1 + np.sum(column > v) + 0.5 * (np.sum(column == v) - 1) for v in column])


# ------------------------------------------------------------------------ the rule
def test_worst_rank_avoids_the_candidate_that_fails_one_source():
    # Five sources, scores -FPR95. Candidate 0 is the best on four sources and the
    # worst on the fifth (a detector that one kind of OOD breaks); candidate 1 is
    # second everywhere; candidate 2 is mediocre everywhere. Worst rank: 4, 2, 3.
    scores = -np.array([[0.10, 0.10, 0.10, 0.10, 0.95],
                        [0.20, 0.20, 0.20, 0.20, 0.30],
                        [0.40, 0.40, 0.40, 0.40, 0.40],
                        [0.50, 0.50, 0.50, 0.50, 0.50]])
    worst = combine_sources(scores, "worst_rank")
    assert int(np.argmin(worst)) == 1
    np.testing.assert_array_equal(np.floor(worst), [4, 2, 3, 4])
    # the mean rank forgives the failure: candidate 0 (ranks 1 1 1 1 4) beats 1 (2 2 2 2 1)
    np.testing.assert_allclose(combine_sources(scores, "mean_rank"), [1.6, 1.8, 2.8, 3.8])


def test_rule_ties_nan_and_bad_input():
    # NaN ranks last; worst ranks 3, 2, 3 and mean ranks 2, 2, 2: the tie-break term
    # (mean rank / (2 (n + 1))) is below half a rank step, so candidate 1 wins.
    scores = np.array([[-0.1, -0.3], [-0.2, -0.2], [np.nan, -0.1]])
    by_hand = np.column_stack([ranks_by_hand(np.array([-0.1, -0.2, -np.inf])),
                               ranks_by_hand(scores[:, 1])])
    np.testing.assert_array_equal(by_hand, [[1, 3], [2, 2], [3, 1]])
    np.testing.assert_allclose(combine_sources(scores, "worst_rank"),
                               [3 + 2 / 8, 2 + 2 / 8, 3 + 2 / 8])
    # ties within a source share their mean rank
    np.testing.assert_allclose(combine_sources(np.array([[0.5], [0.5], [0.1]]), "mean_rank"),
                               [1.5, 1.5, 3.0])
    with pytest.raises(ValueError, match="rule must be one of"):
        combine_sources(scores, "best")
    with pytest.raises(ValueError, match="n_candidates, n_sources"):
        combine_sources(np.zeros(3))


def test_selection_rule_reads_cv_results():
    cv_results = {"mean_test_a": np.array([-0.1, -0.2, -0.5]),
                  "mean_test_b": np.array([-0.9, -0.3, -0.2])}
    rule = SelectionRule(["a", "b"])
    assert rule(cv_results) == 1  # worst ranks 3, 2, 3
    assert SelectionRule(["a"])(cv_results) == 0


# ------------------------------------------------------------------- the sources
def test_sources_stack_each_corruption_with_its_label():
    X = np.random.default_rng(0).random((4, 1, 8, 8))
    X_aug, y_aug = make_pseudo_ood_sources(X, [0, 1, 1, 0], sources=("jigsaw", "blur"),
                                           random_state=0)
    np.testing.assert_array_equal(y_aug, [0, 1, 1, 0, -1, -1, -1, -1, -2, -2, -2, -2])
    np.testing.assert_array_equal(X_aug[:4], X)
    # blur is deterministic: the -2 rows are make_pseudo_ood's blur of X
    blurred = make_pseudo_ood(X, method="blur")[0][4:]
    np.testing.assert_allclose(X_aug[y_aug == -2], blurred)
    # jigsaw rows are permutations of the tiles of their image
    for puzzle, image in zip(X_aug[y_aug == -1], X):
        np.testing.assert_allclose(np.sort(puzzle[:, :6, :6], axis=None),
                                   np.sort(image[:, :6, :6], axis=None))
    scorers = source_scorers(("held_out", "jigsaw", "blur"))
    assert [(n, s.source) for n, s in scorers.items()] == [
        ("fpr95_held_out", "held_out"), ("fpr95_jigsaw", -1), ("fpr95_blur", -2)]
    with pytest.raises(ValueError, match="sources must be distinct names"):
        make_pseudo_ood_sources(X, sources=("jigsaw", "fog"))


def test_source_scorer_by_hand():
    # A detector fitted on classes 0 and 1 (classes_); the scorer of source -2 reads
    # the ID rows of those classes vs the rows labelled -2 only.
    X = np.array([[5.0, 0], [4.0, 0], [3.0, 0], [9.0, 0], [3.5, 0], [1.0, 0], [6.0, 0]])
    y = np.array([0, 1, 0, 2, -1, -2, -2])
    det = ClassSubsetDetector(MaxLogit()).fit(X[:3], y[:3])
    s = X[:, 0]
    assert SourceScorer(-2)(det, X, y) == -fpr_by_hand(s[:3], s[[5, 6]]) == -0.5
    assert SourceScorer(-1, "auroc")(det, X, y) == pytest.approx(2 / 3)
    # held out: class 2 (row 3, score 9) is OOD
    assert SourceScorer("held_out")(det, X, y) == -1.0
    with pytest.raises(ValueError, match="Wrap the detector in ClassSubsetDetector"):
        SourceScorer("held_out")(MaxLogit().fit(X), X, y)  # no classes_: nothing held out
    with pytest.raises(ValueError, match="source must be"):
        SourceScorer("fog")


def test_grid_search_scores_each_source_by_hand():
    rng = np.random.default_rng(0)
    y_id = np.repeat(np.arange(3), 20)
    X_id = rng.normal(0.0, 1.0, (60, 3)) + 3.0 * np.eye(3)[y_id]
    X = np.vstack([X_id, rng.normal(0.0, 1.0, (30, 3)), rng.normal(1.0, 2.0, (30, 3))])
    y = np.r_[y_id, -np.ones(30, int), -2 * np.ones(30, int)]
    cv = HeldOutClassSplit(3, n_held_out=1, random_state=0)
    scorers = source_scorers(("held_out", "noise", "blur"))
    grid = {"detector__n_neighbors": [1, 5, 20]}
    search = GridSearchCV(ClassSubsetDetector(KNN()), grid, cv=cv, scoring=scorers,
                          refit=SelectionRule(list(scorers)))
    search.fit(X, y)
    for i, k in enumerate(grid["detector__n_neighbors"]):
        for name, label in (("noise", -1), ("blur", -2), ("held_out", None)):
            by_fold = []
            for train, test in cv.split(X, y):
                s = KNN(n_neighbors=k).fit(X[train]).score_samples(X[test])
                seen = np.isin(y[test], np.unique(y[train])) & (y[test] >= 0)
                ood = (y[test] == label) if label else (y[test] >= 0) & ~seen
                by_fold.append(-fpr_by_hand(s[seen], s[ood]))
            assert search.cv_results_[f"mean_test_fpr95_{name}"][i] == pytest.approx(
                np.mean(by_fold))
    table = np.column_stack([search.cv_results_[f"mean_test_{n}"] for n in scorers])
    worst = np.max(np.column_stack([ranks_by_hand(c) for c in table.T]), axis=1)
    assert worst[search.best_index_] == worst.min()


def test_tune_on_several_sources():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 3))
    X = np.random.default_rng(0).random((45, 1, 9, 9), dtype=np.float32)
    y = np.arange(45) % 3
    result = tune_on_pseudo_ood(
        BlockFeatureExtractor(net, "3"), Energy(head=net[4]), {"temperature": [0.5, 2.0]},
        X, y, method=["held_out", "jigsaw", "noise"], random_state=0)
    columns = [f"mean_test_fpr95_{s}" for s in ("held_out", "jigsaw", "noise")]
    assert all(c in result.cv_results_ for c in columns)
    assert result.best_index_ == int(np.argmin(result.selection_))
    # one detector's knobs: the mean rank over the sources (rule="auto")
    table = np.column_stack([result.cv_results_[c] for c in columns])
    np.testing.assert_allclose(result.selection_,
                               np.mean([ranks_by_hand(c) for c in table.T], axis=0))
    assert isinstance(result.best_estimator_.steps[-1][1], Energy)  # unwrapped
    assert list(result.best_params_) == ["temperature"]
    np.testing.assert_array_equal(np.unique(result.labels_), [-2, -1, 0, 1, 2])
    assert result.features_.shape == (135, 4)
    with pytest.raises(ValueError, match="pass y"):
        tune_on_pseudo_ood(BlockFeatureExtractor(net, "3"), Energy(head=net[4]),
                           {"temperature": [1.0]}, X, method=["held_out", "jigsaw"])
    with pytest.raises(ValueError, match="scoring must name one metric"):
        tune_on_pseudo_ood(BlockFeatureExtractor(net, "3"), Energy(head=net[4]),
                           {"temperature": [1.0]}, X, y, method=["jigsaw"],
                           scoring=["fpr95"])
