"""KNN: the k-th nearest L2-normalised training feature, plain and NAN-rescaled."""

import copy
import importlib.util
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_ood.detectors import _neighbors
from sklearn_ood.detectors.knn import KNN, kth_neighbor_sqdist
from sklearn_ood.metrics import auroc, auroc_scorer

from _helpers import (
    blobs_with_ood,
    check_failed_calls_leave_detector_unchanged,
    negative_aware_norm_by_hand,
)
from sklearn_ood.discovery import tuning_grid


# CI installs faiss-cpu (the test extra); without it these tests are skipped.
needs_faiss = pytest.mark.skipif(importlib.util.find_spec("faiss") is None,
                                 reason='needs faiss-cpu: pip install "sklearn-ood[faiss]"')
FAISS_ALGORITHMS = ["faiss-flat", "faiss-ivf", "faiss-hnsw"]


def _loop_knn(bank, X, k, skip_self=False):
    """-(k-th smallest squared distance) between normalised rows, by sorting."""
    out = []
    for i, x in enumerate(X):
        xn = x / np.sqrt(sum(v * v for v in x))
        dists = []
        for j, b in enumerate(bank):
            if skip_self and i == j:
                continue
            bn = b / np.sqrt(sum(v * v for v in b))
            dists.append(sum((xn - bn) ** 2))
        out.append(-sorted(dists)[k - 1])
    return np.array(out)


def test_knn_kth_neighbour_matches_brute_force():
    rng = np.random.default_rng(0)
    bank, X = rng.normal(size=(15, 3)), rng.normal(size=(6, 3))
    det = KNN(n_neighbors=4).fit(bank)
    expected = _loop_knn(bank, X, 4)
    np.testing.assert_allclose(det.score_samples(X), expected, atol=1e-12)
    np.testing.assert_allclose(det.bank_, bank / np.linalg.norm(bank, axis=1)[:, None])
    # k-th distance, not the mean of the k nearest
    mean_of_k = np.mean([_loop_knn(bank, X, j) for j in range(1, 5)], axis=0)
    assert not np.allclose(expected, mean_of_k)
    # scale invariance of the normalised features
    np.testing.assert_allclose(det.score_samples(3 * X), expected, atol=1e-12)


def test_knn_hand_values_and_zero_rows():
    bank = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    det = KNN(n_neighbors=2).fit(bank)
    # (1, 1)/sqrt2: squared distances to e1, e2, -e1 = 2 - sqrt2, 2 - sqrt2, 2 + sqrt2
    # a zero row stays zero: squared distance 1 to every unit bank row
    np.testing.assert_allclose(det.score_samples([[1.0, 1.0], [0.0, 0.0]]),
                               [-(2 - np.sqrt(2)), -1.0])


def test_knn_offset_excludes_each_training_rows_own_match():
    rng = np.random.default_rng(1)
    bank = rng.normal(size=(20, 3))
    det = KNN(n_neighbors=2, contamination=0.2).fit(bank)
    loo = _loop_knn(bank, bank, 2, skip_self=True)
    assert det.offset_ == pytest.approx(np.percentile(loo, 20))
    with_self = _loop_knn(bank, bank, 2)  # what score_samples(bank) gives
    np.testing.assert_allclose(det.score_samples(bank), with_self, atol=1e-12)
    assert det.offset_ < np.percentile(with_self, 20)
    # an exact duplicate of a training row is still a neighbour at distance 0
    dup = np.vstack([bank, bank[:1]])
    np.testing.assert_allclose(kth_neighbor_sqdist(dup, dup, 1, exclude=np.arange(len(dup)))[[0, -1]],
                               [0.0, 0.0], atol=1e-12)


def test_kth_neighbor_sqdist_matches_loops_and_errors():
    rng = np.random.default_rng(2)
    bank, X = rng.normal(size=(9, 2)), rng.normal(size=(7, 2))
    full = kth_neighbor_sqdist(X, bank, 3)
    np.testing.assert_allclose(full, [sorted(((x - bank) ** 2).sum(1))[2] for x in X])
    # Leave-one-out: each bank row against the other eight.
    loo = [sorted(np.delete(((b - bank) ** 2).sum(1), i))[7] for i, b in enumerate(bank)]
    np.testing.assert_allclose(kth_neighbor_sqdist(bank, bank, 8, exclude=np.arange(9)), loo)
    # ... and for a subset of the bank rows, in any order.
    rows = np.array([7, 2, 5])
    np.testing.assert_allclose(kth_neighbor_sqdist(bank[rows], bank, 8, exclude=rows),
                               np.array(loo)[rows])
    with pytest.raises(ValueError, match="k=10 neighbours requested but the bank holds 9"):
        kth_neighbor_sqdist(X, bank, 10)
    with pytest.raises(ValueError, match="choose 1 <= k <= 8"):
        kth_neighbor_sqdist(bank, bank, 9, exclude=np.arange(9))


def test_knn_too_many_neighbours_is_a_clear_error():
    with pytest.raises(ValueError, match=r"n_neighbors=5 needs at least 6 .*n_samples=5"):
        KNN(n_neighbors=5).fit(np.eye(5))


def test_knn_keeps_float32_bank():
    X = np.random.default_rng(3).normal(size=(10, 4)).astype(np.float32)
    det = KNN(n_neighbors=2).fit(X)
    assert det.bank_.dtype == np.float32
    scores = det.score_samples(X.astype(np.float64))
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, _loop_knn(X.astype(float), X.astype(float), 2),
                               atol=1e-5)


# ---------------------------------------------------------------------------
# NAN rescaling
# ---------------------------------------------------------------------------
def test_knn_negative_aware_rescale_2d():
    rng = np.random.default_rng(4)
    bank = np.maximum(rng.normal(size=(12, 5)), 0) + 0.01
    X = np.maximum(rng.normal(size=(5, 5)), 0)
    X[0, :] = [0.0, 2.0, 0.0, 4.0, 0.0]  # NAN = 6 / 2 = 3
    det = KNN(n_neighbors=3, negative_aware_rescale=True).fit(bank)
    d = np.sqrt(-_loop_knn(bank, X, 3))
    np.testing.assert_allclose(det.score_samples(X), -d / negative_aware_norm_by_hand(X),
                               rtol=1e-10)
    assert det.score_samples(X[:1])[0] == pytest.approx(-d[0] / 3.0)
    # leave-one-out training scores set the offset here too
    loo = np.sqrt(-_loop_knn(bank, bank, 3, skip_self=True))
    loo /= negative_aware_norm_by_hand(bank)
    assert det.offset_ == pytest.approx(np.percentile(-loo, 5))


def test_negative_aware_rescale_4d_uses_pooled_distance_and_flattened_norm():
    rng = np.random.default_rng(5)
    maps = np.maximum(rng.normal(size=(14, 3, 2, 2)), 0)
    test = np.maximum(rng.normal(size=(4, 3, 2, 2)), 0)
    test[1] = 0.0  # no active unit: NAN = 0 -> huge negative but finite
    pooled, test_pooled = maps.mean(axis=(2, 3)), test.mean(axis=(2, 3))
    knn = KNN(n_neighbors=2, negative_aware_rescale=True).fit(maps)
    got = knn.score_samples(test)
    d = np.sqrt(-_loop_knn(pooled, test_pooled[[0, 2, 3]], 2))
    np.testing.assert_allclose(got[[0, 2, 3]],
                               -d / negative_aware_norm_by_hand(test[[0, 2, 3]]), rtol=1e-10)
    assert np.isfinite(got[1]) and got[1] < -1e300
    # without negative_aware_rescale a 4-D map is average-pooled
    np.testing.assert_allclose(KNN(n_neighbors=2).fit(maps).score_samples(test[[0, 2, 3]]),
                               _loop_knn(pooled, test_pooled[[0, 2, 3]], 2), atol=1e-12)
    with pytest.raises(ValueError, match="fitted on 4-D"):
        knn.score_samples(test_pooled)


# ---------------------------------------------------------------------------
# Tuning grid
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_samples, ks", [
    (2, [1]), (6, [1, 5]), (50, [1, 5, 10, 20]), (51, [1, 5, 10, 20, 50]),
    (201, [1, 5, 10, 20, 50, 100, 200]),
])
def test_tuning_grid_candidates_fit(n_samples, ks):
    candidates = list(ParameterGrid(tuning_grid(KNN, n_samples)))
    assert [params["n_neighbors"] for params in candidates] == ks
    X = np.random.default_rng(n_samples).normal(size=(n_samples, 3))
    det = KNN()
    for params in candidates:
        det.set_params(**params).fit(X)
        np.testing.assert_allclose(det.score_samples(X[:3]),
                                   _loop_knn(X, X[:3], params["n_neighbors"]), atol=1e-12)
    # the next value left out would not fit: KNN needs n_neighbors + 1 rows
    left_out = [k for k in (1, 5, 10, 20, 50, 100, 200) if k not in ks]
    if left_out:
        with pytest.raises(ValueError, match="needs at least"):
            det.set_params(n_neighbors=left_out[0]).fit(X)

# ---------------------------------------------------------------------------
# Errors, pipelines, grid search
# ---------------------------------------------------------------------------
def test_errors_leave_the_fitted_estimator_unchanged():
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(12, 3)), np.repeat([0, 1], 6)
    det = KNN(n_neighbors=2).fit(X, y)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="n_neighbors=20"):
        det.set_params(n_neighbors=20).fit(X, y)
    det.set_params(n_neighbors=2)
    assert pickle.dumps(det) == state
    check_failed_calls_leave_detector_unchanged(det, X, y)


def test_grid_search_tunes_knn_in_a_pipeline():
    X, y = blobs_with_ood()
    pipe = Pipeline([("shift", FunctionTransformer(lambda Z: Z + 0.5)), ("knn", KNN())])
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    ks = [1, 5, 40]
    search = GridSearchCV(pipe, {"knn__n_neighbors": ks}, scoring=auroc_scorer,
                          cv=cv, error_score="raise").fit(X, y)
    # Each fold by hand: the bank is the shifted ID rows of the training part (the
    # OOD rows, label -1, are left out), the test part scored by the loop reference.
    expected = [
        np.mean([roc_auc_score(y[test] >= 0,
                               _loop_knn(X[train][y[train] >= 0] + 0.5, X[test] + 0.5, k))
                 for train, test in cv.split(X, y)])
        for k in ks
    ]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], expected)
    assert search.best_params_["knn__n_neighbors"] == ks[int(np.argmax(expected))]
    assert search.best_score_ > 0.8
    assert auroc(y, search.score_samples(X)) > 0.8


# ---------------------------------------------------------------------------
# Search back-ends (faiss)
# ---------------------------------------------------------------------------
# Exact on small data: IVF with n_probe >= n_lists scans every list; the HNSW
# graph of 40 rows with hnsw_m=32 links every row to all others on its bottom
# layer (up to 2 * hnsw_m links there), and ef_search >= 40 visits them all.
EXACT_SETTINGS = {
    "brute": {},
    "faiss-flat": {},
    "faiss-ivf": {"n_lists": 6, "n_probe": 6, "random_state": 0},
    "faiss-hnsw": {"ef_search": 40},
}


@needs_faiss
@pytest.mark.parametrize("algorithm", list(EXACT_SETTINGS))
def test_every_backend_matches_brute_force_on_small_data(algorithm):
    rng = np.random.default_rng(20)
    bank, X = rng.normal(size=(40, 5)), rng.normal(size=(9, 5))
    det = KNN(n_neighbors=4, algorithm=algorithm, contamination=0.25,
              **EXACT_SETTINGS[algorithm]).fit(bank)
    atol = 1e-12 if algorithm == "brute" else 1e-6  # faiss searches in float32
    np.testing.assert_allclose(det.score_samples(X), _loop_knn(bank, X, 4), atol=atol)
    loo = _loop_knn(bank, bank, 4, skip_self=True)
    assert det.offset_ == pytest.approx(np.percentile(loo, 25), abs=atol)
    assert det.bank_.dtype == (np.float64 if algorithm == "brute" else np.float32)
    assert (det.index_ is None) == (algorithm in ("brute", "faiss-flat"))


@needs_faiss
def test_ivf_with_few_probes_is_approximate_but_never_underestimates():
    """One probed list of 30 misses neighbours: k-th distances can only grow."""
    rng = np.random.default_rng(21)
    bank, X = rng.normal(size=(900, 8)), rng.normal(size=(50, 8))
    exact = _loop_knn(bank, X, 10)
    approx = KNN(n_neighbors=10, algorithm="faiss-ivf", n_lists=30, n_probe=1,
                 random_state=0).fit(bank).score_samples(X)
    assert np.all(approx <= exact + 1e-6)
    assert np.any(approx < exact - 1e-3)


@needs_faiss
@pytest.mark.parametrize("algorithm", list(EXACT_SETTINGS))
def test_leave_one_out_with_duplicates(algorithm):
    # Rows 0-2 are identical, row 3 is 1 away, row 4 is 3 away from them.
    bank = np.array([[0.0], [0.0], [0.0], [1.0], [3.0]], dtype=np.float32)
    index = _neighbors.build_index(bank, algorithm, n_lists=2, n_probe=2, ef_search=40)
    loo = lambda k: kth_neighbor_sqdist(bank, bank, k, exclude=np.arange(5),  # noqa: E731
                                        algorithm=algorithm, index=index)
    # k = 1, 2: for rows 0-2 a duplicate is a neighbour at distance 0, whether or
    # not the row itself is among the k + 1 returned (three rows tie at 0).
    # Row 3's other rows are at 1, 1, 1, 4; row 4's at 9, 9, 9, 4.
    np.testing.assert_allclose(loo(1), [0, 0, 0, 1, 4])
    np.testing.assert_allclose(loo(2), [0, 0, 0, 1, 9])
    np.testing.assert_allclose(loo(3), [1, 1, 1, 1, 9])


class _FixedIndex:
    """A stand-in approximate index returning prepared neighbours."""

    def __init__(self, sqdist, neighbors):
        self.result = np.array(sqdist, np.float32), np.array(neighbors, np.int64)

    def search(self, query, k):
        return self.result[0][:, :k].copy(), self.result[1][:, :k].copy()


@needs_faiss
def test_leave_one_out_when_the_search_misses_the_row_or_returns_too_few():
    bank = np.array([[0.0], [1.0], [3.0], [4.0]], dtype=np.float32)
    # Row 0's search missed the row itself (its 2 results are rows 1, 2): its
    # 1st other neighbour is the 1st returned, 1. Row 1's search found itself.
    index = _FixedIndex([[1, 9], [0, 1]], [[1, 2], [1, 0]])
    got = kth_neighbor_sqdist(bank[:2], bank, 1, exclude=np.array([0, 1]),
                              algorithm="faiss-ivf", index=index)
    np.testing.assert_allclose(got, [1, 1])
    # A search that found fewer than k rows (-1): that query is searched exactly.
    index = _FixedIndex([[0, 3.4e38], [1, 4]], [[0, -1], [1, 0]])
    got = kth_neighbor_sqdist(np.array([[0.5], [2.0]]), bank, 2,
                              algorithm="faiss-ivf", index=index)
    np.testing.assert_allclose(got, [0.25, 4])


@needs_faiss
@pytest.mark.parametrize("algorithm", FAISS_ALGORITHMS)
def test_pickle_deepcopy_and_clone_keep_the_search(algorithm):
    rng = np.random.default_rng(22)
    bank, X = rng.normal(size=(300, 6)), rng.normal(size=(20, 6))
    det = KNN(n_neighbors=5, algorithm=algorithm, n_probe=2, ef_search=8,
              random_state=0).fit(bank)
    scores = det.score_samples(X)
    for copied in (pickle.loads(pickle.dumps(det)), copy.deepcopy(det)):
        np.testing.assert_array_equal(copied.score_samples(X), scores)
        assert copied.offset_ == det.offset_
    assert not hasattr(clone(det), "index_")


@needs_faiss
def test_ivf_fit_is_deterministic_given_random_state():
    rng = np.random.default_rng(23)
    bank = rng.normal(size=(2000, 8)).astype(np.float32)
    fit = lambda seed: KNN(algorithm="faiss-ivf", n_lists=40, n_probe=2,  # noqa: E731
                           random_state=seed).fit(bank)
    centroids = lambda det: det.index_.quantizer.reconstruct_n(0, 40)  # noqa: E731
    a, b, c = fit(0), fit(0), fit(1)
    np.testing.assert_array_equal(centroids(a), centroids(b))
    np.testing.assert_array_equal(a.score_samples(bank[:50]), b.score_samples(bank[:50]))
    assert a.offset_ == b.offset_
    assert not np.array_equal(centroids(a), centroids(c))


def test_faiss_is_optional(monkeypatch):
    code = "import sys, sklearn_ood; sys.exit('faiss' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    rng = np.random.default_rng(24)
    det = KNN(n_neighbors=2).fit(rng.normal(size=(10, 3)))
    state = pickle.dumps(det)
    with pytest.raises(ImportError, match=r'pip install "sklearn-ood\[faiss\]"'):
        det.set_params(algorithm="faiss-hnsw").fit(rng.normal(size=(10, 3)))
    assert pickle.dumps(det.set_params(algorithm="brute")) == state
