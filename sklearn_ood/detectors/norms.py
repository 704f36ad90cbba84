"""Norm-based scores: FeatureNorm, NAN (negative-aware norm), NAP."""

import numpy as np


def negative_aware_norm(a):
    """NAN of each row: ``||a||_1 / ||a||_0`` (Park et al., ICCV 2023, Eq. 10).

    ``a`` is 2-D ``(n, d)`` or N-D (flattened per sample). ``||a||_0`` counts
    the strictly positive entries (``a <= 0`` is deactivated); rows with no
    positive entry score 0.

    Examples
    --------
    >>> import numpy as np
    >>> negative_aware_norm(np.array([[2.0, 0.0, 4.0, -1.0], [0.0, 0.0, 0.0, 0.0]]))
    array([3.5, 0. ])
    """
    a = np.asarray(a).reshape(len(a), -1)
    active = np.count_nonzero(a > 0, axis=1)
    l1 = np.abs(a).sum(axis=1, dtype=np.float64)
    return np.divide(l1, active, out=np.zeros(len(a)), where=active > 0)
