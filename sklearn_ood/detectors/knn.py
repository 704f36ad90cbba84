"""Deep nearest neighbours: distance to the k-th nearest training feature.

Sun, Ming, Zhu & Li, "Out-of-Distribution Detection with Deep Nearest
Neighbors", ICML 2022, https://arxiv.org/abs/2204.06507.

The search (exact, or approximate with faiss) is in ``_neighbors.py``;
:class:`KNN` keeps the L2-normalised training features as its bank and sets
its threshold from leave-one-out training scores. The score is minus the
squared distance (higher means more in-distribution), or the distance
rescaled by the negative-aware norm (Park et al., 2023).
"""

from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import AccumulatingDetector, BaseDetector
from .._tags import DetectorTags
from ._features import l2_normalize, pool_maps, row_chunks
from ._neighbors import APPROXIMATE_ALGORITHMS, EXACT_ALGORITHMS, build_index, kth_neighbor_sqdist
from .negative_aware_norm import negative_aware_rescaled_score

# kth_neighbor_sqdist lives in _neighbors.py; it stays public (and documented) here.
__all__ = ["KNN", "kth_neighbor_sqdist"]


def _n_neighbors_grid(n_samples):
    """KNN's tuning grid: ``n_neighbors`` of 1 to 200 (the paper: 50 on CIFAR-10), below
    ``n_samples`` (KNN needs ``n_neighbors + 1`` training rows).

    >>> _n_neighbors_grid(30)
    {'n_neighbors': [1, 5, 10, 20]}
    """
    return {"n_neighbors": [k for k in (1, 5, 10, 20, 50, 100, 200) if k < n_samples]}


class KNN(AccumulatingDetector):
    """Deep nearest-neighbour detector: distance to the k-th nearest training feature.

    Features are L2-normalised (zero rows stay zero); the bank is the
    normalised ID training set. Score: ``-(squared Euclidean distance to the
    k-th nearest bank row)``, as faiss ``IndexFlatL2`` returns it
    (monotone-equivalent to ``-distance``). Higher means more ID.

    Neighbours are found by ``algorithm``: by default an exact brute-force
    search in the dtype of the training features (float32 input keeps a
    float32 bank, like faiss: one float32 matrix product per chunk of queries
    and a partial selection of the ``k`` nearest,
    :func:`~sklearn_ood.detectors._neighbors.brute_search`, about half the CPU
    time of scikit-learn's brute ``NearestNeighbors``, which computes float32
    distances in float64); the faiss algorithms (optional
    dependency, ``pip install "sklearn-ood[faiss]"``) search a float32 bank,
    exactly (``"faiss-flat"``) or approximately (``"faiss-ivf"``,
    ``"faiss-hnsw"``: a neighbour may be missed, so the k-th distance can only
    be over-estimated; ``n_probe`` and ``ef_search`` trade speed for recall).
    The default is exact search without the optional dependency, chosen by
    measurement (``perf/bench_knn_backends.py``, ``perf/README.md`` section
    3c: 1M x 512 clustered rows, 10,000 queries, k = 50): faiss's exact search
    found the same neighbours as scikit-learn's with 0.46 to 0.61 of the CPU
    time (a 1M-row ``fit``: 173 s against 297 s), and the default now
    searches as faiss does (float32 products, partial selection); the
    approximate indexes cost nearly as much to build as one ``fit`` (10,000
    leave-one-out searches) saves (IVF at 1M:
    build + search 18 % below exact search at recall 0.94; the HNSW build
    alone cost more than an exact pass at 100k rows). Use an approximate
    index when far more rows are scored than one ``fit`` searches and an
    over-estimated k-th distance is acceptable (its searches were 2-4x
    cheaper than exact ones).

    Threshold: a training row is its own nearest neighbour at distance 0, so
    scoring the bank against itself would be optimistic. ``offset_`` is
    therefore computed from leave-one-out training scores (each row's own
    match excluded, duplicates kept), i.e. the scores the training rows would
    get as new samples. ``score_samples`` itself never excludes anything, as
    in the reference code, so ``predict`` on the training set flags fewer
    than ``contamination`` of it. The threshold searches the bank (or the
    index) ``fit`` built for at most 10,000 training rows (the offset sample),
    ``k + 1`` neighbours each: the cost of scoring as many queries,
    ``O(min(N, 10,000) x N x D)``, most of a ``fit``, whose statistics are
    the normalised rows alone.

    4-D maps ``(N, C, H, W)`` are accepted and average-pooled over ``H, W``
    before normalisation.

    ``partial_fit(X)`` appends the normalised rows of each call to the bank
    (the bank is the statistic: ``N x D`` values, in the dtype of the first
    call, float32 for faiss), so calls on the chunks of ``X`` in their order
    give the bank of ``fit(X)`` exactly (in another order, its rows in that
    order: the same scores). Each call copies the bank once into a larger
    array, rebuilds the index of an approximate algorithm from the whole bank
    (so it equals the index ``fit`` builds; appending to it would leave the
    IVF lists trained on the first chunk), and recomputes ``offset_`` from
    the leave-one-out scores of the reservoir rows (at most 10,000) against
    the whole current bank: a call costs ``O(min(N, 10,000) x N x D)``,
    about one ``fit``, whatever the size of the chunk. ``algorithm`` (it sets
    the bank's dtype) must not change between calls; ``y`` is ignored.

    Parameters
    ----------
    n_neighbors : int, default=50
        Neighbour rank ``k`` (50 on CIFAR-10, 1000 on ImageNet in the paper);
        needs at least ``k + 1`` ID training rows.
    contamination : float, default=0.05
        Fraction of (leave-one-out) training scores below ``offset_``.
    negative_aware_rescale : bool, default=False
        Score ``-(d / NAN(a))`` instead (NAN + KNN of Park et al., 2023): ``d``
        is the k-th neighbour Euclidean distance (not squared) and
        ``NAN(a) = ||a||_1 / ||a||_0`` of the unnormalised, unpooled input
        (a 4-D map is flattened). See ``negative_aware_rescaled_score`` for
        ``NAN = 0``.
    algorithm : {"brute", "faiss-flat", "faiss-ivf", "faiss-hnsw"}, default="brute"
        Neighbour search: ``"brute"`` is exact search by one matrix product
        per chunk of queries and a partial selection (``brute_search``);
        ``"faiss-flat"`` faiss's exact
        search (``faiss.knn``); ``"faiss-ivf"`` an ``IndexIVFFlat`` (k-means
        into ``n_lists`` lists, each query scanning ``n_probe`` of them);
        ``"faiss-hnsw"`` an ``IndexHNSWFlat`` graph (``hnsw_m`` links per row,
        built with faiss's ``efConstruction=40``, searched with beam
        ``max(ef_search, n_neighbors)``).
    n_lists : int, default=None
        Number of IVF lists; ``None`` means ``round(sqrt(n_train))``; at most
        ``n_train``. Used by ``"faiss-ivf"`` only.
    n_probe : int, default=16
        Lists scanned per query (``n_probe >= n_lists`` is exact; recall@50
        0.94 with 16 of 1,000 lists on 1M rows in ``perf/README.md`` section
        3c). Used by ``"faiss-ivf"`` only.
    hnsw_m : int, default=32
        Links per row of the HNSW graph. Used by ``"faiss-hnsw"`` only.
    ef_search : int, default=128
        Beam width of the HNSW search (recall@50 0.98 at 128, 0.95 at 64 on
        100k rows in ``perf/README.md`` section 3c). Used by ``"faiss-hnsw"``
        only.
    random_state : int, RandomState instance or None, default=None
        Seeds the IVF k-means (its training sample and initial centroids):
        pass an int for a deterministic fit. Used by ``"faiss-ivf"`` only.

    Attributes
    ----------
    bank_ : ndarray of shape (n_train, n_features)
        Normalised ID training features (float32 for the faiss algorithms).
    index_ : faiss.Index or None
        The faiss index over ``bank_`` of an approximate algorithm (it holds
        its own copy of the bank, and pickles with it); ``None`` for an exact
        one.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features (channels for 4-D maps) seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).
    input_ndim_ : int
        2 for features, 4 for maps: the kind of input seen in ``fit``.
    n_samples_seen_ : int
        Number of training rows seen by ``fit`` and the ``partial_fit``
        calls since (the rows of ``bank_``).
    classes_seen_, statistics_, statistics_params_, reservoir_
        What ``partial_fit`` continues from (as documented in
        :class:`~sklearn_ood._base.AccumulatingDetector`): the sorted class
        labels seen (or ``None``), the accumulated statistics, the parameters
        they depend on, and the reservoir of training rows that sets ``offset_``.

    References
    ----------
    Sun, Ming, Zhu & Li, "Out-of-Distribution Detection with Deep Nearest
    Neighbors", ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import KNN
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> det = KNN(n_neighbors=2).fit(X)
    >>> # squared distances of (1, 0) to the normalised rows: 0, 2, 2 - sqrt(2)
    >>> det.score_samples(np.array([[2.0, 0.0], [-1.0, 0.0]])).round(4)
    array([-0.5858, -3.4142])

    The same bank from chunks of rows (the first with more than ``k`` rows):

    >>> det = KNN(n_neighbors=1).partial_fit(X[:2]).partial_fit(X[2:])
    >>> det.bank_.shape, det.n_samples_seen_
    ((3, 2), 3)
    """

    _detector_tags = DetectorTags(
        input="features", ndim=(2, 4), grid=_n_neighbors_grid,
        paper="Sun et al., ICML 2022")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "negative_aware_rescale": ["boolean"],
        "algorithm": [StrOptions(set(EXACT_ALGORITHMS + APPROXIMATE_ALGORITHMS))],
        "n_lists": [Interval(Integral, 1, None, closed="left"), None],
        "n_probe": [Interval(Integral, 1, None, closed="left")],
        "hnsw_m": [Interval(Integral, 2, None, closed="left")],
        "ef_search": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }
    _statistics_params = ("algorithm",)

    def __init__(self, *, n_neighbors=50, contamination=0.05, negative_aware_rescale=False,
                 algorithm="brute", n_lists=None, n_probe=16, hnsw_m=32, ef_search=128,
                 random_state=None):
        self.n_neighbors = n_neighbors
        self.contamination = contamination
        self.negative_aware_rescale = negative_aware_rescale
        self.algorithm = algorithm
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.random_state = random_state

    def _normalize(self, X):
        return l2_normalize(pool_maps(X))

    def _merge(self, X, codes, n_classes, statistics):
        # The bank so far and the normalised rows of X, in one new array (normalised
        # chunk by chunk: no temporary of the size of X).
        old = None if statistics is None else statistics[0]
        if old is not None:
            dtype = old.dtype
        else:
            dtype = X.dtype if self.algorithm == "brute" else np.float32  # faiss: float32
        n_old = 0 if old is None else old.shape[0]
        bank = np.empty((n_old + X.shape[0], X.shape[1]), dtype=dtype)
        bank[:n_old] = old
        for rows in row_chunks(X.shape[0], row_size=int(np.prod(X.shape[1:]))):
            bank[n_old + rows.start:n_old + rows.stop] = self._normalize(X[rows])
        return (bank,)

    def _fit_statistics(self, classes, bank, sample, *, partial):
        if bank.shape[0] <= self.n_neighbors:
            raise ValueError(
                f"KNN with n_neighbors={self.n_neighbors} needs at least "
                f"{self.n_neighbors + 1} in-distribution training rows (a training "
                "row's own match is excluded when setting offset_); got "
                f"n_samples={bank.shape[0]}. Lower n_neighbors or add training data."
            )
        seed = 0
        if self.algorithm == "faiss-ivf":
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        self.index_ = build_index(bank, self.algorithm, n_lists=self.n_lists,
                                  n_probe=self.n_probe, hnsw_m=self.hnsw_m,
                                  ef_search=self.ef_search, seed=seed)
        self.bank_ = bank

    def _score(self, X, *, bank_rows=None):
        H = self._normalize(X) if bank_rows is None else self.bank_[bank_rows]
        d = kth_neighbor_sqdist(H, self.bank_, self.n_neighbors, exclude=bank_rows,
                                algorithm=self.algorithm, index=self.index_)
        if self.negative_aware_rescale:
            return negative_aware_rescaled_score(np.sqrt(d), X)
        return -d

    def _training_scores(self, X, rows):
        # X holds the reservoir rows (rows is None), which are the bank rows at their
        # positions among the training rows: each one's own match is left out (class
        # docstring).
        return self._score(X, bank_rows=self.reservoir_[0])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.algorithm == "faiss-ivf" and self.random_state is None
        return tags
