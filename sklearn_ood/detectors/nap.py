"""Neural Activation Prior (NAP): the within-channel peak-to-mean ratio before pooling.

Wan, Zhang, Zhou, Yi & Jin, "Out-of-Distribution Detection using Neural
Activation Prior", arXiv preprint 2024, https://arxiv.org/abs/2402.18162.

The pure functions :func:`nap_score` (the prior, paper Sec. 3) and
:func:`nap_combine` (its weighted geometric mean with a base score, NAP-E)
hold the method; :class:`NAP` fits nothing but the head and the threshold.
"""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from ._head import HeadMixin
from .logits import energy

#: Floor of the base score before the fractional power in :func:`nap_combine`.
TINY = np.finfo(np.float64).tiny


def nap_score(channel_max, channel_mean, eps=1.0):
    """Neural Activation Prior: ``mean_c (max_c / (mean_c + eps))**2``.

    ``channel_max`` and ``channel_mean`` are the spatial maximum and mean of
    each channel of the post-ReLU map before global pooling (Wan et al.,
    2024, Sec. 3). The values are used as they are (no ReLU; a channel with
    a negative maximum contributes its square like any other). Guard: a
    negative channel mean (possible only for maps that are not post-ReLU) is
    read as 0 in the denominator, i.e. the denominator is
    ``max(mean_c, 0) + eps`` and never vanishes for ``eps > 0``; for
    non-negative maps this is exactly the paper's formula.

    Parameters
    ----------
    channel_max, channel_mean : array-like of shape (n_samples, C)
    eps : float, default=1.0
        Positive constant added to the mean (1.0 in the paper).

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> nap_score(np.array([[4.0, 2.0]]), np.array([[1.0, 0.0]]))  # (2**2 + 2**2) / 2
    array([4.])
    """
    channel_max = np.asarray(channel_max, dtype=np.float64)
    denominator = np.maximum(np.asarray(channel_mean, dtype=np.float64), 0) + eps
    return np.mean((channel_max / denominator) ** 2, axis=1)


def nap_combine(base_score, nap, weight):
    """Weighted geometric combination ``base**weight * nap**(1 - weight)``.

    ``base_score`` is the score of the base detector (``-E``, the negative
    energy, for NAP-E). A fractional power of a non-positive number is
    undefined, so ``base_score`` is floored at the smallest positive float64
    (:data:`TINY`) first: rows with ``base_score <= 0`` (for energy: every
    logit ``<= 0``, very OOD-like) get about ``1e-308**weight * nap**(1-weight)``,
    below every row with a positive base score, ordered among themselves by
    NAP. The ranking of the other rows is untouched.

    Parameters
    ----------
    base_score, nap : array-like of shape (n_samples,)
    weight : float in [0, 1]
        Weight ``w`` of the base score.

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> nap_combine(np.array([4.0, -1.0]), np.array([9.0, 9.0]), 0.5)
    array([6.00000000e+000, 4.47500444e-154])
    """
    base = np.maximum(np.asarray(base_score, dtype=np.float64), TINY)
    nap = np.asarray(nap, dtype=np.float64)
    return base**weight * nap ** (1.0 - weight)


class NAP(HeadMixin, BaseDetector):
    """Neural Activation Prior (Wan et al., 2024), alone or combined with energy.

    NAP score of a map ``A`` ``(C, H, W)``, the post-ReLU activation just
    before global pooling (ResNet: ``layer4``)::

        S_NAP = mean_c ( max_hw A_c / (mean_hw A_c + eps) )**2

    Higher means more in-distribution, as in the paper. The maps are NOT
    rectified here (the paper's ``A`` is post-ReLU already); if they may be
    negative, a negative channel mean counts as 0 in the denominator (see
    :func:`nap_score`).

    Inputs:

    - 4-D maps ``(N, C, H, W)``;
    - or 2-D ``[max_1 .. max_C, mean_1 .. mean_C]`` of width ``2C``: exactly
      the output of ``BlockFeatureExtractor(net, "layer4", reduce=["max",
      "avg"])``, computed batch by batch -- the per-batch path, which gives
      the same scores as the 4-D maps without holding them. An odd width is
      an error.

    NAP-E (``head`` and ``weight`` given): the weighted geometric mean with
    the negative energy of the logits, ``(-E)**w * S_NAP**(1 - w)`` with
    ``-E = logsumexp(h W^T + b)`` and ``h`` the pooled feature -- the mean
    half of the 2-D input, or the spatial mean of the 4-D maps -- so the head
    must take ``C`` features. ``-E <= 0`` is floored at the smallest positive
    float64 (see :func:`nap_combine`). The head must consume ``h`` as it is:
    with a network that transforms ``h`` before its last layer (e.g. an L2
    normalisation), compute the energy combination yourself. ``weight`` per
    base detector and ID dataset as chosen in the paper (appendix table
    "tab:w", found by a search on corrupted ID data)::

        base     CIFAR-10  CIFAR-100  ImageNet-1k
        ASH      0.5       0.6        0.8
        DICE     0.5       0.6        0.6
        Energy   0.4       0.4        0.6
        KNN      0.8       0.8        0.6
        MSP      0.5       0.3        0.3
        ReAct    0.4       0.5        0.8

    so ``NAP(head=net.fc, weight=0.4)`` is the paper's NAP-E for CIFAR.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept), default=None
        The final linear layer, taking the ``C`` pooled features. Used only
        when ``weight`` is given (it is still checked otherwise).
    eps : float, default=1.0
        Positive constant added to the channel mean (1.0 in the paper).
    weight : float in [0, 1] or None, default=None
        Weight ``w`` of the negative energy in the geometric combination.
        ``None`` gives plain NAP. ``0`` is plain NAP too, ``1`` plain energy
        (floored). Setting it without ``head`` is an error.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray or None
        The head as arrays, ``None`` without head.
    n_channels_ : int
        Channels ``C``.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        ``2C`` for 2-D input, ``C`` for 4-D maps.
    input_ndim_ : int
        2 or 4.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    nap_score, nap_combine : the scoring functions.
    sklearn_ood.detectors.logits.Energy : the base detector of NAP-E.

    References
    ----------
    Wan, Zhang, Zhou, Yi & Jin, "Out-of-Distribution Detection using Neural
    Activation Prior", arXiv:2402.18162, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import NAP
    >>> maps = np.array([[[[0.0, 4.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]])
    >>> NAP().fit(maps).score_samples(maps)  # ((4/2)**2 + (1/2)**2) / 2
    array([2.125])
    >>> max_mean = np.array([[4.0, 1.0, 1.0, 1.0]])  # [max | mean] per channel
    >>> NAP().fit(max_mean).score_samples(max_mean)
    array([2.125])
    >>> head = (np.zeros((2, 2)), np.zeros(2))  # logits 0, -E = log 2
    >>> NAP(head=head, weight=0.4).fit(maps).score_samples(maps).round(4)
    array([1.3575])
    """

    # Tuning: ``weight`` of the energy (NAP-E only: fit rejects a weight without a head),
    # spanning the paper's choices (0.4 on CIFAR, 0.6 on ImageNet-1k).
    _detector_tags = DetectorTags(
        input="max_avg", ndim=(2, 4), head="optional",
        grid={"weight": [0.2, 0.4, 0.6, 0.8]}, paper="Wan et al., arXiv 2402.18162")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "eps": [Interval(Real, 0, None, closed="neither")],
        "weight": [Interval(Real, 0, 1, closed="both"), None],
    }

    def __init__(self, head=None, *, eps=1.0, weight=None, contamination=0.05):
        self.head = head
        self.eps = eps
        self.weight = weight
        self.contamination = contamination

    def _fit(self, X, y):
        if X.ndim == 2 and X.shape[1] % 2:
            raise ValueError(
                f"NAP expects 2-D input [max_1..max_C, mean_1..mean_C] of even width "
                f"2C (e.g. BlockFeatureExtractor(net, block, reduce=['max', 'avg'])) "
                f"or 4-D maps (N, C, H, W); got {X.shape[1]} feature(s)."
            )
        if self.weight is not None and self.head is None:
            raise ValueError(
                "weight combines NAP with the energy of the head's logits (NAP-E); "
                "pass head=model.fc (or (coef, intercept)), or weight=None for plain NAP."
            )
        self.n_channels_ = X.shape[1] if X.ndim == 4 else X.shape[1] // 2
        self._fit_head(np.empty((0, self.n_channels_)))

    def _max_mean(self, X):
        if X.ndim == 2:
            return X[:, : self.n_channels_], X[:, self.n_channels_ :]
        flat = X.reshape(X.shape[0], X.shape[1], -1)
        return flat.max(axis=2), flat.mean(axis=2, dtype=np.float64)

    def _score(self, X):
        channel_max, channel_mean = self._max_mean(X)
        scores = nap_score(channel_max, channel_mean, self.eps)
        if self.weight is None or self.coef_ is None:
            return scores
        neg_energy = energy(self._logits(np.asarray(channel_mean, dtype=np.float64)))
        return nap_combine(neg_energy, scores, self.weight)
