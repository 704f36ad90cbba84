"""Feature helpers shared by several detectors: row normalisation, map pooling and
(from :mod:`sklearn_ood._moments`) statistics accumulated by chunks of rows."""

import functools

import numpy as np
from scipy import linalg
from threadpoolctl import ThreadpoolController

from .._moments import CHUNK_ROWS, class_moments, row_chunks  # noqa: F401


def in_precision(X):
    """``X`` as float32 when it is float32, else as float64: the precision a score is computed in.

    Float32 features are scored in float32 (float32 BLAS, half the memory
    traffic); anything else in float64.

    Examples
    --------
    >>> import numpy as np
    >>> in_precision(np.ones(2, dtype=np.float32)).dtype, in_precision(np.ones(2, dtype=int)).dtype
    (dtype('float32'), dtype('float64'))
    """
    X = np.asarray(X)
    return X if X.dtype == np.float32 else X.astype(np.float64, copy=False)


def top_k_sum(X, k):
    """Sum of the ``k`` largest entries of each row, accumulated in float64 (0 for ``k = 0``).

    One partition per call; whichever of tied entries is kept, the sum is the same.

    Examples
    --------
    >>> import numpy as np
    >>> top_k_sum(np.array([[3.0, 1.0, 0.0, 2.0]]), 2), top_k_sum(np.ones((1, 3)), 0)
    (array([5.]), array([0.]))
    """
    n = X.shape[1]
    if k == 0:
        return np.zeros(X.shape[0])
    return np.partition(X, n - k, axis=1)[:, n - k:].sum(axis=1, dtype=np.float64)


def l2_normalize(X):
    """Divide each row by its L2 norm; all-zero rows stay zero.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite values.

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
    scale[scale == 0] = 1  # an all-zero row: divided by 1, it stays zero
    out = np.divide(X, scale)
    # einsum sums the squares row by row, without an (n_samples, n_features) temporary.
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))[:, None]
    norms[norms == 0] = 1
    return np.divide(out, norms, out=out)


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


def one_blas_thread():
    """A context in which NumPy's and SciPy's BLAS and LAPACK run on one thread.

    For factorisations of a few hundred rows (an eigen-decomposition of a
    512 x 512 covariance, small batched SVDs), a second OpenBLAS thread gains
    little on an idle machine and costs far more when other jobs share the
    cores: a 512 x 512 ``syevd`` took 0.03 s on one thread and 3.3 s on two,
    load average 3.9 on 2 cores.

    The BLAS libraries are looked up once per process (NumPy's and SciPy's,
    loaded with this module); ``threadpool_limits`` would scan the process's
    libraries at every call (about 1 ms with torch loaded).
    """
    return _blas_libraries().limit(limits=1, user_api="blas")


@functools.cache
def _blas_libraries():
    return ThreadpoolController()


def pseudo_inverse(a):
    """Pseudo-inverse of a symmetric matrix: ``scipy.linalg.pinvh``, with its cutoff.

    Eigenvalues of magnitude up to ``max |lambda| * n * eps`` are dropped, as
    ``pinvh`` does. When no eigenvalue can be that small, the pseudo-inverse
    is the inverse, and it is computed from a Cholesky factorisation (LAPACK's
    ``potrf`` and ``potri``, a few times faster than an eigen-decomposition):
    that is when the factorisation succeeds and the 1-norm condition number
    ``||a||_1 ||a^-1||_1`` stays below ``1 / (2 n eps)`` (the smallest
    eigenvalue is at least ``1 / ||a^-1||_1``, the largest at most
    ``||a||_1``). Otherwise the eigen-decomposition is LAPACK's
    divide-and-conquer ``syevd`` (``pinvh`` calls ``syev``, several times
    slower on a 512 x 512 covariance). Both run on one BLAS thread
    (:func:`one_blas_thread`). The same matrix as ``pinvh``'s up to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> pseudo_inverse(np.array([[2.0, 0.0], [0.0, 0.0]]))  # singular: eigh
    array([[0.5, 0. ],
           [0. , 0. ]])
    >>> pseudo_inverse(np.array([[2.0, 1.0], [1.0, 2.0]])) * 3  # Cholesky
    array([[ 2., -1.],
           [-1.,  2.]])
    """
    n = max(a.shape)
    eps = np.finfo(np.float64).eps
    with one_blas_thread():
        factor, info = linalg.lapack.dpotrf(a, lower=0, clean=0)
        if info == 0:
            upper, info = linalg.lapack.dpotri(factor, lower=0)
            if info == 0:
                inverse = np.triu(upper) + np.triu(upper, 1).T
                if np.linalg.norm(a, 1) * np.linalg.norm(inverse, 1) < 0.5 / (n * eps):
                    return inverse
        s, u = linalg.eigh(a, check_finite=False, driver="evd")
    above = np.abs(s) > np.max(np.abs(s), initial=0.0) * n * np.finfo(s.dtype).eps
    u = u[:, above]
    return (u * (1.0 / s[above])) @ u.T


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
