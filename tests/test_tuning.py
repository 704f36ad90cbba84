"""Pseudo-OOD tuning: PseudoOODSplit and tune_on_pseudo_ood."""

import math
import warnings

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from sklearn_ood import BlockFeatureExtractor, Energy, MaxLogit
from sklearn_ood.detectors.line import LINe
from sklearn_ood.detectors.react import ReAct
from sklearn_ood.metrics import auroc_scorer
from sklearn_ood import PseudoOODSplit, make_pseudo_ood, tune_on_pseudo_ood




# ------------------------------------------------------------ independent helpers
def fpr_by_hand(s_id, s_ood):
    """FPR at 95 % TPR, ID positive: the threshold is the ceil(0.95 n)-th best ID score."""
    k = -(-95 * len(s_id) // 100)
    threshold = np.sort(s_id)[::-1][k - 1]
    return float(np.mean(s_ood >= threshold))


def auroc_by_hand(s_id, s_ood):
    wins = [(a > b) + 0.5 * (a == b) for a in s_id for b in s_ood]
    return float(np.mean(wins))


def react_by_hand(train, test, percentile, coef, intercept):
    clip = np.percentile(np.asarray(train, np.float64).ravel(), percentile)
    z = np.minimum(np.asarray(test, np.float64), clip) @ coef.T + intercept
    top = z.max(axis=1)
    return top + np.log(np.exp(z - top[:, None]).sum(axis=1))


def test_helpers_by_hand():
    # 20 ID scores 1..20: 19 must pass, threshold 2; OOD 19.5 passes, 0 does not.
    assert fpr_by_hand(np.arange(1.0, 21.0), np.array([19.5, 0.0])) == 0.5
    assert auroc_by_hand(np.array([2.0, 1.0]), np.array([1.0, 0.0])) == 0.875



# ------------------------------------------------------------------ PseudoOODSplit
def _mixed_labels():
    return np.array([0] * 10 + [1] * 10 + [2] * 10 + [-1] * 12)[
        np.random.default_rng(0).permutation(42)]


@pytest.mark.parametrize("shuffle, seed", [(True, 0), (False, None)])
def test_split_keeps_ood_out_of_training_folds(shuffle, seed):
    y = _mixed_labels()
    X = np.zeros((42, 2))
    folds = list(PseudoOODSplit(3, shuffle=shuffle, random_state=seed).split(X, y))
    assert len(folds) == 3 == PseudoOODSplit(3).get_n_splits()
    id_rows, ood_rows = set(np.flatnonzero(y >= 0)), set(np.flatnonzero(y < 0))
    seen_id, seen_ood = [], []
    for train, test in folds:
        assert set(train) <= id_rows  # no OOD row is ever trained on
        assert set(train) == id_rows - set(test)
        assert (y[test] >= 0).any() and (y[test] < 0).any()
        assert len(y[test][y[test] < 0]) == 4
        # stratified: each class has 3 or 4 of its 10 rows in each test fold
        assert all(np.sum(y[test] == c) in (3, 4) for c in range(3))
        seen_id += [i for i in test if i in id_rows]
        seen_ood += [i for i in test if i in ood_rows]
    assert sorted(seen_id) == sorted(id_rows)  # each ID row tested exactly once
    assert sorted(seen_ood) == sorted(ood_rows)


def test_split_falls_back_to_kfold_for_rare_classes():
    y = np.array([0] * 8 + [1] + [-1] * 5)  # class 1 has fewer rows than folds
    folds = list(PseudoOODSplit(3, random_state=0).split(np.zeros((14, 1)), y))
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(14))
    assert all((y[train] >= 0).all() for train, _ in folds)


def test_split_is_seeded():
    y, X = _mixed_labels(), np.zeros((42, 1))
    a = [t.tolist() for _, t in PseudoOODSplit(3, random_state=1).split(X, y)]
    b = [t.tolist() for _, t in PseudoOODSplit(3, random_state=1).split(X, y)]
    c = [t.tolist() for _, t in PseudoOODSplit(3, random_state=2).split(X, y)]
    assert a == b != c


def test_split_in_cross_val_score_matches_per_fold_auroc():
    rng = np.random.default_rng(0)
    logits = np.vstack([rng.normal(2.0, 1.0, (30, 3)), rng.normal(0.0, 1.0, (9, 3))])
    y = np.array([0, 1, 2] * 10 + [-1] * 9)
    cv = PseudoOODSplit(3, random_state=0)
    scores = cross_val_score(MaxLogit(), logits, y, cv=cv, scoring=auroc_scorer)
    expected = []
    for _, test in cv.split(logits, y):
        s = logits[test].max(axis=1)
        expected.append(auroc_by_hand(s[y[test] >= 0], s[y[test] < 0]))
    np.testing.assert_allclose(scores, expected)


@pytest.mark.parametrize("make, error, match", [
    (lambda: PseudoOODSplit(1), ValueError, "n_splits"),
    (lambda: PseudoOODSplit(2.5), ValueError, "n_splits"),
    (lambda: PseudoOODSplit(3, shuffle=False, random_state=0), ValueError, "shuffle=False"),
    (lambda: list(PseudoOODSplit(3).split(np.zeros((4, 1)), None)), ValueError, "needs y"),
    (lambda: list(PseudoOODSplit(3).split(np.zeros((8, 1)), [0] * 6 + [-1] * 2)),
     ValueError, "3 OOD rows"),
    # Class names carry no OOD marker: every row is ID.
    (lambda: list(PseudoOODSplit(2).split(np.zeros((4, 1)), ["a", "b", "c", "d"])),
     ValueError, "2 OOD rows"),
    (lambda: list(PseudoOODSplit(2).split(np.zeros((4, 1)), [0, 0, -1])),
     ValueError, "inconsistent"),
])
def test_split_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ------------------------------------------------ a small CNN trained on digits

@pytest.fixture
def tuning_data(digits_net, digits_images):
    """The session's trained SmallCNN and 300 held-out digits."""
    _, _, X_test, y_test = digits_images
    return digits_net, X_test[:300], y_test[:300]


def _head_arrays(net):
    return (net.fc.weight.detach().double().numpy(), net.fc.bias.detach().double().numpy())


def test_best_params_minimise_pseudo_ood_fpr95(tuning_data):
    net, X, y = tuning_data
    grid = {"percentile": [10, 50, 80, 90, 95, 99, 100]}
    extractor = BlockFeatureExtractor(net, "penultimate", batch_size=256)
    result = tune_on_pseudo_ood(extractor, ReAct(head=net.fc), grid, X, y, random_state=7)

    # Independent recomputation: the same images, features, folds, scores, FPR.
    X_aug, y_aug = make_pseudo_ood(X, y, random_state=7)
    F = BlockFeatureExtractor(net, "penultimate").fit(X).transform(X_aug)
    np.testing.assert_allclose(result.features_, F, rtol=1e-5, atol=1e-6)
    F = result.features_  # same values; avoid last-bit differences flipping a tie
    np.testing.assert_array_equal(result.labels_, y_aug)
    coef, intercept = _head_arrays(net)
    folds = list(PseudoOODSplit(3, random_state=7).split(F, y_aug))
    mean_fpr = []
    for p in grid["percentile"]:
        fprs = []
        for train, test in folds:
            s = react_by_hand(F[train], F[test], p, coef, intercept)
            fprs.append(fpr_by_hand(s[y_aug[test] >= 0], s[y_aug[test] < 0]))
        mean_fpr.append(np.mean(fprs))
    mean_fpr = np.array(mean_fpr)
    assert np.ptp(mean_fpr) > 0.02  # the grid matters on this model
    np.testing.assert_allclose(-result.cv_results_["mean_test_score"], mean_fpr, atol=1e-12)
    best = int(np.argmin(mean_fpr))
    assert result.best_index_ == best
    assert result.best_params_ == {"percentile": grid["percentile"][best]}
    assert result.best_score_ == pytest.approx(-mean_fpr[best])

    # best_estimator_: fitted extractor + ReAct refitted on the ID features only.
    model = result.best_estimator_
    assert isinstance(model, Pipeline) and model.named_steps["extractor"] is extractor
    assert model.named_steps["detector"].percentile == grid["percentile"][best]
    expected = react_by_hand(F[:300], F[:20], grid["percentile"][best], coef, intercept)
    np.testing.assert_allclose(model.score_samples(X[:20]), expected, rtol=1e-5)
    assert set(model.predict(X[:20])) <= {-1, 1}


def test_27_candidates_need_one_forward_pass_per_batch(tuning_data):
    net, X, y = tuning_data
    X, y = X[:90], y[:90]
    calls = []
    handle = net.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    try:
        grid = {"p_w": [10, 50, 90], "p_a": [10, 50, 90], "clip_percentile": [50, 90, None]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a class may miss a fold
            result = tune_on_pseudo_ood(
                BlockFeatureExtractor(net, "penultimate", batch_size=64),
                LINe(head=net.fc, clip=None), grid, X, y, random_state=0)
        n_aug = 2 * 90
        assert len(result.cv_results_["params"]) == 27
        assert len(result.search_.cv_results_["split2_test_score"]) == 27
        # 1-image shape probe in fit, then ceil(180 / 64) = 3 batches; nothing else
        assert calls == [1, 64, 64, 52]
        assert len(calls) == 1 + math.ceil(n_aug / 64)
        result.best_estimator_.score_samples(X[:5])
        assert len(calls) == 5
    finally:
        handle.remove()


def test_choose_among_detectors(tuning_data):
    net, X, y = tuning_data
    X, y = X[:150], y[:150]
    extractor = BlockFeatureExtractor(net, "penultimate")
    detectors = [Energy(head=net.fc), MaxLogit(head=net.fc), ReAct(head=net.fc)]
    result = tune_on_pseudo_ood(extractor, None, {"detector": detectors}, X, y,
                                random_state=0)
    means = result.cv_results_["mean_test_score"]
    assert result.best_index_ == int(np.argmax(means))
    chosen = result.best_params_["detector"]
    assert type(chosen) is type(detectors[result.best_index_])
    fitted = result.best_estimator_.named_steps["detector"]
    assert type(fitted) is type(chosen) and hasattr(fitted, "offset_")
    # Candidate scores agree with the one-detector search on the same features.
    coef, intercept = _head_arrays(net)
    folds = list(PseudoOODSplit(3, random_state=0).split(result.features_, result.labels_))
    F, labels = result.features_.astype(np.float64), result.labels_
    energy_fpr = np.mean([fpr_by_hand(
        react_by_hand(F[tr], F[te], 100, coef, intercept)[labels[te] >= 0],
        react_by_hand(F[tr], F[te], 100, coef, intercept)[labels[te] < 0])
        for tr, te in folds])  # ReAct at the 100th percentile = plain energy
    assert means[0] == pytest.approx(-energy_fpr)

    # A list of grids: per-detector parameters.
    grids = [{"detector": [ReAct(head=net.fc)], "detector__percentile": [50, 90]},
             {"detector": [LINe(head=net.fc, clip=None)], "detector__p_a": [10, 90]}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = tune_on_pseudo_ood(extractor, ReAct(head=net.fc), grids, X, y,
                                    scoring="auroc", random_state=0)
    means = result.cv_results_["mean_test_score"]
    assert len(means) == 4 and result.best_index_ == int(np.argmax(means))
    step = result.best_estimator_.named_steps["detector"]
    name = "percentile" if isinstance(step, ReAct) else "p_a"
    assert getattr(step, name) == result.best_params_[f"detector__{name}"]


def test_without_labels_detectors_are_fitted_without_labels(tuning_data):
    net, X, _ = tuning_data
    X = X[:90]
    with warnings.catch_warnings():
        # With placeholder labels 0, LINe would warn about 9 empty classes.
        warnings.simplefilter("error", UserWarning)
        result = tune_on_pseudo_ood(
            BlockFeatureExtractor(net, "penultimate"), LINe(head=net.fc, clip=None),
            {"p_a": [10, 90]}, X, random_state=0)
    assert set(result.best_params_) == {"p_a"}
    assert "param_p_a" in result.cv_results_
    assert result.cv_results_["params"] == [{"p_a": 10}, {"p_a": 90}]
    fitted = result.best_estimator_.named_steps["detector"]
    reference = LINe(head=net.fc, clip=None, p_a=result.best_params_["p_a"]).fit(
        result.features_[:90])
    np.testing.assert_allclose(fitted.shapley_, reference.shapley_)


def test_precomputed_features_and_multi_metric():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 1.0, (40, 4))
    X_pseudo = rng.normal(0.0, 1.0, (20, 4))
    result = tune_on_pseudo_ood(
        None, Energy(), {"temperature": [0.1, 1.0, 10.0]}, X, X_pseudo=X_pseudo,
        scoring=["auroc", "fpr95"], refit="auroc", random_state=0)
    aurocs = result.cv_results_["mean_test_auroc"]
    assert result.best_index_ == int(np.argmax(aurocs))
    assert isinstance(result.best_estimator_, Energy)
    np.testing.assert_array_equal(result.labels_, [np.nan] * 40 + [-1] * 20)
    none = tune_on_pseudo_ood(None, Energy(), {"temperature": [1.0]}, X,
                              X_pseudo=X_pseudo, scoring=["auroc"], refit=False)
    assert none.best_estimator_ is None and none.best_params_ is None


@pytest.mark.parametrize("kwargs, error, match", [
    ({"param_grid": {"detector": [Energy()], "temperature": [1.0]}}, ValueError,
     "Invalid parameter 'temperature'"),
    ({"scoring": "roc_auc"}, ValueError, "scoring must be one of"),
    ({"scoring": ["auroc", "fpr95"]}, ValueError, "refit must be set to a scorer key"),
    ({"detector": None}, ValueError, "detector is None"),
    ({"X_pseudo": None}, ValueError, "pass X_pseudo"),
    ({"X_pseudo": np.zeros((5, 3))}, ValueError, "shape of X"),
])
def test_tune_bad_input(kwargs, error, match):
    args = {"detector": Energy(), "param_grid": {"temperature": [1.0]},
            "X_pseudo": np.zeros((6, 4))}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        tune_on_pseudo_ood(None, args.pop("detector"), args.pop("param_grid"),
                           np.ones((6, 4)), **args)


def test_candidates_are_fitted_without_thresholds_and_score_as_plain_fits(monkeypatch):
    from sklearn_ood import KNN

    rng = np.random.default_rng(0)
    X, X_pseudo = rng.normal(1.0, 1.0, (60, 4)), rng.normal(0.0, 1.0, (30, 4))
    thresholds = []  # the rows each threshold step scores
    step = KNN._training_scores
    monkeypatch.setattr(KNN, "_training_scores",
                        lambda self, X, rows: thresholds.append(len(X)) or step(self, X, rows))
    grid = {"n_neighbors": [1, 3, 5]}
    fast = tune_on_pseudo_ood(None, KNN(), grid, X, X_pseudo=X_pseudo, random_state=0)
    assert thresholds == [60]  # the best detector's final fit only

    # A scorer of one's own may read the threshold: every fit sets it.
    def fpr95_from_decisions(estimator, X, y):
        decision = estimator.decision_function(X)  # ID rows are labelled NaN here
        return -fpr_by_hand(decision[~(y < 0)], decision[y < 0])

    thresholds.clear()
    plain = tune_on_pseudo_ood(None, KNN(), grid, X, X_pseudo=X_pseudo,
                               scoring=fpr95_from_decisions, random_state=0)
    assert len(thresholds) == 3 * 3 + 1  # 3 candidates x 3 folds, and the refit
    assert np.ptp(fast.cv_results_["mean_test_score"]) > 0  # the grid matters
    assert fast.best_params_ == plain.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(fast.cv_results_[key], plain.cv_results_[key], atol=1e-12)
    reference = KNN(**fast.best_params_).fit(X)
    assert fast.best_estimator_.offset_ == reference.offset_
    np.testing.assert_array_equal(fast.best_estimator_.predict(X_pseudo),
                                  reference.predict(X_pseudo))
