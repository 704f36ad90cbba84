"""Per-class count, mean and scatter of rows, accumulated by chunks (bounded memory).

A leaf module: the detector contract (``_base.py``) merges these statistics over
``fit`` and ``partial_fit`` calls, and the detectors read their features with them.
"""

import numpy as np

#: Rows per chunk when a detector reads its training features in float64: the
#: extra memory of a fit is its statistics plus one chunk, never a float64 copy.
CHUNK_ROWS = 4096

#: Values per chunk: wide rows (large block maps) are read fewer rows at a time,
#: so that a float64 copy of a chunk stays within 64 MiB.
CHUNK_VALUES = 2**23


def row_chunks(n_samples, chunk_rows=CHUNK_ROWS, *, row_size=1):
    """Slices of consecutive rows covering ``range(n_samples)``.

    Each holds ``chunk_rows`` rows, fewer when rows of ``row_size`` values
    would make a chunk of more than :data:`CHUNK_VALUES` values (at least one row).

    Examples
    --------
    >>> row_chunks(5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    >>> len(row_chunks(1000, row_size=512 * 7 * 7)), 2**23 // (512 * 7 * 7)
    (3, 334)
    """
    step = max(1, min(chunk_rows, CHUNK_VALUES // max(1, row_size)))
    return [slice(start, min(start + step, n_samples)) for start in range(0, n_samples, step)]


def class_moments(X, codes, n_classes, *, transform=None, tied=False, diagonal=False,
                  scatter=True, chunk_rows=CHUNK_ROWS, moments=None):
    """Count, mean and centred scatter matrix of the rows of ``X`` per class, by chunks.

    Statistics are float64. ``X`` is read ``chunk_rows`` rows at a time (fewer
    for wide rows, see :func:`row_chunks`), each chunk passed through
    ``transform`` and its rows sorted by class. Per class of the chunk, the
    rows are summed in float64 and centred on their mean straight into one
    float64 array (no separate float64 copy of a float32 chunk), and the
    scatter of the centred rows is one symmetric product (BLAS ``syrk``: the
    chunk's rows at once with ``tied=True``, each class's rows otherwise).
    Chunk statistics are merged with Chan, Golub & LeVeque's pairwise update,
    which is as accurate as a two-pass computation. With one chunk the result
    is the two-pass ``mean`` and ``centred.T @ centred`` up to rounding.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    codes : ndarray of int of shape (n_samples,)
        Class index of each row, in ``range(n_classes)``.
    n_classes : int
    transform : callable, default=None
        Applied to each chunk of ``X`` as read (float32 stays float32; a
        transform that needs float64, e.g. :func:`l2_normalize`, casts it
        first); it may change the number of columns (e.g. :func:`pool_maps`
        on 4-D maps, or a slice of columns).
    tied : bool, default=False
        Return the within-class scatter summed over the classes, one
        ``(n_features, n_features)`` matrix (a shared covariance needs no
        more, whatever the number of classes).
    diagonal : bool, default=False
        Keep only the diagonals of the scatter matrices (the sums of squared
        deviations, ``(n_features,)`` each): all that diagonal covariances need.
    scatter : bool, default=True
        ``False``: counts and means only (``scatters`` is ``None``), for a
        detector that needs no covariance: no ``D x D`` product per chunk.
    chunk_rows : int, default=CHUNK_ROWS
    moments : tuple (counts, means, scatters), default=None
        Statistics of earlier rows, as returned by this function for
        ``n_classes`` classes; the rows of ``X`` are merged into them by the
        same update as one more chunk. The arrays passed are not modified.

    Returns
    -------
    counts : ndarray of shape (n_classes,)
    means : ndarray of shape (n_classes, n_features)
    scatters : ndarray of shape (n_classes, n_features, n_features) or None
        ``sum_i (x_i - mean)(x_i - mean)^T`` over each class's rows; with
        ``tied=True`` their sum, of shape ``(n_features, n_features)``; with
        ``diagonal=True`` their diagonals (the last axis dropped); ``None``
        with ``scatter=False``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [2.0], [10.0], [4.0]])
    >>> counts, means, scatters = class_moments(X, np.array([0, 0, 1, 0]), 2, chunk_rows=2)
    >>> counts, means.ravel(), scatters.ravel()
    (array([3, 1]), array([ 2., 10.]), array([8., 0.]))
    >>> class_moments(X, np.array([0, 0, 1, 0]), 2, tied=True)[2]
    array([[8.]])
    >>> class_moments(np.hstack([X, 2 * X]), np.array([0, 0, 1, 0]), 2, diagonal=True)[2]
    array([[ 8., 32.],
           [ 0.,  0.]])
    >>> first = class_moments(X[:2], np.array([0, 0]), 2)  # then two more rows:
    >>> [a.ravel() for a in class_moments(X[2:], np.array([1, 0]), 2, moments=first)]
    [array([3, 1]), array([ 2., 10.]), array([8., 0.])]
    >>> class_moments(X, np.array([0, 0, 1, 0]), 2, scatter=False)
    (array([3, 1]), array([[ 2.],
           [10.]]), None)
    """
    if moments is None:
        counts = np.zeros(n_classes, dtype=np.int64)
        means = scatters = None
    else:
        counts, means, scatters = (None if a is None else np.array(a) for a in moments)  # copies
    centred = None
    for rows in row_chunks(X.shape[0], chunk_rows, row_size=int(np.prod(X.shape[1:]))):
        H = X[rows] if transform is None else transform(X[rows])
        chunk_codes = codes[rows]
        if chunk_codes.size > 1 and np.any(chunk_codes[1:] < chunk_codes[:-1]):
            order = np.argsort(chunk_codes, kind="stable")
            H, chunk_codes = H[order], chunk_codes[order]  # each class's rows contiguous
        if means is None:
            n_features = H.shape[1]
            means = np.zeros((n_classes, n_features))
            if scatter:
                shape = (n_features,) if diagonal else (n_features, n_features)
                scatters = np.zeros(shape if tied else (n_classes,) + shape)
        if scatter and (centred is None or centred.shape[0] < H.shape[0]):
            centred = np.empty(H.shape)  # the first chunk is the largest: one buffer
        present, starts, n_b = np.unique(chunk_codes, return_index=True, return_counts=True)
        runs = [slice(a, a + n) for a, n in zip(starts.tolist(), n_b.tolist())]
        mean_b = np.array([H[run].sum(axis=0, dtype=np.float64) for run in runs]) / n_b[:, None]
        if scatter:
            _add_scatters(H, runs, mean_b, present, scatters, centred[:H.shape[0]], tied=tied,
                          diagonal=diagonal)
        n_a = counts[present]
        counts[present] += n_b
        delta = mean_b - means[present]
        if scatter and np.any(n_a > 0):  # the between-chunk part of the scatter
            seen = n_a > 0
            d, w = delta[seen], (n_a * n_b / counts[present])[seen]
            if tied:
                scatters += (w[:, None] * d * d).sum(axis=0) if diagonal else (d.T * w) @ d
            else:
                for c, d_c, w_c in zip(present[seen], d, w):
                    scatters[c] += w_c * d_c * d_c if diagonal else np.outer(w_c * d_c, d_c)
        # n_a = 0: the mean is mean_b exactly (0 + delta * 1)
        means[present] += delta * (n_b / counts[present])[:, None]
    return counts, means, scatters


def _add_scatters(H, runs, mean_b, present, scatters, centred, *, tied, diagonal):
    """Add the scatter of each run of rows of ``H`` about its mean to ``scatters``.

    The rows are centred into the float64 array ``centred`` (``H`` may be
    float32); the scatter is ``centred.T @ centred``, which NumPy computes by
    BLAS ``syrk`` (half the products of a general matrix product): once for
    the whole chunk when ``tied``, once per class (``present``) otherwise.
    """
    for run, mean in zip(runs, mean_b):
        np.subtract(H[run], mean, out=centred[run])
    if tied:
        scatters += np.einsum("ij,ij->j", centred, centred) if diagonal else centred.T @ centred
        return
    for c, run in zip(present, runs):
        block = centred[run]
        scatters[c] += np.einsum("ij,ij->j", block, block) if diagonal else block.T @ block
