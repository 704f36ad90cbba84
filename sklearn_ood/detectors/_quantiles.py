"""Exact percentiles of large feature arrays without a float64 copy.

Both functions return what ``np.percentile(np.asarray(X, dtype=np.float64), q)``
returns (NumPy's default ``method="linear"``), over all entries
(:func:`percentile_of_all`, the ReAct clip value) or per column
(:func:`column_percentiles`, the VRA thresholds): they find the same two order
statistics exactly, then interpolate them in float64 with NumPy's own formula.
``X`` must be free of NaN (the detectors' input checks ensure it).
"""

import numpy as np

from ._features import CHUNK_ROWS, row_chunks

_DIGIT_BITS = 16


def _linear_positions(n, q):
    """Ranks ``(lo, hi)`` and weight ``t`` of the ``q`` percentile of ``n`` sorted values.

    NumPy's ``method="linear"``: the virtual index ``(n - 1) * q / 100``.

    Examples
    --------
    >>> _linear_positions(5, 90)
    (3, 4, 0.6000000000000001)
    >>> _linear_positions(5, 100)
    (4, 4, 0.0)
    """
    virtual = (n - 1) * (float(q) / 100)
    lo = min(int(np.floor(virtual)), n - 1)
    return lo, min(lo + 1, n - 1), virtual - lo


def _lerp(a, b, t):
    """``a + (b - a) t``, written as NumPy's percentile writes it (bit-equal results).

    Examples
    --------
    >>> float(_lerp(1.0, 2.0, 0.25)), float(_lerp(1.0, 2.0, 0.75))
    (1.25, 1.75)
    """
    diff = np.subtract(b, a, dtype=np.float64)
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _work_dtype(X):
    return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)


def _order_keys(values):
    """Unsigned integers ordered as the floats ``values`` (float32 or float64, no NaN).

    The sign bit of a non-negative float is set, every bit of a negative one
    flipped: comparing keys then compares the floats (``-0.0`` before ``0.0``).

    Examples
    --------
    >>> v = np.array([2.0, -1.0, 0.0, -3.5, 1e-30], dtype=np.float32)
    >>> np.argsort(_order_keys(v)).tolist() == np.argsort(v).tolist()
    True
    """
    signed = values.view(np.int32 if values.dtype == np.float32 else np.int64)
    flip = (signed >> (8 * values.itemsize - 1)) | np.iinfo(signed.dtype).min
    return (signed ^ flip).view(np.uint32 if values.dtype == np.float32 else np.uint64)


def _key_to_float(key, dtype):
    """Inverse of :func:`_order_keys` for one key."""
    nbits = 8 * dtype.itemsize
    sign = 1 << (nbits - 1)
    bits = key ^ sign if key & sign else ~key & ((1 << nbits) - 1)
    unsigned = np.uint32 if dtype == np.float32 else np.uint64
    return float(np.array(bits, dtype=unsigned).view(dtype))


def _select_ranks(X, ranks, chunk_rows):
    """Values of rank ``ranks`` (0-based) among all entries of ``X``, by radix selection.

    Each entry's order key (:func:`_order_keys`) is read 16 bits at a time,
    from the top: one pass over ``X`` by chunks counts, for every wanted rank,
    the entries sharing that rank's key prefix found so far, by their next 16
    bits; the cumulative counts give the next 16 bits of the rank's key. Two
    passes for float32, four for float64; the extra memory is one chunk and
    65,536 counts per wanted rank, whatever the number of entries.
    """
    dtype = _work_dtype(X)
    nbits = 8 * dtype.itemsize
    chunks = row_chunks(X.shape[0], chunk_rows)
    prefixes, below = [0] * len(ranks), [0] * len(ranks)
    for shift in range(nbits - _DIGIT_BITS, -1, -_DIGIT_BITS):
        counts = {p: np.zeros(1 << _DIGIT_BITS, dtype=np.int64) for p in prefixes}
        for rows in chunks:
            keys = _order_keys(np.ascontiguousarray(X[rows], dtype=dtype).ravel())
            high = keys >> (shift + _DIGIT_BITS) if shift + _DIGIT_BITS < nbits else None
            for prefix, count in counts.items():
                sub = keys if high is None else keys[high == prefix]
                count += np.bincount(((sub >> shift) & 0xFFFF).astype(np.intp),
                                     minlength=1 << _DIGIT_BITS)
        for i, rank in enumerate(ranks):
            count = counts[prefixes[i]]
            cumulative = np.cumsum(count)
            digit = int(np.searchsorted(cumulative, rank - below[i], side="right"))
            below[i] += int(cumulative[digit] - count[digit])
            prefixes[i] = (prefixes[i] << _DIGIT_BITS) | digit
    return [_key_to_float(key, dtype) for key in prefixes]


def percentile_of_all(X, q, *, chunk_rows=CHUNK_ROWS):
    """The ``q`` percentile of all entries of ``X``, exactly, in bounded memory.

    Equal to ``np.percentile(np.asarray(X, dtype=np.float64), q)``: the two
    order statistics around the virtual index ``(n - 1) q / 100`` of the
    ``n = X.size`` entries are found by radix selection on the floats' bit
    patterns (:func:`_select_ranks`: two passes over ``X`` by chunks of rows
    when ``X`` is float32, four otherwise), then linearly interpolated in
    float64. The extra memory is a few arrays of one chunk's size (its keys
    and their digits), independent of the number of rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...)
        Free of NaN. Float32 is read as is, anything else as float64.
    q : float in [0, 100]
    chunk_rows : int, default=CHUNK_ROWS
        Rows read at a time.

    Returns
    -------
    value : float

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 10.0], [1.0, 20.0]], dtype=np.float32)
    >>> percentile_of_all(X, 50), float(np.percentile(X.astype(np.float64), 50))
    (5.5, 5.5)
    >>> percentile_of_all(X, 100, chunk_rows=1)
    20.0
    """
    X = np.asarray(X)
    if X.size == 0:
        raise ValueError("percentile_of_all needs at least one entry; got an empty array.")
    lo, hi, t = _linear_positions(X.size, q)
    a, b = _select_ranks(X, (lo, hi), chunk_rows)
    return float(_lerp(a, b, t))


def column_percentiles(X, q, *, chunk_rows=CHUNK_ROWS):
    """Per-column ``q`` percentile(s) of ``X``, exactly, one block of columns at a time.

    Equal to ``np.percentile(np.asarray(X, dtype=np.float64), q, axis=0)``.
    The columns are taken ``b = max(1, chunk_rows * n_features // n_samples)``
    at a time (a block as large as a chunk of ``chunk_rows`` rows): the block
    is copied (in ``X``'s dtype if float32, else float64) as a
    ``(b, n_samples)`` C-ordered array, partitioned in place around the ranks
    that every ``q`` needs (one introselect per column, linear time), and the
    two order statistics around each virtual index are interpolated in
    float64. The extra memory is one block: one chunk, or one column
    (``n_samples`` entries) once ``n_samples > chunk_rows * n_features`` --
    linear in ``n_samples`` then, but ``1 / n_features`` of the input.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Free of NaN.
    q : float or sequence of float in [0, 100]
    chunk_rows : int, default=CHUNK_ROWS
        A block holds about ``chunk_rows * n_features`` entries (whole
        columns, at least one).

    Returns
    -------
    values : ndarray of shape (n_features,) or (len(q), n_features), float64

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0]])
    >>> column_percentiles(X, 50)
    array([ 1., 20.])
    >>> column_percentiles(X, [25, 100], chunk_rows=1)
    array([[ 0.5, 15. ],
           [ 2. , 30. ]])
    """
    X = np.asarray(X)
    n_samples, n_features = X.shape
    if n_samples == 0:
        raise ValueError("column_percentiles needs at least one row; got none.")
    positions = [_linear_positions(n_samples, p) for p in np.atleast_1d(q).tolist()]
    kth = sorted({rank for lo, hi, _ in positions for rank in (lo, hi)})
    dtype = _work_dtype(X)
    out = np.empty((len(positions), n_features))
    width = max(1, chunk_rows * n_features // n_samples)
    for start in range(0, n_features, width):
        cols = slice(start, min(start + width, n_features))
        block = np.array(X[:, cols].T, dtype=dtype, order="C")
        block.partition(kth, axis=1)
        for i, (lo, hi, t) in enumerate(positions):
            out[i, cols] = _lerp(block[:, lo].astype(np.float64), block[:, hi], t)
    return out[0] if np.ndim(q) == 0 else out
