"""Norm-based scores: FeatureNorm, NAN (negative-aware norm), NAP.

Each method is a pure scoring function (:func:`feature_norm`,
:func:`negative_aware_norm`, :func:`nap_score`, :func:`nap_combine`) wrapped
by a thin estimator (:class:`FeatureNorm`, :class:`NegativeAwareNorm`,
:class:`NAP`). None of them fits statistics of the data: ``fit`` only checks
the input (and the head of ``NAP``) and sets the threshold ``offset_``.
"""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from ._head import HeadMixin
from .logits import energy

#: Floor of the base score before the fractional power in :func:`nap_combine`.
TINY = np.finfo(np.float64).tiny


def _as_maps(X, name="maps"):
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(
            f"{name} must be (n_samples, channels[, height, width]); got shape {X.shape}."
        )
    return X.reshape(X.shape[0], X.shape[1], -1)


def feature_norm(maps):
    """FeatureNorm of each sample: mean over channels of ``||ReLU(map_c)||_2``.

    ``maps`` has shape ``(n, C, H, W)`` (any number of spatial dimensions,
    flattened per channel). 2-D input ``(n, C)`` is read as ``H = W = 1``, so
    each channel's norm is ``ReLU(x_c)``: this is what makes the output of
    ``BlockFeatureExtractor(..., reduce="norm")`` (the per-channel norms)
    give the same score as the maps themselves.

    Parameters
    ----------
    maps : array-like of shape (n_samples, C, ...) or (n_samples, C)

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> maps = np.array([[[[3.0, -1.0], [0.0, 4.0]], [[-2.0, 0.0], [0.0, 0.0]]]])
    >>> feature_norm(maps)  # channel norms 5 and 0
    array([2.5])
    >>> feature_norm(np.array([[5.0, -3.0]]))  # already per-channel values
    array([2.5])
    """
    flat = np.maximum(_as_maps(maps), 0)  # a new array: safe to divide in place
    flat = flat.astype(np.promote_types(flat.dtype, np.float32), copy=False)
    # Scale each channel by its maximum so that the squares cannot overflow
    # (an all-zero channel, peak 0, stays zero).
    peak = flat.max(axis=2, keepdims=True)
    np.divide(flat, peak, out=flat, where=peak > 0)
    norms = peak[..., 0] * np.sqrt(np.square(flat).sum(axis=2, dtype=np.float64))
    return norms.mean(axis=1)


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


class FeatureNorm(BaseDetector):
    """FeatureNorm of a block's feature maps (Yu et al., CVPR 2023).

    Score: ``mean_c ||ReLU(F_c)||_2`` -- the mean over channels of the
    per-channel spatial L2 norm of the rectified block output ``F``
    (``(N, C, H, W)``). Not the Frobenius norm of ``F`` and not the norm of
    the pooled vector. Higher means more in-distribution, as in the paper.
    Nothing is fitted but the threshold; to choose the block from data, see
    :class:`~sklearn_ood.block_selection.BlockSelection`.

    2-D input ``(N, C)`` is read as maps with ``H = W = 1``: the score is
    ``mean_c ReLU(x_c)``. This makes the per-batch path exact:
    ``BlockFeatureExtractor(net, block, reduce="norm")`` outputs the
    per-channel norms ``||ReLU(F_c)||_2``, computed batch by batch, and

        ``make_pipeline(BlockFeatureExtractor(net, "layer3", reduce="norm"), FeatureNorm())``

    gives the same scores as ``FeatureNorm`` on the full ``layer3`` maps
    without ever holding the maps. This is the recommended way to use it.

    Parameters
    ----------
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Channels ``C``.
    input_ndim_ : int
        2 or 4, the input dimensionality seen in ``fit`` (enforced later).

    See Also
    --------
    feature_norm : the scoring function.
    sklearn_ood.block_selection.BlockSelection : FeatureNorm with the block
        chosen by the jigsaw NormRatio.

    References
    ----------
    Yu, Shin, Lee, Jun & Lee, "Block Selection Method for Using Feature Norm
    in Out-of-distribution Detection", CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.norms import FeatureNorm
    >>> maps = np.array([[[[3.0, -1.0], [0.0, 4.0]], [[-2.0, 0.0], [0.0, 0.0]]]])
    >>> FeatureNorm().fit(maps).score_samples(maps)
    array([2.5])
    >>> norms = np.array([[5.0, 0.0]])  # what reduce="norm" yields for these maps
    >>> FeatureNorm().fit(norms).score_samples(norms)
    array([2.5])
    """

    _allow_nd = True

    def __init__(self, *, contamination=0.05):
        self.contamination = contamination

    def _fit(self, X, y):
        pass

    def _score(self, X):
        return feature_norm(X)


class NegativeAwareNorm(BaseDetector):
    """Negative-aware norm (NAN, Park et al., ICCV 2023): ``||a||_1 / ||a||_0``.

    ``||a||_1 = sum_i |a_i|`` and ``||a||_0`` is the number of strictly
    positive entries; a row without positive entry scores 0. Higher means
    more in-distribution, as in the paper. No statistics are fitted.

    Input: 4-D maps ``(N, C, H, W)`` are flattened per sample -- the
    recommended input is the last block's post-ReLU map before pooling
    (METHODS.md §1.2: on pooled features almost no unit is exactly 0 and NAN
    degrades to an L1 norm). 2-D input is used as given.
    ``BlockFeatureExtractor(net, "layer4", reduce="nan")`` followed by
    ``NegativeAwareNorm()`` gives the same scores as the 4-D maps while
    keeping one number per image (``reduce="flatten"`` does too, holding the
    whole maps).

    Parameters
    ----------
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

    See Also
    --------
    negative_aware_norm : the scoring function.

    References
    ----------
    Park, Chai, Yoon, Teoh, "Understanding the Feature Norm for
    Out-of-Distribution Detection", ICCV 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.norms import NegativeAwareNorm
    >>> a = np.array([[2.0, 0.0, 4.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    >>> NegativeAwareNorm().fit(a).score_samples(a)
    array([3.5, 1. ])
    """

    _allow_nd = True

    def __init__(self, *, contamination=0.05):
        self.contamination = contamination

    def _fit(self, X, y):
        pass

    def _score(self, X):
        return negative_aware_norm(X)


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

    See Also
    --------
    nap_score, nap_combine : the scoring functions.
    sklearn_ood.detectors.logits.Energy : the base detector of NAP-E.

    References
    ----------
    Wan, Zhang, Zhou, Yi & Jin, "Neural Activation Prior for
    Out-of-Distribution Detection", arXiv:2402.18162.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.norms import NAP
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

    _allow_nd = True
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
