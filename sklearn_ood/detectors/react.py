"""ReAct: clip the penultimate features from above, then score with energy.

Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified
Activations", NeurIPS 2021, https://arxiv.org/abs/2111.12797.

It reads the post-GAP penultimate features ``h`` (2-D ``X``), needs the final
linear layer (``head=``, ``W`` of shape ``(K, D)``, ``b`` of shape ``(K,)``)
and scores the logits of the clipped features with the energy ``logsumexp(z)``
(``T = 1`` as in every reference implementation); higher means more
in-distribution.

The pure functions :func:`react_threshold` and :func:`react_clip` hold the
method; :class:`ReAct` fits the clip value.
"""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from ._head import HeadMixin
from ._quantiles import percentile_of_all
from .logits import energy


def react_threshold(features, percentile=90.0):
    """ReAct clip value: the ``percentile`` of *all* entries of ``features``.

    The percentile is taken over the flattened ``(N * D)`` entries (not per
    feature), with NumPy's default linear interpolation: exactly
    ``np.percentile(features.astype(np.float64), percentile)``, found by
    radix selection over chunks of rows
    (:func:`~sklearn_ood.detectors._quantiles.percentile_of_all`), without a
    float64 copy of ``features``.

    Examples
    --------
    >>> import numpy as np
    >>> react_threshold(np.array([[0.0, 10.0], [1.0, 20.0]]), 50)
    5.5
    """
    return percentile_of_all(features, percentile)


def react_clip(features, clip):
    """Rectify from above: ``min(features, clip)`` element-wise.

    Examples
    --------
    >>> import numpy as np
    >>> react_clip(np.array([[0.5, 3.0]]), 1.0)
    array([[0.5, 1. ]])
    """
    return np.minimum(features, clip)


class ReAct(HeadMixin, BaseDetector):
    """ReAct: clip the penultimate features from above, then score with energy.

    Score: ``logsumexp(min(h, clip_) W^T + b)``; higher means more ID.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    percentile : float in [0, 100], default=90
        ``clip_`` is this percentile of all entries of the ID training
        features (flattened, not per feature). Ignored when ``clip`` is set.
    clip : float, default=None
        Absolute clip value (e.g. 1.0 for ImageNet ResNet-50); overrides
        ``percentile``.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    clip_ : float
        The clip value used.
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
    sklearn_ood.detectors.dice.DICE, sklearn_ood.detectors.ash.ASH,
    sklearn_ood.detectors.line.LINe

    References
    ----------
    Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified
    Activations", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import ReAct
    >>> h = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    >>> head = (np.eye(2), np.zeros(2))
    >>> det = ReAct(head, percentile=50).fit(h)
    >>> det.clip_
    2.5
    >>> det.score_samples(np.array([[10.0, 0.0]])).round(4)
    array([2.5789])
    """

    # Tuning: ``percentile`` around the paper's 90.
    _detector_tags = DetectorTags(
        input="features", head="required",
        grid={"percentile": [80, 85, 90, 95, 99]}, paper="Sun, Guo & Li, NeurIPS 2021")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "percentile": [Interval(Real, 0, 100, closed="both")],
        "clip": [Interval(Real, None, None, closed="neither"), None],
    }

    def __init__(self, head=None, *, percentile=90, clip=None, contamination=0.05):
        self.head = head
        self.percentile = percentile
        self.clip = clip
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)
        if self.clip is None:
            self.clip_ = react_threshold(X, self.percentile)
        else:
            self.clip_ = float(self.clip)

    def _score(self, X):
        # Float32 features are scored in float32 (the clip value rounded to float32).
        return energy(self._logits(react_clip(X, self.clip_)))
