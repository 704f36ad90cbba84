"""LTS: scale the logits by how concentrated the feature is, then energy.

Djurisic, Liu & Nikolic, "Logit Scaling for Out-of-Distribution Detection",
arXiv 2409.01175, 2024, https://arxiv.org/abs/2409.01175; official code:
github.com/andrijazz/lts (``lts.py``).

It reads the pooled penultimate features ``h`` (2-D ``X``) and needs the final
linear layer (``head=``). With ``a = max(h, 0)`` (the official code's ReLU)
and ``k = D - round(D * percentile / 100)`` (at least 1), the scale is
``s = (sum(a) / sum of the k largest a)^2`` and the score the energy of the
scaled logits, ``logsumexp(s * (W h + b))``. Nothing is fitted but the head
and ``offset_``. Higher means more in-distribution.
"""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from ._features import in_precision, top_k_sum
from ._head import HeadMixin
from .logits import energy


def lts_scale(features, percentile=95.0):
    """LTS scale ``(sum(a) / sum of the k largest a)^2`` of each row, ``a = max(h, 0)``.

    ``k = D - round(D * percentile / 100)`` (NumPy's rounding, as the official
    code), at least 1. A row without a positive entry gets scale 1.

    Examples
    --------
    >>> import numpy as np
    >>> # D = 4, percentile 50: k = 2; a = (3, 1, 0, 0): s = ((3 + 1) / (3 + 1))^2
    >>> lts_scale(np.array([[3.0, 1.0, 0.0, -2.0], [1.0, 1.0, 1.0, 1.0]]), 50)
    array([1., 4.])
    """
    a = np.maximum(in_precision(features), 0.0)  # float32 features: selection in float32
    d = a.shape[1]
    k = max(1, d - int(np.round(d * percentile / 100.0)))
    top = top_k_sum(a, k)
    ratio = np.divide(a.sum(axis=1, dtype=np.float64), top, out=np.ones(len(a)), where=top > 0)
    return ratio**2


class LTS(HeadMixin, BaseDetector):
    """LTS: the energy of the logits scaled by the feature's concentration.

    Score: ``logsumexp(s * (W h + b))`` with ``s = (sum(a) / sum of the k
    largest a)^2``, ``a = max(h, 0)`` (:func:`lts_scale`); higher means more
    ID. Applied to the pooled penultimate feature, as the official code.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    percentile : float in [0, 100), default=95
        ``k = D - round(D * percentile / 100)`` largest entries form the
        denominator: 95 keeps the top 5 % (pytorch-ood's default; the official
        function's default is 65).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray
        The head as arrays.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    sklearn_ood.SCALE : scales the features by a similar ratio, exponentiated.
    sklearn_ood.ASH : prunes the features to their largest entries.

    References
    ----------
    Djurisic, Liu & Nikolic, "Logit Scaling for Out-of-Distribution
    Detection", arXiv 2409.01175, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import LTS
    >>> h = np.array([[3.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    >>> det = LTS((np.eye(4), np.zeros(4)), percentile=50).fit(h)
    >>> det.score_samples(h).round(3)  # scales 1 and 4
    array([3.211, 5.386])
    """

    # Tuning: the official code's and OpenOOD's range of percentiles.
    _detector_tags = DetectorTags(
        input="features", head="required", grid={"percentile": [65, 75, 85, 90, 95, 99]},
        paper="Djurisic, Liu & Nikolic, arXiv 2409.01175")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "percentile": [Interval(Real, 0, 100, closed="left")],
    }

    def __init__(self, head=None, *, percentile=95, contamination=0.05):
        self.head = head
        self.percentile = percentile
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)

    def _score(self, X):
        scale = lts_scale(X, self.percentile)
        return energy(scale[:, None] * self._logits(X))
