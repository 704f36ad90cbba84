"""Negative-aware norm (NAN): ``||a||_1 / ||a||_0`` of the last hidden layer.

Park, Chai, Yoon & Teoh, "Understanding the Feature Norm for
Out-of-Distribution Detection", ICCV 2023, https://arxiv.org/abs/2310.05316.

The pure function :func:`negative_aware_norm` holds the score (paper Eq. 10),
:func:`l1_norm` its ablation without the sparsity term (Table 5), and
:func:`negative_aware_rescaled_score` its combination with a distance
(Sec. 6.2), which :class:`~sklearn_ood.detectors.knn.KNN` and
:class:`~sklearn_ood.detectors.mahalanobis.Mahalanobis` offer;
:class:`NegativeAwareNorm` fits nothing but the threshold.
"""

import numpy as np

from .._base import BaseDetector
from .._tags import DetectorTags

_TINY = np.finfo(np.float64).tiny
_FMAX = np.finfo(np.float64).max


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


def l1_norm(a):
    """``||a||_1`` of each row: NAN without the sparsity term ``||a||_0^{-1}``.

    The ablation of Park et al. (ICCV 2023, Table 5). ``a`` is 2-D ``(n, d)``
    or N-D (flattened per sample).

    Examples
    --------
    >>> import numpy as np
    >>> l1_norm(np.array([[2.0, 0.0, 4.0, -1.0], [0.0, 0.0, 0.0, 0.0]]))
    array([7., 0.])
    """
    return np.abs(np.asarray(a).reshape(len(a), -1)).sum(axis=1, dtype=np.float64)


def negative_aware_rescaled_score(distance, activations):
    """NAN-recalibrated distance score ``-(d / NAN(a))`` (Park et al., 2023, Sec. 6.2).

    ``NAN(a) = ||a||_1 / ||a||_0`` (``negative_aware_norm``). A row with no
    active unit (``NAN = 0``) is divided by the smallest positive float64
    instead, and the result is clipped to ``-finfo(float64).max``: such rows
    get hugely negative but finite scores (0 if their distance is 0).

    Examples
    --------
    >>> import numpy as np
    >>> negative_aware_rescaled_score(np.array([1.0, 1.0]),
    ...                               np.array([[2.0, 0.0], [1.0, 3.0]]))
    array([-0.5, -0.5])
    """
    norm = negative_aware_norm(activations)
    with np.errstate(over="ignore"):
        score = -(np.asarray(distance, dtype=np.float64) / np.maximum(norm, _TINY))
    return np.maximum(score, -_FMAX)


class NegativeAwareNorm(BaseDetector):
    """Negative-aware norm (NAN, Park et al., ICCV 2023): ``||a||_1 / ||a||_0``.

    ``||a||_1 = sum_i |a_i|`` and ``||a||_0`` is the number of strictly
    positive entries; a row without positive entry scores 0. Higher means
    more in-distribution, as in the paper. No statistics are fitted.

    Input: 4-D maps ``(N, C, H, W)`` are flattened per sample -- the
    recommended input is the last block's post-ReLU map before pooling
    (measured: on pooled features almost no unit is exactly 0 and NAN degrades
    to an L1 norm; the documentation's methods page). 2-D input is used as given.
    ``BlockFeatureExtractor(net, "layer4", reduce="negative_aware_norm")`` followed by
    ``NegativeAwareNorm()`` gives the same scores as the 4-D maps while
    keeping one number per image (``reduce="flatten"`` does too, holding the
    whole maps).

    Parameters
    ----------
    divide_by_active : bool, default=True
        Divide ``||a||_1`` by ``||a||_0``, the number of active units (NAN).
        ``False`` scores the plain L1 norm ``||a||_1`` (:func:`l1_norm`): the
        paper's Table 5 ablation, which removes the sparsity term.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Features (2-D input) or channels (4-D input).
    input_ndim_ : int
        2 or 4.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    negative_aware_norm : the scoring function.
    l1_norm : the score with ``divide_by_active=False``.

    References
    ----------
    Park, Chai, Yoon, Teoh, "Understanding the Feature Norm for
    Out-of-Distribution Detection", ICCV 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import NegativeAwareNorm
    >>> a = np.array([[2.0, 0.0, 4.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    >>> NegativeAwareNorm().fit(a).score_samples(a)
    array([3.5, 1. ])
    >>> NegativeAwareNorm(divide_by_active=False).fit(a).score_samples(a)  # ||a||_1
    array([7., 4.])
    """

    _detector_tags = DetectorTags(
        input="maps", ndim=(2, 4), paper="Park et al., ICCV 2023")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "divide_by_active": ["boolean"],
    }

    def __init__(self, *, divide_by_active=True, contamination=0.05):
        self.divide_by_active = divide_by_active
        self.contamination = contamination

    def _fit(self, X, y):
        pass

    def _score(self, X):
        return negative_aware_norm(X) if self.divide_by_active else l1_norm(X)
