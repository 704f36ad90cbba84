"""VRA: zero the low activations, cap the high ones (per feature), then energy.

Xu, Lian, Liu & Tao, "VRA: Variational Rectified Activation for
Out-of-distribution Detection", NeurIPS 2023, https://arxiv.org/abs/2302.11716.

It reads the pooled penultimate features ``h`` (2-D ``X``) and needs the final
linear layer (``head=``). Following the official code (``models/resnet.py``,
case ``clip2``): per feature ``i``, with thresholds ``alpha_i`` and
``beta_i`` the ``low_percentile`` and ``high_percentile`` of feature ``i`` on
the ID training rows, ``g(h_i) = 0`` if ``h_i < alpha_i``, ``beta_i`` if
``h_i > beta_i``, else ``h_i + gamma`` (``gamma = 0``: VRA, ``> 0``: VRA+);
score ``logsumexp(W g(h) + b)``. OpenOOD and pytorch-ood *raise* low values
to the threshold instead of zeroing them (and use other thresholds): not
VRA as published. Higher means more in-distribution.
"""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from ._head import HeadMixin
from ._quantiles import column_percentiles
from .logits import energy


def vra_thresholds(features, low_percentile=60.0, high_percentile=90.0):
    """Per-feature ``(alpha, beta)``: two percentiles of each column (linear interpolation).

    Exactly ``np.percentile(features.astype(np.float64), q, axis=0)``,
    computed a block of columns at a time
    (:func:`~sklearn_ood.detectors._quantiles.column_percentiles`), without a
    float64 copy of ``features``.

    Examples
    --------
    >>> import numpy as np
    >>> vra_thresholds(np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0]]), 50, 100)
    (array([ 1., 20.]), array([ 2., 30.]))
    """
    alpha, beta = column_percentiles(features, [low_percentile, high_percentile])
    return alpha, beta


def vra_rectify(features, alpha, beta, gamma=0.0):
    """``0`` below ``alpha``, ``beta`` above ``beta``, ``h + gamma`` in between.

    Examples
    --------
    >>> import numpy as np
    >>> vra_rectify(np.array([[0.2, 0.7, 3.0]]), 0.5, 1.0, gamma=0.1)
    array([[0. , 0.8, 1. ]])

    Float32 rows are rectified in float32 (the thresholds compared exactly):

    >>> vra_rectify(np.array([[0.2, 0.7, 3.0]], dtype=np.float32), 0.5, 1.0).dtype
    dtype('float32')
    """
    h = np.asarray(features)
    alpha, beta = np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    if h.dtype == np.float32:
        # float32 rows against the float64 thresholds, in float32: h < alpha exactly when
        # h < (the smallest float32 >= alpha), h > beta when h > (the largest <= beta).
        low, high, cap = _float32_bound(alpha, up=True), _float32_bound(beta, up=False), \
            beta.astype(np.float32)
    else:
        h = h.astype(np.float64, copy=False)
        low, high, cap = alpha, beta, beta
    out = np.minimum(h, cap) if gamma == 0 else h + h.dtype.type(gamma)
    if gamma != 0:
        np.copyto(out, np.broadcast_to(cap, out.shape), where=h > high)
    np.copyto(out, 0, where=h < low)
    return out


def _float32_bound(t, *, up):
    """The smallest float32 ``>= t`` (``up``) or the largest ``<= t``, per entry."""
    t32 = t.astype(np.float32)
    off = t32 < t if up else t32 > t
    t32[off] = np.nextafter(t32[off], np.float32(np.inf if up else -np.inf))
    return t32


class VRA(HeadMixin, BaseDetector):
    """VRA: per-feature suppression below ``alpha``, cap at ``beta``, then energy.

    Score ``logsumexp(W g(h) + b)`` with ``g`` of :func:`vra_rectify`; higher
    means more ID. Thresholds are per-feature percentiles of the ID training
    rows (the official CIFAR recipe); ``thresholds`` sets absolute values
    instead (the official ImageNet ResNet-50 recipe: ``(0.5, 1.0)``).

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    low_percentile, high_percentile : float in [0, 100], default=60, 90
        Per-feature percentiles giving ``alpha_`` and ``beta_`` (official
        CIFAR-10 quantiles 0.6 and 0.9, in percent); ``low < high``.
    gamma : float >= 0, default=0.0
        Added to the kept activations (VRA+: 0.6 on CIFAR).
    thresholds : (float, float) or None, default=None
        Absolute ``(alpha, beta)`` for every feature; overrides the percentiles.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    alpha_ : ndarray of shape (n_features_in_,)
        Lower threshold per feature.
    beta_ : ndarray of shape (n_features_in_,)
        Upper threshold per feature.
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
    sklearn_ood.detectors.react.ReAct : the upper clip alone.

    References
    ----------
    Xu, Lian, Liu & Tao, "VRA: Variational Rectified Activation for
    Out-of-distribution Detection", NeurIPS 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import VRA
    >>> h = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    >>> det = VRA((np.eye(2), np.zeros(2)), low_percentile=50, high_percentile=100).fit(h)
    >>> det.alpha_, det.beta_
    (array([1., 2.]), array([2., 3.]))
    """

    # Tuning: ``high_percentile`` as OpenOOD's sweep; ``low_percentile`` around the official
    # 60 (OpenOOD's 1-15 are percentiles of all entries under its raise-to-threshold rule).
    _detector_tags = DetectorTags(
        input="features", head="required",
        grid={"low_percentile": [30, 45, 60, 75], "high_percentile": [85, 90, 95, 99]},
        paper="Xu et al., NeurIPS 2023")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "low_percentile": [Interval(Real, 0, 100, closed="both")],
        "high_percentile": [Interval(Real, 0, 100, closed="both")],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "thresholds": ["array-like", None],
    }

    def __init__(self, head=None, *, low_percentile=60, high_percentile=90, gamma=0.0,
                 thresholds=None, contamination=0.05):
        self.head = head
        self.low_percentile = low_percentile
        self.high_percentile = high_percentile
        self.gamma = gamma
        self.thresholds = thresholds
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)
        d = X.shape[1]
        if self.thresholds is not None:
            t = np.asarray(self.thresholds, dtype=np.float64)
            if t.shape != (2,) or not np.all(np.isfinite(t)) or t[0] > t[1]:
                raise ValueError(
                    "thresholds must be two finite numbers (alpha, beta) with alpha <= "
                    f"beta, e.g. (0.5, 1.0); got {self.thresholds!r}."
                )
            self.alpha_, self.beta_ = np.full(d, t[0]), np.full(d, t[1])
            return
        if self.low_percentile >= self.high_percentile:
            raise ValueError(
                "low_percentile must be below high_percentile; got "
                f"{self.low_percentile} and {self.high_percentile}."
            )
        self.alpha_, self.beta_ = vra_thresholds(X, self.low_percentile, self.high_percentile)

    def _score(self, X):
        g = vra_rectify(X, self.alpha_, self.beta_, self.gamma)
        return energy(self._logits(g))
