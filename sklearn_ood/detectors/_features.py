"""Feature helpers shared by several detectors: row normalisation, map pooling and
statistics accumulated by chunks of rows (bounded memory)."""

import numpy as np

#: Rows per chunk when a detector reads its training features in float64: the
#: extra memory of a fit is its statistics plus one chunk, never a float64 copy.
CHUNK_ROWS = 4096


def row_chunks(n_samples, chunk_rows=CHUNK_ROWS):
    """Slices of consecutive rows covering ``range(n_samples)``.

    Examples
    --------
    >>> row_chunks(5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    return [slice(start, min(start + chunk_rows, n_samples))
            for start in range(0, n_samples, chunk_rows)]


def class_moments(X, codes, n_classes, *, transform=None, tied=False, chunk_rows=CHUNK_ROWS):
    """Count, mean and centred scatter matrix of the rows of ``X`` per class, by chunks.

    Statistics are float64; ``X`` is read ``chunk_rows`` rows at a time (each
    chunk cast to float64 and passed through ``transform``), and chunk
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
    chunk_rows : int, default=CHUNK_ROWS

    Returns
    -------
    counts : ndarray of shape (n_classes,)
    means : ndarray of shape (n_classes, n_features)
    scatters : ndarray of shape (n_classes, n_features, n_features)
        ``sum_i (x_i - mean)(x_i - mean)^T`` over each class's rows; with
        ``tied=True`` their sum, of shape ``(n_features, n_features)``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [2.0], [10.0], [4.0]])
    >>> counts, means, scatters = class_moments(X, np.array([0, 0, 1, 0]), 2, chunk_rows=2)
    >>> counts, means.ravel(), scatters.ravel()
    (array([3, 1]), array([ 2., 10.]), array([8., 0.]))
    >>> class_moments(X, np.array([0, 0, 1, 0]), 2, tied=True)[2]
    array([[8.]])
    """
    counts = np.zeros(n_classes, dtype=np.int64)
    means = scatters = None
    for rows in row_chunks(X.shape[0], chunk_rows):
        H = X[rows].astype(np.float64)
        if transform is not None:
            H = transform(H)
        if means is None:
            n_features = H.shape[1]
            means = np.zeros((n_classes, n_features))
            scatters = np.zeros((n_features, n_features) if tied
                                else (n_classes, n_features, n_features))
        chunk_codes = codes[rows]
        for c in np.unique(chunk_codes):
            B = H[chunk_codes == c]
            n_a, n_b = counts[c], B.shape[0]
            mean_b = B.mean(axis=0)
            centred = B - mean_b
            scatter_b = centred.T @ centred
            if n_a > 0:
                n = n_a + n_b
                delta = mean_b - means[c]
                scatter_b += np.outer(delta, delta) * (n_a * n_b / n)
                mean_b = means[c] + delta * (n_b / n)
            means[c] = mean_b
            if tied:
                scatters += scatter_b
            elif n_a == 0:
                scatters[c] = scatter_b
            else:
                scatters[c] += scatter_b
            counts[c] += n_b
    return counts, means, scatters


def l2_normalize(X):
    """Divide each row by its L2 norm; all-zero rows stay zero.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    X_normalized : ndarray of shape (n_samples, n_features), dtype of ``X``

    Examples
    --------
    >>> import numpy as np
    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    # Dividing by the largest |x_j| first keeps the squares from overflowing.
    scale = np.maximum(X.max(axis=1, keepdims=True), -X.min(axis=1, keepdims=True))
    out = np.divide(X, scale, out=np.zeros_like(X), where=scale > 0)
    # einsum sums the squares row by row, without an (n_samples, n_features) temporary.
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))[:, None]
    return np.divide(out, norms, out=out, where=norms > 0)  # zero rows are already 0


def pool_maps(X, dtype=None):
    """Average-pool 4-D maps ``(N, C, H, W)`` to ``(N, C)``; 2-D input unchanged.

    Parameters
    ----------
    X : ndarray of shape (n_samples, C, H, W) or (n_samples, n_features)
    dtype : numpy dtype, default=None
        Dtype of the result (and of the mean's accumulator). ``None`` keeps
        NumPy's default (float32 maps give float32 means) and returns 2-D
        input as it is.

    Returns
    -------
    pooled : ndarray of shape (n_samples, C) or (n_samples, n_features)

    Examples
    --------
    >>> import numpy as np
    >>> pool_maps(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[1.5, 5.5]])
    >>> pool_maps(np.ones((1, 3), dtype=np.float32), np.float64).dtype
    dtype('float64')
    """
    if X.ndim == 4:
        return X.mean(axis=(2, 3), dtype=dtype)
    return X if dtype is None else X.astype(dtype, copy=False)


def check_finite_covariance(covariance, detector):
    """Raise a clear error when a covariance overflowed float64 (features too large).

    Examples
    --------
    >>> import numpy as np
    >>> check_finite_covariance(np.array([[np.inf]]), "ViM")
    Traceback (most recent call last):
    ...
    ValueError: ViM: the covariance overflows float64 (features of magnitude up to ...
    """
    if not np.all(np.isfinite(covariance)):
        raise ValueError(
            f"{detector}: the covariance overflows float64 (features of magnitude up to "
            "~1e154 or more); rescale the features, e.g. divide them by a constant."
        )
