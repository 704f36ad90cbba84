"""Nearest-neighbour search for KNN: exact (brute force or faiss) or approximate (faiss).

Pure functions: :func:`build_index` builds the faiss index of an approximate
search from a bank of rows, :func:`kth_neighbor_sqdist` returns the squared
distance of each query to its k-th nearest bank row, leave-one-out for bank
rows when asked. faiss (``pip install "sklearn-ood[faiss]"``) is imported
only when a faiss algorithm is used.
"""

import numpy as np

from .._moments import CHUNK_ROWS, row_chunks

#: Search algorithms: the exact ones keep no index beyond the bank.
EXACT_ALGORITHMS = ("brute", "faiss-flat")
APPROXIMATE_ALGORITHMS = ("faiss-ivf", "faiss-hnsw")


def import_faiss():
    """The ``faiss`` module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "KNN's faiss algorithms need faiss-cpu; install it with "
            'pip install "sklearn-ood[faiss]" (or pip install faiss-cpu), or use '
            'algorithm="brute".'
        ) from exc
    return faiss


def build_index(bank, algorithm, *, n_lists=None, n_probe=1, hnsw_m=32,
                ef_construction=40, ef_search=16, seed=0):
    """The faiss index of an approximate search over ``bank``, ``None`` for an exact one.

    Parameters
    ----------
    bank : ndarray of shape (n_bank, n_features), float32
    algorithm : {"brute", "faiss-flat", "faiss-ivf", "faiss-hnsw"}
        ``"faiss-ivf"``: ``IndexIVFFlat``, k-means into ``n_lists`` lists
        (faiss samples at most 256 training rows per list), each query
        scanning the ``n_probe`` lists of its nearest centroids.
        ``"faiss-hnsw"``: ``IndexHNSWFlat``, a graph of ``hnsw_m`` links per
        node built with beam ``ef_construction``, searched with beam
        ``max(ef_search, k)``.
    n_lists : int, default=None
        ``None`` means ``round(sqrt(n_bank))``; at most ``n_bank``.
    n_probe, hnsw_m, ef_construction, ef_search : int
    seed : int
        Seed of the k-means (the training sample and the initial centroids).

    Returns
    -------
    index : faiss.Index or None
    """
    if algorithm in EXACT_ALGORITHMS:
        return None
    faiss = import_faiss()
    n_bank, n_features = bank.shape
    if algorithm == "faiss-ivf":
        n_lists = min(n_bank, n_lists or max(1, round(np.sqrt(n_bank))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(n_features), n_features, n_lists)
        index.cp.seed = seed
        # faiss warns below 39 rows per list; small banks are fine for us.
        index.cp.min_points_per_centroid = 1
        index.train(bank)
        index.nprobe = n_probe
    else:
        index = faiss.IndexHNSWFlat(n_features, hnsw_m)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    index.add(bank)
    return index


def brute_search(query, bank, k):
    """Squared distances and indices of the ``k`` nearest bank rows, sorted: exact search.

    ``||q - b||^2 = ||q||^2 - (2 q.b - ||b||^2)``: one matrix product per chunk
    of queries (torch's, in the precision of the bank: float32 BLAS for a
    float32 bank), then the ``k`` largest ``2 q.b - ||b||^2`` of each row by a partial
    selection (``torch.topk``). The chunk of ``n_chunk x n_bank`` values stays
    within :data:`~sklearn_ood._moments.CHUNK_VALUES`. Distances are returned in
    float64, clipped at 0 (rounding can make a row's distance to itself
    slightly negative).

    Examples
    --------
    >>> import numpy as np
    >>> bank = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    >>> brute_search(np.array([[0.9, 0.0]]), bank, 2)
    (array([[0.01, 0.81]]), array([[1, 0]]))
    """
    import torch

    query = np.ascontiguousarray(query, dtype=bank.dtype)
    bank_t = torch.from_numpy(np.ascontiguousarray(bank))  # shares the bank's memory
    bank_sq = torch.from_numpy(np.einsum("ij,ij->i", bank, bank))
    sqdist = np.empty((query.shape[0], k))
    neighbors = np.empty((query.shape[0], k), dtype=np.intp)
    for rows in row_chunks(query.shape[0], CHUNK_ROWS, row_size=bank.shape[0]):
        q = query[rows]
        closeness = torch.from_numpy(q) @ bank_t.T
        closeness.mul_(2).sub_(bank_sq)
        top = closeness.topk(k, dim=1)
        sqdist[rows] = np.einsum("ij,ij->i", q, q)[:, None] - top.values.numpy()
        neighbors[rows] = top.indices.numpy()
        del closeness, top  # one chunk alive at a time
    return np.maximum(sqdist, 0.0, out=sqdist), neighbors


def _search(query, bank, k, algorithm, index):
    """Squared distances and indices of the k nearest bank rows, sorted."""
    if algorithm == "brute":
        return brute_search(query, bank, k)
    faiss = import_faiss()
    query = np.ascontiguousarray(query, dtype=np.float32)
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    if index is None:
        sqdist, neighbors = faiss.knn(query, bank, k)
    else:
        sqdist, neighbors = index.search(query, k)
        # An approximate search may find fewer than k rows (e.g. an IVF's
        # probed lists hold fewer): those queries are searched exactly.
        missing = neighbors[:, -1] < 0
        if missing.any():
            sqdist[missing], neighbors[missing] = faiss.knn(query[missing], bank, k)
    return sqdist.astype(np.float64), neighbors


def kth_neighbor_sqdist(X, bank, k, *, exclude=None, algorithm="brute", index=None):
    """Squared Euclidean distance of each row of ``X`` to its k-th nearest bank row.

    ``algorithm="brute"`` searches exactly with scikit-learn's
    ``NearestNeighbors(algorithm="brute")`` (chunked matrix products and a
    k-smallest selection per row, without an ``(n_samples, n_bank)`` matrix)
    in the bank's dtype; ``"faiss-flat"`` exactly with ``faiss.knn``, in
    float32; the approximate algorithms search ``index``
    (:func:`build_index`). Ties count with multiplicity.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    bank : ndarray of shape (n_bank, n_features)
    k : int
        1-based neighbour rank, ``1 <= k <= n_bank`` (``n_bank - 1`` with
        ``exclude``).
    exclude : ndarray of int of shape (n_samples,), default=None
        Leave-one-out: row ``i`` of ``X`` is bank row ``exclude[i]`` and is
        not matched with it. The ``k + 1`` nearest rows are searched and the
        row's own match dropped; if it is not among them (more than ``k``
        exact duplicates of it at distance 0, or an approximate search that
        missed it), the ``k``-th of them is returned. Duplicates of the row
        count as neighbours (as in scikit-learn's ``kneighbors(None)``).
    algorithm : {"brute", "faiss-flat", "faiss-ivf", "faiss-hnsw"}, default="brute"
    index : faiss.Index, default=None
        The index of an approximate algorithm, built on ``bank``.

    Returns
    -------
    sqdist : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> bank = np.array([[0.0], [1.0], [3.0]])
    >>> kth_neighbor_sqdist(np.array([[0.0], [2.5]]), bank, 2)
    array([1.  , 2.25])
    >>> kth_neighbor_sqdist(bank, bank, 1, exclude=np.arange(3))
    array([1., 1., 4.])
    >>> kth_neighbor_sqdist(bank[[2]], bank, 1, exclude=np.array([2]))
    array([4.])
    """
    n_bank = bank.shape[0]
    available = n_bank if exclude is None else n_bank - 1
    if not 1 <= k <= available:
        raise ValueError(
            f"k={k} neighbours requested but the bank holds {n_bank} rows"
            + ("" if exclude is None else " (the row itself excluded)")
            + f"; choose 1 <= k <= {available}."
        )
    query = np.asarray(X, dtype=bank.dtype)
    if exclude is None:
        return _search(query, bank, k, algorithm, index)[0][:, -1]
    sqdist, neighbors = _search(query, bank, k + 1, algorithm, index)
    is_self = neighbors == np.asarray(exclude)[:, None]
    # Without its own match among the k + 1, a row's k-th neighbour is the k-th.
    is_self[~is_self.any(axis=1), -1] = True
    return sqdist[~is_self].reshape(len(query), k)[:, -1]
