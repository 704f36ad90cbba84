"""GradNorm: the L1 norm of the last layer's gradient of a KL to the uniform distribution.

Huang, Geng & Li, "On the Importance of Gradients for Detecting
Distributional Shifts in the Wild", NeurIPS 2021,
https://arxiv.org/abs/2110.00218.

The pure function :func:`gradnorm_score` is the closed form for a linear last
layer; :class:`GradNorm` only stores the head.
"""

from numbers import Real

import numpy as np
from scipy.special import softmax
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from ._features import in_precision
from ._head import HeadMixin


def gradnorm_score(X, logits, temperature=1.0):
    """``(1/T) ||K softmax(z/T) - 1||_1 ||h||_1``: the closed-form GradNorm.

    For ``L = sum_c -log softmax(z/T)_c`` and ``z = W h + b``,
    ``dL/dW = (K p - 1) h^T / T``, whose entrywise L1 norm factorises.

    Examples
    --------
    >>> import numpy as np
    >>> # p = (1/2, 1/2): K p - 1 = 0, no gradient
    >>> gradnorm_score(np.array([[1.0, -2.0]]), np.zeros((1, 2)))
    array([0.])
    """
    K = logits.shape[1]
    p = softmax(logits / temperature, axis=1)
    return np.abs(K * p - 1.0).sum(axis=1) * np.abs(X).sum(axis=1, dtype=np.float64) / temperature


class GradNorm(HeadMixin, BaseDetector):
    """GradNorm: the L1 norm of the last layer's gradient of a KL to the uniform distribution.

    The official code (GN ``test_ood.py``) back-propagates
    ``L = sum_{c=1}^K -log softmax(z/T)_c`` (cross-entropy to all-ones
    targets, summed) to the last layer's weight only and scores its L1 norm.
    For a linear head that gradient is ``(K p - 1) h^T / T``, so the score is
    the closed form ``(1/T) ||K p - 1||_1 ||h||_1``, ``p = softmax(z/T)``,
    without autograd (float32 features: the logits and ``||h||_1`` in float32,
    the softmax in float64). Higher means more ID. pytorch-ood averages
    the loss (``1/K``, same ranking) and by default differentiates every
    parameter it is given; we follow the official code (weight only, sum).

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    temperature : float > 0, default=1.0
        ``T`` (1 in the official code).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray
        The head.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    References
    ----------
    Huang, Geng & Li, "On the Importance of Gradients for Detecting
    Distributional Shifts in the Wild", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import GradNorm
    >>> det = GradNorm((np.array([[1.0, 0.0], [-1.0, 0.0]]), np.zeros(2)))
    >>> # h = (log(3)/2, 1): p = (3/4, 1/4), |2p - 1|_1 = 1, |h|_1 = 1.5493
    >>> det.fit(np.ones((2, 2))).score_samples(np.array([[np.log(3) / 2, 1.0]])).round(4)
    array([1.5493])
    """

    _detector_tags = DetectorTags(
        input="features", head="required",
        paper="Huang, Geng & Li, NeurIPS 2021")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, head=None, *, temperature=1.0, contamination=0.05):
        self.head = head
        self.temperature = temperature
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)

    def _score(self, X):
        X = in_precision(X)  # float32 features: logits and norms in float32
        return gradnorm_score(X, self._logits(X).astype(np.float64), self.temperature)
