"""DICE: sparsify the final layer to its largest mean contributions, then energy.

Sun & Li, "DICE: Leveraging Sparsification for Out-of-Distribution
Detection", ECCV 2022, https://arxiv.org/abs/2111.09805.

It reads the post-GAP penultimate features ``h`` (2-D ``X``), needs the final
linear layer (``head=``, ``W`` of shape ``(K, D)``, ``b`` of shape ``(K,)``)
and scores the logits of the sparsified final layer with the energy
``logsumexp(z)`` (``T = 1`` as in every reference implementation); higher means
more in-distribution.

The pure function :func:`dice_mask` holds the method; :class:`DICE` fits the
mean training feature and the weight mask.
"""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import AccumulatingDetector, BaseDetector
from .._tags import DetectorTags
from ._head import HeadMixin, linear_logits
from .logits import energy


def dice_mask(coef, feature_mean, percentile=90.0):
    """DICE weight mask: keep the largest contributions ``mean_j * W[k, j]``.

    ``contrib = feature_mean[None, :] * coef``; the mask is
    ``contrib > percentile(contrib)`` with the percentile over all ``K * D``
    entries (strict ``>``), so it keeps the top ``(100 - percentile)`` %.

    Examples
    --------
    >>> import numpy as np
    >>> dice_mask(np.array([[1.0, -1.0], [2.0, 3.0]]), np.array([1.0, 1.0]), 50)
    array([[False, False],
           [ True,  True]])
    """
    contrib = np.asarray(feature_mean)[None, :] * np.asarray(coef)
    return contrib > np.percentile(contrib, percentile)


class DICE(HeadMixin, AccumulatingDetector):
    """DICE: sparsify the final layer to its largest mean contributions.

    ``contrib = mean_train(h)[None, :] * W``; ``mask_ = contrib >
    percentile(contrib, percentile)`` over all ``K * D`` entries. Score:
    ``logsumexp(h (W * mask_)^T + b)``; higher means more ID.

    The mean is accumulated in float64 by chunks, so ``partial_fit`` on the
    chunks of ``X``, in any order, gives it up to rounding (see
    ``partial_fit``); the mask is recomputed from it after every call. ``y``
    is ignored.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    percentile : float in [0, 100], default=90
        Sparsity: the top ``(100 - percentile)`` % of the weights are kept
        (90 for CIFAR DenseNet, 70 for ImageNet ResNet-50 in the paper).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    feature_mean_ : ndarray of shape (n_features,)
        Mean ID training feature.
    mask_ : ndarray of bool of shape (n_classes, n_features)
        Kept weights.
    coef_, intercept_ : ndarray
        The (unmasked) head as arrays.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    n_samples_seen_ : int
        Number of training rows seen by ``fit`` and the ``partial_fit``
        calls since.
    classes_seen_, statistics_, statistics_params_, reservoir_
        What ``partial_fit`` continues from (as documented in
        :class:`~sklearn_ood._base.AccumulatingDetector`): the sorted class
        labels seen (or ``None``), the accumulated statistics, the parameters
        they depend on, and the reservoir of training rows that sets ``offset_``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    sklearn_ood.detectors.react.ReAct, sklearn_ood.detectors.line.LINe

    References
    ----------
    Sun & Li, "DICE: Leveraging Sparsification for Out-of-Distribution
    Detection", ECCV 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import DICE
    >>> h = np.array([[1.0, 2.0], [3.0, 2.0]])
    >>> head = (np.array([[1.0, 0.5], [-1.0, 3.0]]), np.zeros(2))
    >>> det = DICE(head, percentile=50).fit(h)
    >>> det.mask_
    array([[ True, False],
           [False,  True]])

    The same mean and mask from chunks of rows:

    >>> det = DICE(head, percentile=50).partial_fit(h[:1]).partial_fit(h[1:])
    >>> det.feature_mean_, det.n_samples_seen_
    (array([2., 2.]), 2)
    """

    # Tuning: ``percentile`` from sparse to dense masks (the paper: 90 on CIFAR, 70 on ImageNet).
    _detector_tags = DetectorTags(
        input="features", head="required",
        grid={"percentile": [10, 30, 50, 70, 90]}, paper="Sun & Li, ECCV 2022")

    _scatter = False  # the mean only
    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "percentile": [Interval(Real, 0, 100, closed="both")],
    }

    def __init__(self, head=None, *, percentile=90, contamination=0.05):
        self.head = head
        self.percentile = percentile
        self.contamination = contamination

    def _fit_statistics(self, classes, counts, means, scatter, sample, *, partial):
        self._fit_head(sample)
        self.feature_mean_ = means[0]
        self.mask_ = dice_mask(self.coef_, self.feature_mean_, self.percentile)

    def _score(self, X):
        masked = np.where(self.mask_, self.coef_, 0.0)
        return energy(linear_logits(X, masked, self.intercept_))
