"""ASH: prune each feature vector to its largest entries (and rescale), then energy.

Djurisic, Bozanic, Ashok & Liu, "Extremely Simple Activation Shaping for
Out-of-Distribution Detection", ICLR 2023, https://arxiv.org/abs/2209.09858.

It reads the post-GAP penultimate features ``h`` (2-D ``X``), needs the final
linear layer (``head=``, ``W`` of shape ``(K, D)``, ``b`` of shape ``(K,)``)
and scores the logits of the shaped features with the energy ``logsumexp(z)``
(``T = 1`` as in every reference implementation); higher means more
in-distribution.

The pure functions :func:`ash` and :func:`ash_energy` hold the method;
:class:`ASH` fits nothing but the head and the threshold.
"""

from numbers import Real

import numpy as np
from scipy.special import logsumexp
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import BaseDetector
from .._tags import DetectorTags
from ._head import HeadMixin, linear_logits
from .logits import energy


def _ash_prune(features, percentile):
    """Keep the ``k = D - round(D * percentile / 100)`` largest entries per row.

    Ties at the cut are broken towards the lower feature index, so exactly
    ``k`` entries are kept. Returns ``(pruned, kept_mask, s1, s2, k)``:
    ``pruned`` is float32 for float32 features (else float64), the sums float64.
    """
    h = np.asarray(features)
    h = h if h.dtype == np.float32 else h.astype(np.float64, copy=False)
    n = h.shape[1]
    k = n - int(np.round(n * percentile / 100.0))
    kept = np.zeros(h.shape, dtype=bool)
    if k > 0:
        # Linear time, no sort: keep what exceeds the k-th largest value t of the
        # row, then the entries equal to t from the lowest index until k are kept.
        t = np.partition(h, n - k, axis=1)[:, n - k, None]
        kept = h > t
        tied = h == t
        kept |= tied & (np.cumsum(tied, axis=1, dtype=np.int32)
                        <= k - kept.sum(axis=1, keepdims=True))
    pruned = np.where(kept, h, 0.0)
    s1, s2 = h.sum(axis=1, dtype=np.float64), pruned.sum(axis=1, dtype=np.float64)
    return pruned, kept, s1, s2, k


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
    shaped : ndarray of shape (n_samples, n_features)
        Float32 for float32 ``features``, else float64.

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
        return np.where(kept, fill[:, None].astype(pruned.dtype), 0.0)
    if variant == "s":
        return _scale_nonzero(pruned, s1, s2)
    raise ValueError(f"variant must be 'p', 'b' or 's'; got {variant!r}.")


def ash_energy(features, coef, intercept, variant="s", percentile=90.0):
    """Energy ``logsumexp(ash(h) W^T + b)`` of each row, overflow-safe for ASH-S.

    For ASH-S the logits are ``exp(t) * (pruned W^T) + b`` with
    ``t = s1 / s2``. When ``exp(t)`` or the logits overflow, the score is the
    limit: ``+inf`` if some class gets a positive contribution, otherwise the
    energy of the finite logits (``-inf`` if every contribution is
    negative) -- never NaN. Float32 features are scored in float32
    (:func:`~sklearn_ood.detectors._head.linear_logits`), except that ASH-S
    scales and scores its logits in float64 (the overflow rule above).

    Examples
    --------
    >>> import numpy as np
    >>> W, b = np.eye(2), np.zeros(2)
    >>> ash_energy(np.array([[2.0, 0.0]]), W, b, "p", 50).round(4)
    array([2.1269])
    """
    if variant != "s":
        return energy(linear_logits(ash(features, variant, percentile), coef, intercept))
    pruned, _, s1, s2, _ = _ash_prune(features, percentile)
    product = linear_logits(pruned, coef, 0.0).astype(np.float64, copy=False)
    logits = _scale_nonzero(product, s1, s2) + intercept
    with np.errstate(divide="ignore", invalid="ignore"):
        return logsumexp(logits, axis=1)


class ASH(HeadMixin, BaseDetector):
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
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    sklearn_ood.detectors.react.ReAct, sklearn_ood.detectors.dice.DICE

    References
    ----------
    Djurisic, Bozanic, Ashok & Liu, "Extremely Simple Activation Shaping for
    Out-of-Distribution Detection", ICLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import ASH
    >>> h = np.array([[1.0, 4.0, 0.0, 3.0], [2.0, 2.0, 2.0, 2.0]])
    >>> det = ASH((np.eye(4), np.zeros(4)), variant="p", percentile=50).fit(h)
    >>> det.score_samples(h).round(4)
    array([4.3397, 2.8201])
    """

    # Tuning: ``percentile`` up to the paper's 90 (ResNet-50) and 95 (DenseNet).
    _detector_tags = DetectorTags(
        input="features", head="required",
        grid={"percentile": [50, 65, 80, 90, 95]}, paper="Djurisic et al., ICLR 2023")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "variant": [StrOptions({"p", "b", "s"})],
        "percentile": [Interval(Real, 0, 100, closed="both")],
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
