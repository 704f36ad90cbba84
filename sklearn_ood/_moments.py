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

    Statistics are float64; ``X`` is read ``chunk_rows`` rows at a time (fewer
    for wide rows, see :func:`row_chunks`; each chunk cast to float64 and
    passed through ``transform``), and chunk
    statistics are merged with Chan, Golub & LeVeque's pairwise update, which
    is as accurate as a two-pass computation. With one chunk the result is
    bit-identical to the two-pass ``mean`` and ``centred.T @ centred``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    codes : ndarray of int of shape (n_samples,)
        Class index of each row, in ``range(n_classes)``.
    n_classes : int
    transform : callable, default=None
        Applied to each float64 chunk (e.g. :func:`l2_normalize`); it may
        change the number of columns (e.g. :func:`pool_maps` on 4-D maps).
    tied : bool, default=False
        Return the within-class scatter summed over the classes, one
        ``(n_features, n_features)`` matrix (a shared covariance needs no
        more, whatever the number of classes).
    diagonal : bool, default=False
        Keep only the diagonals of the scatter matrices (the sums of squared
        deviations, ``(n_features,)`` each): all that diagonal covariances need.
    scatter : bool, default=True
        ``False``: counts and means only (``scatters`` is ``None``), for a
        detector that needs no covariance: no ``D x D`` product per chunk
        (and, without ``transform``, float32 chunks are summed in float64
        without a float64 copy).
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
    for rows in row_chunks(X.shape[0], chunk_rows, row_size=int(np.prod(X.shape[1:]))):
        if transform is None and not scatter:  # sums accumulated in float64, no copy
            H = X[rows]
        else:
            H = X[rows].astype(np.float64)
        if transform is not None:
            H = transform(H)
        if means is None:
            n_features = H.shape[1]
            means = np.zeros((n_classes, n_features))
            if scatter:
                shape = (n_features,) if diagonal else (n_features, n_features)
                scatters = np.zeros(shape if tied else (n_classes,) + shape)
        chunk_codes = codes[rows]
        if not scatter:
            _merge_means(H, chunk_codes, counts, means)
            continue
        for c in np.unique(chunk_codes):
            B = H[chunk_codes == c]
            n_a, n_b = counts[c], B.shape[0]
            mean_b = B.mean(axis=0)
            delta = mean_b - means[c]
            counts[c] += n_b
            centred = B - mean_b
            scatter_b = np.einsum("ij,ij->j", centred, centred) if diagonal \
                else centred.T @ centred
            if n_a > 0:
                outer = delta * delta if diagonal else np.outer(delta, delta)
                scatter_b += outer * (n_a * n_b / counts[c])
            if tied:
                scatters += scatter_b
            elif n_a == 0:
                scatters[c] = scatter_b
            else:
                scatters[c] += scatter_b
            means[c] = mean_b if n_a == 0 else means[c] + delta * (n_b / counts[c])
    return counts, means, scatters


def _merge_means(H, codes, counts, means):
    """Merge the per-class means of the rows ``H`` into ``counts`` and ``means`` (in place).

    The class sums come from one pass over the rows sorted by class
    (``np.add.reduceat``), whatever the number of classes, accumulated in
    float64 (``H`` may be float32); the means are merged as in
    :func:`class_moments`.
    """
    if codes.size and (codes == codes[0]).all():  # one class: no sorting
        present, n_b = codes[:1], np.array([codes.size])
        sums = H.sum(axis=0, dtype=np.float64)[None]
    else:
        order = np.argsort(codes, kind="stable")
        present, starts, n_b = np.unique(codes[order], return_index=True, return_counts=True)
        sums = np.add.reduceat(H[order], starts, axis=0, dtype=np.float64)
    n_a = counts[present]
    counts[present] += n_b
    mean_b = sums / n_b[:, None]
    merged = means[present] + (mean_b - means[present]) * (n_b / counts[present])[:, None]
    means[present] = np.where((n_a == 0)[:, None], mean_b, merged)
