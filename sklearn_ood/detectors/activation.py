"""Activation shaping before the final layer: ReAct, DICE, ASH, LINe.

Every detector here reads the post-GAP penultimate features ``h`` (2-D
``X``), needs the final linear layer (``head=``, ``W`` of shape ``(K, D)``,
``b`` of shape ``(K,)``), modifies the features or the weights, and scores the
modified logits with the energy ``logsumexp(z)`` (``T = 1`` as in every
reference implementation); higher means more in-distribution.

The pure functions (``react_threshold``, ``react_clip``, ``dice_mask``,
``ash``, ``ash_energy``, ``line_shapley``, ``line_masks``, ``line_scores``)
hold the methods; the estimators only fit the few statistics they need.
"""

import warnings
from numbers import Real

import numpy as np
from scipy.special import logsumexp
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import BaseDetector
from ._head import HeadMixin
from .logits import energy

_PERCENTILE = Interval(Real, 0, 100, closed="both")
_FINITE = Interval(Real, None, None, closed="neither")


# --------------------------------------------------------------------------- ReAct
def react_threshold(features, percentile=90.0):
    """ReAct clip value: the ``percentile`` of *all* entries of ``features``.

    The percentile is taken over the flattened ``(N * D)`` entries (not per
    feature), with NumPy's default linear interpolation.

    Examples
    --------
    >>> import numpy as np
    >>> react_threshold(np.array([[0.0, 10.0], [1.0, 20.0]]), 50)
    5.5
    """
    return float(np.percentile(np.asarray(features, dtype=np.float64), percentile))


def react_clip(features, clip):
    """Rectify from above: ``min(features, clip)`` element-wise.

    Examples
    --------
    >>> import numpy as np
    >>> react_clip(np.array([[0.5, 3.0]]), 1.0)
    array([[0.5, 1. ]])
    """
    return np.minimum(features, clip)


# ---------------------------------------------------------------------------- DICE
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


# ----------------------------------------------------------------------------- ASH
def _ash_prune(features, percentile):
    """Keep the ``k = D - round(D * percentile / 100)`` largest entries per row.

    Ties at the cut are broken towards the lower feature index, so exactly
    ``k`` entries are kept. Returns ``(pruned, kept_mask, s1, s2, k)``.
    """
    h = np.asarray(features, dtype=np.float64)
    n = h.shape[1]
    k = n - int(np.round(n * percentile / 100.0))
    kept = np.zeros(h.shape, dtype=bool)
    if k > 0:
        top = np.argsort(-h, axis=1, kind="stable")[:, :k]
        np.put_along_axis(kept, top, True, axis=1)
    pruned = np.where(kept, h, 0.0)
    return pruned, kept, h.sum(axis=1), pruned.sum(axis=1), k


def _ash_log_scale(s1, s2):
    """ASH-S exponent ``s1 / s2``; 0 (no rescaling) where ``s2 == 0``."""
    return np.divide(s1, s2, out=np.zeros_like(s1), where=s2 != 0)


def _scale_nonzero(values, s1, s2):
    """Multiply row i of ``values`` by ``exp(s1[i] / s2[i])``; zeros stay 0.

    ``exp`` may overflow to ``inf``: non-zero entries then become ``+-inf``,
    while zeros are left alone (``0 * inf`` would be NaN).
    """
    with np.errstate(over="ignore"):
        scale = np.exp(_ash_log_scale(s1, s2))[:, None]
        return np.multiply(values, scale, out=np.zeros_like(values), where=values != 0)


def ash(features, variant="s", percentile=90.0):
    """Activation shaping (ASH) of each row of ``features``.

    With ``D`` features, the ``k = D - round(D * percentile / 100)`` largest
    entries of a row are kept (``round`` halves to even, like ``np.round`` in
    the reference code) and the others set to 0. Ties at the cut are broken
    towards the lower feature index, so exactly ``k`` entries are kept.

    - ``"p"`` (prune): kept entries keep their values.
    - ``"b"`` (binarize): kept entries are set to ``s1 / k``, ``s1`` the row
      sum before pruning.
    - ``"s"`` (scale): kept values multiplied by ``exp(s1 / s2)``, ``s2`` the
      row sum after pruning (no rescaling where ``s2 == 0``).

    With ``k = 0`` (``percentile`` near 100) every entry is 0. ASH is meant
    for non-negative (post-ReLU) features. ``exp(s1 / s2)`` may overflow to
    ``inf`` (kept entries then become ``inf``, zeros stay 0); score through
    :func:`ash_energy`, which handles that case.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    variant : {"p", "b", "s"}, default="s"
    percentile : float in [0, 100], default=90

    Returns
    -------
    shaped : ndarray of shape (n_samples, n_features), float64

    Examples
    --------
    >>> import numpy as np
    >>> h = np.array([[1.0, 4.0, 0.0, 2.0, 3.0]])
    >>> ash(h, "p", 60)
    array([[0., 4., 0., 0., 3.]])
    >>> ash(h, "b", 60)
    array([[0., 5., 0., 0., 5.]])
    """
    pruned, kept, s1, s2, k = _ash_prune(features, percentile)
    if variant == "p":
        return pruned
    if variant == "b":
        fill = s1 / k if k > 0 else np.zeros_like(s1)
        return np.where(kept, fill[:, None], 0.0)
    if variant == "s":
        return _scale_nonzero(pruned, s1, s2)
    raise ValueError(f"variant must be 'p', 'b' or 's'; got {variant!r}.")


def ash_energy(features, coef, intercept, variant="s", percentile=90.0):
    """Energy ``logsumexp(ash(h) W^T + b)`` of each row, overflow-safe for ASH-S.

    For ASH-S the logits are ``exp(t) * (pruned W^T) + b`` with
    ``t = s1 / s2``. When ``exp(t)`` or the logits overflow, the score is the
    limit: ``+inf`` if some class gets a positive contribution, otherwise the
    energy of the finite logits (``-inf`` if every contribution is
    negative) -- never NaN.

    Examples
    --------
    >>> import numpy as np
    >>> W, b = np.eye(2), np.zeros(2)
    >>> ash_energy(np.array([[2.0, 0.0]]), W, b, "p", 50).round(4)
    array([2.1269])
    """
    if variant != "s":
        return energy(ash(features, variant, percentile) @ coef.T + intercept)
    pruned, _, s1, s2, _ = _ash_prune(features, percentile)
    logits = _scale_nonzero(pruned @ coef.T, s1, s2) + intercept
    with np.errstate(divide="ignore", invalid="ignore"):
        return logsumexp(logits, axis=1)


# ---------------------------------------------------------------------------- LINe
def line_shapley(features, labels, coef):
    """LINe's Shapley approximation ``Phi[c] = W[c] * mean(h | label = c)``.

    ``phi(x) = h(x) * W[y]`` is the exact first-order Taylor contribution of
    each neuron to the logit of label ``y``; ``Phi`` averages it per class.
    A class without any sample uses the mean of all features instead.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        Unclipped training features.
    labels : ndarray of int of shape (n_samples,)
        Class indices in ``[0, K)`` (rows of ``coef``).
    coef : ndarray of shape (K, n_features)

    Returns
    -------
    shapley : ndarray of shape (K, n_features)

    Examples
    --------
    >>> import numpy as np
    >>> h = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    >>> line_shapley(h, np.array([0, 0, 1]), np.array([[1.0, -1.0], [2.0, 2.0]]))
    array([[ 2., -3.],
           [10.,  0.]])
    """
    h = np.asarray(features, dtype=np.float64)
    n_classes = coef.shape[0]
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    sums = np.zeros((n_classes, h.shape[1]))
    np.add.at(sums, labels, h)
    means = np.where(
        counts[:, None] > 0,
        sums / np.maximum(counts, 1.0)[:, None],
        h.mean(axis=0)[None, :],
    )
    return coef * means


def line_masks(shapley, coef, p_a=90.0, p_w=90.0):
    """LINe activation masks and weight-mask thresholds of each class.

    - activation mask of class ``c``: ``Phi[c] > percentile(Phi[c], p_a)``
      (signed ``Phi``, percentile over the row);
    - weight mask of class ``c``: ``S_c > t_c`` with
      ``S_c = |Phi[c]|[None, :] * W`` (``K x D``, signed ``W``) and
      ``t_c = percentile(S_c, p_w)`` over all ``K * D`` entries.

    Only the ``K`` thresholds are returned; the ``K x K x D`` masks are never
    built (see :func:`line_scores`).

    Returns
    -------
    activation_masks : ndarray of bool of shape (K, D)
    weight_thresholds : ndarray of shape (K,)

    Examples
    --------
    >>> import numpy as np
    >>> phi = np.array([[1.0, 3.0], [-2.0, 0.5]])
    >>> masks, t = line_masks(phi, np.array([[1.0, 2.0], [0.0, -1.0]]), 50, 50)
    >>> masks
    array([[False,  True],
           [False,  True]])
    >>> t
    array([0.5, 0.5])
    """
    activation_masks = shapley > np.percentile(shapley, p_a, axis=1, keepdims=True)
    magnitude = np.abs(shapley)
    weight_thresholds = np.array(
        [np.percentile(magnitude[c][None, :] * coef, p_w) for c in range(len(coef))]
    )
    return activation_masks, weight_thresholds


def line_scores(features, coef, intercept, shapley, activation_masks,
                weight_thresholds, clip=None):
    """LINe score: energy of the masked logits of the predicted class.

    ``hc = min(h, clip)``; ``yhat = argmax(hc W^T + b)`` (unmasked weights);
    ``z' = (hc * m_yhat) (W * M_yhat)^T + b`` with
    ``M_c = |Phi[c]|[None, :] * W > t_c``; score ``logsumexp(z')``. Rows are
    scored group by group of predicted class, with one ``K x D`` weight mask
    at a time.

    Examples
    --------
    >>> import numpy as np
    >>> W, b = np.array([[1.0, 2.0], [0.0, -1.0]]), np.zeros(2)
    >>> phi = np.array([[1.0, 3.0], [-2.0, 0.5]])
    >>> masks, t = line_masks(phi, W, 50, 50)
    >>> line_scores(np.array([[1.0, 1.0]]), W, b, phi, masks, t).round(4)
    array([2.1269])
    """
    h = np.asarray(features, dtype=np.float64)
    if clip is not None:
        h = np.minimum(h, clip)
    predicted = np.argmax(h @ coef.T + intercept, axis=1)
    scores = np.empty(h.shape[0])
    magnitude = np.abs(shapley)
    for c in np.unique(predicted):
        rows = predicted == c
        masked_coef = np.where(magnitude[c][None, :] * coef > weight_thresholds[c], coef, 0.0)
        logits = (h[rows] * activation_masks[c]) @ masked_coef.T + intercept
        scores[rows] = energy(logits)
    return scores


# ---------------------------------------------------------------------- estimators
class _ActivationDetector(HeadMixin, BaseDetector):
    head_required = True
    _parameter_constraints = {**BaseDetector._parameter_constraints, "head": "no_validation"}


class ReAct(_ActivationDetector):
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
    n_features_in_ : int

    See Also
    --------
    DICE, ASH, LINe

    References
    ----------
    Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified
    Activations", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.activation import ReAct
    >>> h = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    >>> head = (np.eye(2), np.zeros(2))
    >>> det = ReAct(head, percentile=50).fit(h)
    >>> det.clip_
    2.5
    >>> det.score_samples(np.array([[10.0, 0.0]])).round(4)
    array([2.5789])
    """

    _parameter_constraints = {
        **_ActivationDetector._parameter_constraints,
        "percentile": [_PERCENTILE],
        "clip": [_FINITE, None],
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
        return energy(self._logits(react_clip(np.asarray(X, dtype=np.float64), self.clip_)))


class DICE(_ActivationDetector):
    """DICE: sparsify the final layer to its largest mean contributions.

    ``contrib = mean_train(h)[None, :] * W``; ``mask_ = contrib >
    percentile(contrib, percentile)`` over all ``K * D`` entries. Score:
    ``logsumexp(h (W * mask_)^T + b)``; higher means more ID.

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
    n_features_in_ : int

    See Also
    --------
    ReAct, LINe

    References
    ----------
    Sun & Li, "DICE: Leveraging Sparsification for Out-of-Distribution
    Detection", ECCV 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.activation import DICE
    >>> h = np.array([[1.0, 2.0], [3.0, 2.0]])
    >>> head = (np.array([[1.0, 0.5], [-1.0, 3.0]]), np.zeros(2))
    >>> det = DICE(head, percentile=50).fit(h)
    >>> det.mask_
    array([[ True, False],
           [False,  True]])
    """

    _parameter_constraints = {
        **_ActivationDetector._parameter_constraints,
        "percentile": [_PERCENTILE],
    }

    def __init__(self, head=None, *, percentile=90, contamination=0.05):
        self.head = head
        self.percentile = percentile
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)
        self.feature_mean_ = np.asarray(X, dtype=np.float64).mean(axis=0)
        self.mask_ = dice_mask(self.coef_, self.feature_mean_, self.percentile)

    def _score(self, X):
        masked = np.where(self.mask_, self.coef_, 0.0)
        return energy(np.asarray(X, dtype=np.float64) @ masked.T + self.intercept_)


class ASH(_ActivationDetector):
    """ASH: prune each feature vector to its largest entries, then energy.

    Applied to the pooled penultimate feature (as in the official ResNet and
    DenseNet code); see :func:`ash` for the variants ``"p"``, ``"b"``, ``"s"``
    and the tie rule. Nothing is fitted besides the head and ``offset_``. Meant
    for non-negative (post-ReLU) features. ASH-S scores can be ``+inf`` or
    ``-inf`` when ``exp(s1 / s2)`` overflows (see :func:`ash_energy`); never NaN.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    variant : {"s", "p", "b"}, default="s"
        Scale, prune or binarize.
    percentile : float in [0, 100], default=90
        Percentage of the entries of each row set to 0 (ResNet-50 ImageNet:
        ASH-S at 90; DenseNet CIFAR: ASH-S at 95).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray
    offset_ : float
    n_features_in_ : int

    See Also
    --------
    ReAct, DICE

    References
    ----------
    Djurisic, Bozanic, Ashok & Liu, "Extremely Simple Activation Shaping for
    Out-of-Distribution Detection", ICLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.activation import ASH
    >>> h = np.array([[1.0, 4.0, 0.0, 3.0], [2.0, 2.0, 2.0, 2.0]])
    >>> det = ASH((np.eye(4), np.zeros(4)), variant="p", percentile=50).fit(h)
    >>> det.score_samples(h).round(4)
    array([4.3397, 2.8201])
    """

    _parameter_constraints = {
        **_ActivationDetector._parameter_constraints,
        "variant": [StrOptions({"p", "b", "s"})],
        "percentile": [_PERCENTILE],
    }

    def __init__(self, head=None, *, variant="s", percentile=90, contamination=0.05):
        self.head = head
        self.variant = variant
        self.percentile = percentile
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)

    def _score(self, X):
        return ash_energy(X, self.coef_, self.intercept_, self.variant, self.percentile)


class LINe(_ActivationDetector):
    """LINe: energy with class-specific masks of important neurons and weights.

    Fit (on unclipped ID training features ``h`` with labels ``y``):
    ``Phi[c] = W[c] * mean(h | y = c)`` (Shapley approximation), activation
    masks ``m_c = Phi[c] > percentile(Phi[c], p_a)`` and weight masks
    ``M_c = |Phi[c]|[None, :] * W > percentile(., p_w)`` (over all ``K * D``
    entries, signed ``W``). Score: ``hc = min(h, clip_)``,
    ``yhat = argmax(hc W^T + b)``, ``logsumexp((hc * m_yhat) (W * M_yhat)^T + b)``;
    higher means more ID. See :func:`line_scores`.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    clip : float or None, default=1.0
        Absolute upper clip of the features at score time (``None``: no
        clipping). Reference values: 1.0 (CIFAR DenseNet), 0.8 (ImageNet
        ResNet-50); they depend on the feature scale of the model.
    p_w : float in [0, 100], default=90
        Percentage of the weights dropped per class (CIFAR 90, ImageNet 10).
    p_a : float in [0, 100], default=90
        Percentage of the neurons dropped per class (CIFAR-10 90, CIFAR-100
        10, ImageNet 10).
    clip_percentile : float in [0, 100] or None, default=None
        When set, overrides ``clip`` with this percentile of all entries of
        the ID training features (as ReAct), convenient for models whose
        feature scale differs from the reference ones.
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    shapley_ : ndarray of shape (n_classes, n_features)
        ``Phi``.
    activation_masks_ : ndarray of bool of shape (n_classes, n_features)
    weight_thresholds_ : ndarray of shape (n_classes,)
        ``t_c``: weight ``W[k, j]`` is kept for class ``c`` iff
        ``|Phi[c, j]| * W[k, j] > t_c``.
    clip_ : float or None
    coef_, intercept_ : ndarray
    offset_ : float
    n_features_in_ : int

    Notes
    -----
    ``y`` must hold the class indices ``0 .. K-1`` of the head's rows. Without
    ``y``, the predicted labels ``argmax(h W^T + b)`` of the (unclipped)
    training features are used instead. A class with no training sample gets
    ``Phi[c] = W[c] * mean(h)`` (the mean over all training rows), with a
    warning when labels were given.

    See Also
    --------
    DICE, ReAct

    References
    ----------
    Ahn, Park & Kim, "LINe: Out-of-Distribution Detection by Leveraging
    Important Neurons", CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.detectors.activation import LINe
    >>> h = np.array([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]])
    >>> head = (np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]), np.zeros(2))
    >>> det = LINe(head, clip=None, p_w=50, p_a=50).fit(h, [0, 1])
    >>> det.activation_masks_
    array([[ True, False, False],
           [False,  True, False]])
    >>> det.score_samples(h).round(4)
    array([2.1269, 2.1269])
    """

    _parameter_constraints = {
        **_ActivationDetector._parameter_constraints,
        "clip": [_FINITE, None],
        "p_w": [_PERCENTILE],
        "p_a": [_PERCENTILE],
        "clip_percentile": [_PERCENTILE, None],
    }

    def __init__(self, head=None, *, clip=1.0, p_w=90, p_a=90, clip_percentile=None,
                 contamination=0.05):
        self.head = head
        self.clip = clip
        self.p_w = p_w
        self.p_a = p_a
        self.clip_percentile = clip_percentile
        self.contamination = contamination

    def _fit(self, X, y):
        self._fit_head(X)
        X = np.asarray(X, dtype=np.float64)
        n_classes = self.coef_.shape[0]
        if y is None:
            labels = np.argmax(self._logits(X), axis=1)
        else:
            labels = _check_class_indices(y, n_classes)
            missing = np.setdiff1d(np.arange(n_classes), labels)
            if missing.size:
                warnings.warn(
                    f"LINe: no training sample for class(es) {missing.tolist()} of the "
                    f"{n_classes}-class head; their Shapley values use the mean of all "
                    "training features.",
                    UserWarning,
                    stacklevel=3,
                )
        self.shapley_ = line_shapley(X, labels, self.coef_)
        self.activation_masks_, self.weight_thresholds_ = line_masks(
            self.shapley_, self.coef_, self.p_a, self.p_w
        )
        if self.clip_percentile is not None:
            self.clip_ = react_threshold(X, self.clip_percentile)
        else:
            self.clip_ = None if self.clip is None else float(self.clip)

    def _score(self, X):
        return line_scores(
            X, self.coef_, self.intercept_, self.shapley_, self.activation_masks_,
            self.weight_thresholds_, self.clip_,
        )


def _check_class_indices(y, n_classes):
    """Return ``y`` as int class indices in ``[0, n_classes)`` or raise."""
    y = np.asarray(y)
    valid = np.issubdtype(y.dtype, np.number) or y.dtype == bool
    as_int = y.astype(np.int64) if valid else None
    if not valid or not np.array_equal(as_int, y):
        raise ValueError(
            "Unknown label type: LINe needs y as integer class indices 0..K-1 matching "
            f"the rows of the head; got labels of dtype {y.dtype} (e.g. "
            f"{y[:3].tolist()}). Encode them with the model's class order, or pass "
            "y=None to use predicted labels."
        )
    if as_int.min() < 0 or as_int.max() >= n_classes:
        raise ValueError(
            f"LINe: y holds class indices in [{as_int.min()}, {as_int.max()}] but the "
            f"head has {n_classes} classes (indices 0..{n_classes - 1}). Pass labels "
            "that index the head's rows, or y=None to use predicted labels."
        )
    return as_int
