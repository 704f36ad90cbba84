"""A lazy view of some rows of an array-like (a leaf module).

Selecting rows of an in-memory or memory-mapped array by fancy indexing copies
them; :class:`RowSubset` reads them only when sliced, a chunk at a time. The
conformal meta-estimator hands such views of its fit and calibration rows to
the detectors, and so does a detector's calibration split
(:mod:`sklearn_ood._calibration`).
"""

import numpy as np

__all__ = ["RowSubset"]


class RowSubset:
    """Rows ``rows`` of an array-like ``X``, read only when sliced (a lazy view).

    It has ``shape``, ``dtype``, ``ndim`` and ``len``; slicing it reads the
    selected rows of the slice from ``X`` (``X[rows[start:stop]]``, sorted
    indices, as h5py wants), and ``np.asarray`` reads them all (for the
    detectors that take features in memory).

    Examples
    --------
    >>> import numpy as np
    >>> view = RowSubset(np.arange(10).reshape(5, 2), [1, 3, 4])
    >>> view.shape, view[1:].tolist(), np.asarray(view)[0].tolist()
    ((3, 2), [[6, 7], [8, 9]], [2, 3])
    """

    def __init__(self, X, rows):
        self.X, self.rows = X, np.asarray(rows, dtype=np.intp)

    @property
    def shape(self):
        return (self.rows.size, *tuple(self.X.shape)[1:])

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def dtype(self):
        return self.X.dtype

    def __len__(self):
        return self.rows.size

    def __getitem__(self, key):
        if isinstance(key, tuple):  # (rows, columns, ...): select the rows first
            return self[key[0]][(slice(None), *key[1:])]
        rows = self.rows[key]
        if np.ndim(rows) == 0:
            return self.X[int(rows)]
        return self.X[rows]

    def __array__(self, dtype=None, copy=None):
        array = np.asarray(self.X[self.rows])
        return array if dtype is None else array.astype(dtype, copy=False)
