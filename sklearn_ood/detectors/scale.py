"""SCALE: rescale the whole feature vector by ASH-S's factor, then energy.

Xu, Chen, Franchi & Yao, "Scaling for Training Time and Post-hoc
Out-of-distribution Detection Enhancement", ICLR 2024,
https://arxiv.org/abs/2310.00227.

It reads the pooled penultimate features ``h`` (2-D ``X``), needs the final
linear layer (``head=``) and scores ``logsumexp(W (r h) + b)`` with
``r = exp(s1 / s2)``: ``s1`` the sum of ``h``, ``s2`` the sum of its
``k = D - round(D * p / 100)`` largest entries. Unlike ASH-S nothing is
pruned. Higher means more in-distribution. ``percentile`` is in percent (as
the official code and OpenOOD; pytorch-ood takes a fraction).
"""

from numbers import Real

import numpy as np
from scipy.special import logsumexp
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from ._features import in_precision, top_k_sum
from ._head import HeadMixin, linear_logits
from .ash import _scale_nonzero


def scale_energy(features, coef, intercept, percentile=85.0):
    """SCALE score ``logsumexp(exp(s1 / s2) * h W^T + b)`` of each row.

    No rescaling where ``s2 == 0``; an overflowing ``exp(s1 / s2)`` gives
    ``+-inf`` scores, never NaN (as :func:`~sklearn_ood.detectors.ash.ash_energy`).

    Examples
    --------
    >>> import numpy as np
    >>> # D = 4, p = 50: k = 2, s1 = 4, s2 = 3, r = exp(4 / 3)
    >>> h = np.array([[1.0, 2.0, 0.0, 1.0]])
    >>> s = scale_energy(h, np.eye(4), np.zeros(4), 50)
    >>> bool(np.isclose(s[0], np.log(np.exp(h[0] * np.exp(4 / 3)).sum())))
    True
    """
    h = in_precision(features)  # float32 features: selection and product in float32
    n = h.shape[1]
    k = n - int(np.round(n * percentile / 100.0))
    s1 = h.sum(axis=1, dtype=np.float64)
    s2 = top_k_sum(h, k)
    product = linear_logits(h, coef, 0.0).astype(np.float64, copy=False)
    logits = _scale_nonzero(product, s1, s2) + intercept
    with np.errstate(divide="ignore", invalid="ignore"):
        return logsumexp(logits, axis=1)


class SCALE(HeadMixin, BaseDetector):
    """SCALE: ``logsumexp(W (exp(s1 / s2) h) + b)``; higher means more ID.

    Applied to the pooled penultimate feature, as the official code
    (``scale_net.py``). Meant for non-negative (post-ReLU) features. Nothing
    is fitted besides the head and ``offset_``.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    percentile : float in [0, 100], default=85
        ``s2`` sums the ``k = D - round(D * percentile / 100)`` largest entries
        of each row (official and OpenOOD default 85).
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
    sklearn_ood.detectors.ash.ASH : prunes, then scales.

    References
    ----------
    Xu, Chen, Franchi & Yao, "Scaling for Training Time and Post-hoc
    Out-of-distribution Detection Enhancement", ICLR 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import SCALE
    >>> h = np.array([[1.0, 2.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    >>> SCALE((np.eye(4), np.zeros(4)), percentile=50).fit(h).score_samples(h).round(3)
    array([7.632, 8.775])
    """

    # Tuning: OpenOOD's sweep of ``percentile``.
    _detector_tags = DetectorTags(
        input="features", head="required",
        grid={"percentile": [65, 70, 75, 80, 85, 90, 95]}, paper="Xu et al., ICLR 2024")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "percentile": [Interval(Real, 0, 100, closed="both")],
    }

    def __init__(self, head=None, *, percentile=85, contamination=0.05):
        self.head = head
        self.percentile = percentile
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)

    def _score(self, X):
        return scale_energy(X, self.coef_, self.intercept_, self.percentile)
