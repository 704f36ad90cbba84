"""partial_fit of the detectors whose statistics add up.

Mahalanobis, GaussianDensity and ViM (class moments), DICE, FDBD and NCI (the
feature mean), LINe (class means) and KNN (its bank of rows).
"""

import copy
import importlib.util
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import (
    check_estimators_partial_fit_n_features,
    check_n_features_in_after_fitting,
)

from sklearn_ood import DICE, FDBD, KNN, NCI, GaussianDensity, LINe, Mahalanobis, ViM
from sklearn_ood._base import OFFSET_SAMPLE_SIZE, merge_offset_sample, offset_sample
from sklearn_ood._moments import CHUNK_ROWS

rng = np.random.default_rng(0)
X = rng.normal(size=(300, 4)) + np.repeat(np.eye(4)[:3] * 3, 100, axis=0)
Y = np.repeat([0, 1, 2], 100)
HEAD = (rng.normal(size=(3, 4)), rng.normal(size=3))

needs_faiss = pytest.mark.skipif(importlib.util.find_spec("faiss") is None,
                                 reason='needs faiss-cpu: pip install "sklearn-ood[faiss]"')

DETECTORS = {
    "Mahalanobis": lambda: Mahalanobis(),
    "Mahalanobis-normalize": lambda: Mahalanobis(normalize=True),
    "GaussianDensity": lambda: GaussianDensity(),
    "ViM": lambda: ViM(HEAD, n_components=2),
    "DICE": lambda: DICE(HEAD, percentile=50),
    "FDBD": lambda: FDBD(HEAD),
    "NCI": lambda: NCI(HEAD),
    "LINe": lambda: LINe(HEAD, clip=2.0, p_a=50, p_w=50),
    "KNN": lambda: KNN(n_neighbors=5),
    "KNN-NAN": lambda: KNN(n_neighbors=5, negative_aware_rescale=True),
}
#: The internal method called once per chunk of rows while the statistics are merged.
CHUNK_METHOD = {"KNN": "_normalize"}


def fitted_statistics(det):
    """The fitted quantities that define the scores (sign-free for eigenvectors)."""
    if isinstance(det, ViM):
        ns = det.null_space_
        return {"projector": ns @ ns.T, "alpha": det.alpha_, "origin": det.origin_}
    if isinstance(det, GaussianDensity):
        return {"classes": det.classes_, "means": det.means_, "cov": det.covariances_}
    if isinstance(det, DICE):
        return {"mean": det.feature_mean_, "mask": det.mask_}
    if isinstance(det, (FDBD, NCI)):
        return {"mean": det.mean_}
    if isinstance(det, LINe):
        return {"shapley": det.shapley_, "masks": det.activation_masks_,
                "thresholds": det.weight_thresholds_}
    if isinstance(det, KNN):  # the same rows, in the order of the calls
        return {"bank": det.bank_[np.lexsort(det.bank_.T)]}
    return {"classes": det.classes_, "means": det.means_, "cov": det.covariance_}


def assert_same_state(a, b):
    """Every attribute of ``a`` and ``b`` equal (arrays elementwise, tuples/dicts recursively)."""
    assert vars(a).keys() == vars(b).keys()
    for name in vars(a):
        np.testing.assert_equal(vars(a)[name], vars(b)[name], err_msg=name)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_fit_is_one_partial_fit_on_a_fresh_estimator(name):
    fitted = DETECTORS[name]().fit(X, Y)
    partial = DETECTORS[name]().partial_fit(X, Y)
    assert_same_state(fitted, partial)
    assert fitted.n_samples_seen_ == 300
    assert [key for key in vars(fitted) if key.startswith("_")] == []  # all documented


@pytest.mark.parametrize("name", list(DETECTORS))
@pytest.mark.parametrize("seed", [0, 1])
def test_chunks_in_any_order_give_the_statistics_of_fit(name, seed):
    fitted = DETECTORS[name]().fit(X, Y)
    order = np.random.default_rng(seed).permutation(300)
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(20, 280), 4, replace=False))
    det = DETECTORS[name]()
    for rows in np.split(order, cuts):
        det.partial_fit(X[rows], Y[rows])
    assert det.n_samples_seen_ == 300
    for key, value in fitted_statistics(fitted).items():
        np.testing.assert_allclose(fitted_statistics(det)[key], value, rtol=1e-10, atol=1e-12,
                                   err_msg=key)
    # 300 rows: the reservoir holds them all, so the threshold matches too.
    np.testing.assert_allclose(det.offset_, fitted.offset_, rtol=1e-9)
    np.testing.assert_allclose(det.score_samples(X[:20]), fitted.score_samples(X[:20]),
                               rtol=1e-9)


def test_mahalanobis_statistics_by_hand():
    # class 0: (0,0), (2,0): mean (1,0), scatter [[2,0],[0,0]];
    # class 1: (10,4), (10,6): mean (10,5), scatter [[0,0],[0,2]];
    # shared covariance = summed scatter / 4 = I / 2.
    X_hand = np.array([[0.0, 0.0], [10.0, 4.0], [2.0, 0.0], [10.0, 6.0]])
    det = Mahalanobis().partial_fit(X_hand[:2], [0, 1])
    np.testing.assert_array_equal(det.means_, [[0.0, 0.0], [10.0, 4.0]])
    det.partial_fit(X_hand[2:], [0, 1])
    np.testing.assert_allclose(det.means_, [[1.0, 0.0], [10.0, 5.0]])
    np.testing.assert_allclose(det.covariance_, np.eye(2) / 2)
    # (1, 1) is at distance 1 from mu_0 in the second coordinate: 1^2 / 0.5 = 2.
    np.testing.assert_allclose(det.score_samples([[1.0, 1.0]]), [-2.0])


def test_gaussian_density_statistics_by_hand():
    # class 0: -1, 1, 3: mean 1, unbiased variance (4 + 0 + 4) / 2 = 4;
    # class 1: 10, 12: mean 11, unbiased variance (1 + 1) / 1 = 2.
    det = GaussianDensity().partial_fit([[-1.0], [1.0], [10.0]], [0, 0, 1])
    assert det.classes_.tolist() == [0]  # class 1 has one row: not in the model yet
    np.testing.assert_allclose(det.covariances_.ravel(), [2.0])
    det.partial_fit([[12.0], [3.0]], [1, 0])
    assert det.classes_.tolist() == [0, 1]
    np.testing.assert_allclose(det.means_.ravel(), [1.0, 11.0])
    np.testing.assert_allclose(det.covariances_.ravel(), [4.0, 2.0])


def test_vim_statistics_by_hand():
    # head (I, 0): origin 0; the uncentred covariance of (2,0), (-2,0), (0,1), (0,-1)
    # is diag(2, 0.5): the principal direction is x1, NS = x2; residuals |x2| average
    # 0.5, max-logits (2, 0, 1, 0) average 0.75: alpha = 1.5.
    X_hand = np.array([[2.0, 0.0], [0.0, 1.0], [-2.0, 0.0], [0.0, -1.0]])
    det = ViM(head=(np.eye(2), np.zeros(2)), n_components=1)
    det.partial_fit(X_hand[:2]).partial_fit(X_hand[2:])
    np.testing.assert_allclose(np.abs(det.null_space_.ravel()), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(det.alpha_, 1.5)


@pytest.mark.parametrize("make", [Mahalanobis, lambda: DICE((HEAD[0][:, :3], HEAD[1])),
                                  lambda: LINe((HEAD[0][:, :3], HEAD[1])),
                                  lambda: KNN(n_neighbors=3)],
                         ids=["Mahalanobis", "DICE", "LINe", "KNN"])
def test_chunks_on_chunk_row_boundaries_are_bit_identical_to_fit(make):
    # More rows than the reservoir holds, chunks at multiples of CHUNK_ROWS: partial_fit
    # merges exactly the chunks fit merges, and keeps the rows fit samples.
    X_big = np.random.default_rng(1).normal(size=(3 * CHUNK_ROWS + 7, 3))
    y_big = np.arange(len(X_big)) % 3
    fitted = make().fit(X_big, y_big)
    det = make()
    for rows in (slice(0, CHUNK_ROWS), slice(CHUNK_ROWS, 3 * CHUNK_ROWS),
                 slice(3 * CHUNK_ROWS, None)):
        det.partial_fit(X_big[rows], y_big[rows])
    assert len(X_big) > OFFSET_SAMPLE_SIZE
    assert_same_state(fitted, det)


def test_reservoir_is_the_offset_sample_whatever_the_split():
    X_ids = np.arange(25_000, dtype=np.float64)[:, None]  # each row holds its position
    one = merge_offset_sample(None, X_ids, 0)
    sample = None
    for start, stop in [(0, 3), (3, 9_000), (9_000, 9_001), (9_001, 25_000)]:
        sample = merge_offset_sample(sample, X_ids[start:stop], start)
    for positions, _, rows in (one, sample):
        assert positions.size == OFFSET_SAMPLE_SIZE
        np.testing.assert_array_equal(positions, offset_sample(25_000))
        np.testing.assert_array_equal(rows.ravel(), positions)
    # Seeded: a second run keeps the same rows; a different stream would not.
    np.testing.assert_array_equal(merge_offset_sample(None, X_ids, 0)[0], one[0])
    assert not np.array_equal(merge_offset_sample(None, X_ids[1:], 1)[0] - 1,
                              merge_offset_sample(None, X_ids[1:], 0)[0])


def test_reservoir_is_uniform_over_all_rows_seen():
    # 100,000 rows in calls of very unequal sizes: a uniform sample of 10,000 keeps
    # about 10% of every call and of every tenth of the stream (binomial sd <= 50).
    # Keeping the first or last rows, an equal share per call, or a reservoir that
    # favours recent rows would miss these counts by hundreds or thousands.
    sizes = [50_000, 5_000, 44_000, 1_000]
    sample, start = None, 0
    for size in sizes:
        sample = merge_offset_sample(sample, np.zeros((size, 1)), start)
        start += size
    positions = sample[0]
    assert positions.size == OFFSET_SAMPLE_SIZE == np.unique(positions).size
    per_call = np.histogram(positions, np.cumsum([0] + sizes))[0]
    np.testing.assert_allclose(per_call, np.array(sizes) / 10, atol=250)
    per_tenth = np.histogram(positions, np.linspace(0, 100_000, 11))[0]
    np.testing.assert_allclose(per_tenth, 1000, atol=150)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_keyboard_interrupt_in_the_chunk_loop_leaves_the_estimator_as_before(name, monkeypatch):
    X_big = np.random.default_rng(2).normal(size=(3 * CHUNK_ROWS, 4))
    y_big = np.arange(len(X_big)) % 3
    det = DETECTORS[name]().partial_fit(X_big, y_big)
    before = copy.deepcopy(det)
    cls = type(det)
    method = CHUNK_METHOD.get(cls.__name__, "_moment_features")
    original = getattr(cls, method)
    calls = []

    def interrupted(self, H):
        calls.append(1)
        if len(calls) == 2:  # the second chunk: the first is already merged
            raise KeyboardInterrupt
        return original(self, H)

    monkeypatch.setattr(cls, method, interrupted)
    with pytest.raises(KeyboardInterrupt):
        det.partial_fit(X_big, y_big)
    assert len(calls) == 2
    assert_same_state(det, before)
    monkeypatch.undo()
    # It goes on as if the interrupted call never happened.
    det.partial_fit(X_big[:500], y_big[:500])
    before.partial_fit(X_big[:500], y_big[:500])
    assert_same_state(det, before)


def test_interrupt_after_the_statistics_were_merged_leaves_the_estimator_as_before(
        monkeypatch):
    det = Mahalanobis().partial_fit(X, Y)
    before = copy.deepcopy(det)

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Mahalanobis, "_fit_statistics", interrupted)
    with pytest.raises(KeyboardInterrupt):
        det.partial_fit(X, Y)
    assert_same_state(det, before)


def test_failing_first_call_leaves_the_estimator_unfitted():
    det = Mahalanobis()
    with pytest.raises(ValueError, match="NaN"):
        det.partial_fit(np.full((3, 2), np.nan))
    assert vars(det) == vars(Mahalanobis())
    with pytest.raises(NotFittedError):
        det.score_samples(X[:2, :2])


def test_failing_later_calls_leave_the_estimator_as_before():
    det = Mahalanobis().partial_fit(X, Y)
    before = copy.deepcopy(det)
    with pytest.raises(ValueError, match="NaN"):
        det.partial_fit(np.full((3, 4), np.nan), [0, 1, 2])
    with pytest.raises(ValueError, match="covariance overflows"):
        det.partial_fit(np.full((3, 4), 1e300) * [[1], [-1], [1]], [0, 0, 0])
    assert_same_state(det, before)


def test_feature_count_mismatch():
    det = Mahalanobis().partial_fit(X, Y)
    with pytest.raises(ValueError, match="X has 3 features, but Mahalanobis is expecting 4"):
        det.partial_fit(X[:, :3], Y)


def test_invalid_parameter_on_the_first_call():
    det = Mahalanobis(contamination=2.0)
    with pytest.raises(InvalidParameterError, match="contamination"):
        det.partial_fit(X, Y)
    assert not hasattr(det, "n_samples_seen_")


def test_labels_in_every_call_or_in_none():
    with pytest.raises(ValueError, match="received y without class labels after a fit with"):
        Mahalanobis().partial_fit(X, Y).partial_fit(X)
    with pytest.raises(ValueError, match="received y with class labels after a fit without"):
        Mahalanobis().partial_fit(X).partial_fit(X, Y)
    with pytest.raises(ValueError, match="GaussianDensity requires y to be passed"):
        GaussianDensity().partial_fit(X)
    # ViM ignores labels.
    ViM(HEAD, n_components=2).partial_fit(X, Y).partial_fit(X)


@pytest.mark.parametrize("name", ["Mahalanobis", "GaussianDensity"])
def test_a_new_label_in_a_later_call_adds_a_class(name):
    det = DETECTORS[name]().partial_fit(X[Y != 1], Y[Y != 1])
    assert det.classes_.tolist() == [0, 2]
    det.partial_fit(X[Y == 1], Y[Y == 1])
    assert det.classes_.tolist() == [0, 1, 2]
    np.testing.assert_allclose(det.means_, [X[Y == c].mean(axis=0) for c in range(3)])
    if name == "GaussianDensity":
        np.testing.assert_allclose(det.covariances_, [np.cov(X[Y == c].T) for c in range(3)])
    else:
        centred = X - det.means_[Y]
        np.testing.assert_allclose(det.covariance_, centred.T @ centred / len(X))


def test_ood_rows_are_ignored():
    y_ood = Y.copy()
    y_ood[::3] = -1
    det = Mahalanobis().partial_fit(X[:150], y_ood[:150]).partial_fit(X[150:], y_ood[150:])
    ref = Mahalanobis().fit(X[y_ood >= 0], y_ood[y_ood >= 0])
    assert det.n_samples_seen_ == ref.n_samples_seen_ == 200
    np.testing.assert_allclose(det.covariance_, ref.covariance_)


def test_gaussian_density_needs_a_class_with_two_rows():
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        GaussianDensity().partial_fit(X[[0, 100]], [0, 1])
    # fit sees the whole training set: a class with one row is an error there.
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        GaussianDensity().fit(X[[0, 1, 100]], [0, 0, 1])


def test_statistics_parameters_cannot_change_between_calls():
    det = Mahalanobis().partial_fit(X, Y)
    det.set_params(normalize=True)
    with pytest.raises(ValueError, match="accumulated with normalize=False"):
        det.partial_fit(X, Y)
    # The others take effect at the next call; fit starts afresh.
    det.set_params(normalize=False, contamination=0.2).partial_fit(X, Y)
    np.testing.assert_allclose(det.offset_, np.percentile(det.score_samples(X), 20))
    assert det.set_params(normalize=True).fit(X, Y).n_samples_seen_ == 300


def test_maps_keep_their_shape_across_calls():
    maps = np.random.default_rng(3).normal(size=(40, 3, 2, 2))
    det = Mahalanobis().partial_fit(maps[:20]).partial_fit(maps[20:])
    np.testing.assert_allclose(det.means_, [maps.mean(axis=(0, 2, 3))])
    with pytest.raises(ValueError, match="same row shape"):
        det.partial_fit(np.zeros((5, 3, 4, 4)))


@pytest.mark.filterwarnings("ignore:LINe. no training sample for class")  # class 2 later
@pytest.mark.parametrize("name", list(DETECTORS))
def test_clone_and_pickle_after_partial_fit(name):
    det = DETECTORS[name]().partial_fit(X[:150], Y[:150])
    with pytest.raises(NotFittedError):
        clone(det).score_samples(X)
    restored = pickle.loads(pickle.dumps(det))
    det.partial_fit(X[150:], Y[150:])
    restored.partial_fit(X[150:], Y[150:])
    assert_same_state(det, restored)


HEAD_2D = (np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.zeros(3))


@pytest.mark.parametrize("est", [Mahalanobis(), GaussianDensity(),
                                 ViM((np.ones((3, 2)), np.zeros(3)), n_components=1),
                                 DICE(HEAD_2D), FDBD(HEAD_2D), NCI(HEAD_2D), LINe(HEAD_2D),
                                 KNN(n_neighbors=2)],
                         ids=["Mahalanobis", "GaussianDensity", "ViM", "DICE", "FDBD", "NCI",
                              "LINe", "KNN"])
def test_sklearn_partial_fit_checks(est):
    # scikit-learn yields these for classifiers, regressors and clusterers, not for
    # outlier detectors: run them here (make_blobs gives 2 features, hence the heads).
    check_estimators_partial_fit_n_features(type(est).__name__, est)
    if not hasattr(est, "head"):  # this one fits on 4 features
        check_n_features_in_after_fitting(type(est).__name__, est)


def test_later_calls_validate_the_parameters():
    # scikit-learn's _fit_context validates partial_fit's first call only.
    det = Mahalanobis().partial_fit(X, Y).set_params(contamination=2.0)
    before = copy.deepcopy(det)
    with pytest.raises(InvalidParameterError, match="contamination"):
        det.partial_fit(X, Y)
    assert_same_state(det, before)


@pytest.mark.parametrize("make, attr", [(lambda: DICE(HEAD_2D, percentile=50), "feature_mean_"),
                                        (lambda: FDBD(HEAD_2D), "mean_"),
                                        (lambda: NCI(HEAD_2D), "mean_")],
                         ids=["DICE", "FDBD", "NCI"])
def test_feature_mean_by_hand(make, attr):
    # (0, 2), (4, 0) then (2, 7): mean (2, 3); the first call's mean is (2, 1). The
    # class labels are not used, but a negative label still marks an OOD row.
    det = make().partial_fit([[0.0, 2.0], [4.0, 0.0], [99.0, 99.0]], [5, 0, -1])
    np.testing.assert_array_equal(getattr(det, attr), [2.0, 1.0])
    det.partial_fit([[2.0, 7.0]])
    np.testing.assert_allclose(getattr(det, attr), [2.0, 3.0])
    assert det.n_samples_seen_ == 3


def test_dice_mask_follows_the_mean():
    # contrib = mean * W: with mean (2, 1), W rows (1, 0), (0, 1), (1, 1) give
    # [[2, 0], [0, 1], [2, 1]], median 1: mask > 1 keeps (0, 0) and (2, 0);
    # after (0, 9) the mean is (4/3, 10/3): [[4/3, 0], [0, 10/3], [4/3, 10/3]],
    # median 4/3: only the 10/3 entries survive.
    det = DICE(HEAD_2D, percentile=50).partial_fit([[0.0, 2.0], [4.0, 0.0]])
    np.testing.assert_array_equal(det.mask_, [[True, False], [False, False], [True, False]])
    det.partial_fit([[0.0, 6.0]])
    np.testing.assert_array_equal(det.mask_, [[False, False], [False, True], [False, True]])


def test_knn_bank_and_leave_one_out_offset_by_hand():
    # Rows (3, 0), (0, 1), (0, -2), (5, 5): normalised e1, e2, -e2, (e1 + e2) / sqrt2.
    # Leave-one-out squared distance to the nearest other row (k = 1):
    # e1 -> diagonal 2 - sqrt2; e2 -> diagonal 2 - sqrt2; -e2 -> e1 2; diagonal -> 2 - sqrt2.
    rows = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, -2.0], [5.0, 5.0]])
    det = KNN(n_neighbors=1, contamination=0.5).partial_fit(rows[:2])
    np.testing.assert_array_equal(det.bank_, [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(det.offset_, -2.0)  # each other's neighbour, at 2
    det.partial_fit(rows[2:])
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(det.bank_, [[1, 0], [0, 1], [0, -1], [r, r]])
    loo = -np.array([2 - np.sqrt(2), 2 - np.sqrt(2), 2.0, 2 - np.sqrt(2)])
    np.testing.assert_allclose(det.offset_, np.percentile(loo, 50))
    # (0, -1) is -e2 itself: distance 0 (score_samples excludes nothing); -e1 is at 2
    # from e2 and -e2, at 2 + sqrt2 from the diagonal.
    np.testing.assert_allclose(det.score_samples([[0.0, -1.0], [-1.0, 0.0]]), [0.0, -2.0],
                               atol=1e-12)


def test_knn_needs_more_rows_than_neighbours_in_the_first_call():
    det = KNN(n_neighbors=5)
    with pytest.raises(ValueError, match="needs at least 6 in-distribution training rows"):
        det.partial_fit(X[:5])
    assert not hasattr(det, "bank_")
    assert det.partial_fit(X[:6]).partial_fit(X[6:7]).bank_.shape == (7, 4)


def test_knn_bank_keeps_the_dtype_of_the_first_call():
    det = KNN(n_neighbors=2).partial_fit(X[:10].astype(np.float32)).partial_fit(X[10:20])
    assert det.bank_.dtype == np.float32 and det.bank_.shape == (20, 4)
    det.set_params(algorithm="faiss-flat")
    with pytest.raises(ValueError, match="accumulated with algorithm='brute'"):
        det.partial_fit(X[20:30])


@needs_faiss
@pytest.mark.parametrize("algorithm", ["faiss-flat", "faiss-ivf", "faiss-hnsw"])
def test_knn_faiss_chunks_give_the_index_of_fit(algorithm):
    # The approximate indexes are rebuilt from the whole bank at every call.
    make = lambda: KNN(n_neighbors=5, algorithm=algorithm, random_state=0)  # noqa: E731
    fitted = make().fit(X)
    det = make().partial_fit(X[:100]).partial_fit(X[100:])
    assert det.bank_.dtype == np.float32
    np.testing.assert_array_equal(det.bank_, fitted.bank_)
    assert (det.index_ is None) == (algorithm == "faiss-flat")
    if det.index_ is not None:
        assert det.index_.ntotal == 300
    assert det.offset_ == fitted.offset_
    np.testing.assert_array_equal(det.score_samples(X), fitted.score_samples(X))


def test_line_shapley_values_by_hand():
    # W rows (1, 0), (0, 1), (1, 1); class 0: (2, 0), (4, 2) -> mean (3, 1), Phi (3, 0);
    # class 1: (0, 5) -> Phi (0, 5); class 2 never seen: the mean of all rows (2, 7/3).
    det = LINe(HEAD_2D, clip=None)
    with pytest.warns(UserWarning, match=r"class\(es\) \[1, 2\]"):
        det.partial_fit([[2.0, 0.0]], [0])
    with pytest.warns(UserWarning, match=r"class\(es\) \[2\]"):
        det.partial_fit([[0.0, 5.0], [4.0, 2.0]], [1, 0])
    np.testing.assert_allclose(det.shapley_, [[3.0, 0.0], [0.0, 5.0], [2.0, 7 / 3]])


def test_line_without_labels_uses_the_predicted_classes():
    # Predictions of (I; 1 1) with zero bias: (2, 0) -> 2 (logits 2, 0, 2: argmax 0),
    # (0, 3) -> 2 (0, 3, 3: argmax 1); the means are those of the predicted classes.
    rows = np.array([[2.0, 0.0], [0.0, 3.0], [4.0, 1.0]])
    det = LINe(HEAD_2D, clip=None).partial_fit(rows[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no missing-class warning without labels
        det.partial_fit(rows[1:])
    pred = np.argmax(rows @ HEAD_2D[0].T, axis=1)
    assert pred.tolist() == [0, 1, 2]
    np.testing.assert_allclose(det.shapley_, HEAD_2D[0] * rows)
    with pytest.raises(ValueError, match="received y with class labels after a fit without"):
        det.partial_fit(rows, [0, 1, 2])


def test_line_refuses_a_new_head_and_clip_percentile():
    det = LINe(HEAD, clip=None).partial_fit(X, Y)
    before = copy.deepcopy(det)
    det.set_params(head=(HEAD[0] * 2, HEAD[1]))
    with pytest.raises(ValueError, match="accumulated with another head"):
        det.partial_fit(X, Y)
    det.set_params(head=HEAD, clip_percentile=90)
    with pytest.raises(ValueError, match="partial_fit needs clip_percentile=None"):
        det.partial_fit(X, Y)
    det.set_params(clip_percentile=None)
    assert_same_state(det, before)
    # fit computes the exact percentile, as before.
    fitted = LINe(HEAD, clip_percentile=90).fit(X, Y)
    assert fitted.clip_ == np.percentile(X, 90)
    with pytest.raises(ValueError, match="LINe: y holds class indices in \\[0, 3\\]"):
        LINe(HEAD).partial_fit(X[:4], [0, 1, 2, 3])
