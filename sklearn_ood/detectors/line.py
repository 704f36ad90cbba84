"""LINe: energy with class-specific masks of important neurons and weights.

Ahn, Park & Kim, "LINe: Out-of-Distribution Detection by Leveraging
Important Neurons", CVPR 2023, https://arxiv.org/abs/2303.13995.

It reads the post-GAP penultimate features ``h`` (2-D ``X``), needs the final
linear layer (``head=``, ``W`` of shape ``(K, D)``, ``b`` of shape ``(K,)``)
and scores the logits of the masked features and weights with the energy
``logsumexp(z)`` (``T = 1`` as in every reference implementation); higher means
more in-distribution.

The pure functions :func:`line_shapley`, :func:`line_masks` and
:func:`line_scores` hold the method; :class:`LINe` fits the Shapley values,
the masks and the clip value (ReAct's :func:`~.react.react_threshold` when
``clip_percentile`` is set).
"""

import warnings
from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import AccumulatingDetector, BaseDetector
from .._tags import DetectorTags
from .._moments import class_moments
from ._features import row_chunks
from ._head import HeadMixin
from .logits import energy
from .react import react_threshold


def line_shapley(features, labels, coef):
    """LINe's Shapley approximation ``Phi[c] = W[c] * mean(h | label = c)``.

    ``phi(x) = h(x) * W[y]`` is the exact first-order Taylor contribution of
    each neuron to the logit of label ``y``; ``Phi`` averages it per class.
    A class without any sample uses the mean of all features instead.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        Unclipped training features, read by chunks of rows, each cast to
        float64 (no float64 copy of all of them).
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
    counts, means, _ = class_moments(np.asarray(features), np.asarray(labels), coef.shape[0],
                                     scatter=False)
    return _shapley_from_means(coef, counts, means)


def _shapley_from_means(coef, counts, means):
    """``W[c] * mean_c``, the mean of all rows for a class without any."""
    overall = counts @ means / counts.sum()
    return coef * np.where(counts[:, None] > 0, means, overall)


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


class LINe(HeadMixin, AccumulatingDetector):
    """LINe: energy with class-specific masks of important neurons and weights.

    Fit (on unclipped ID training features ``h`` with labels ``y``):
    ``Phi[c] = W[c] * mean(h | y = c)`` (Shapley approximation), activation
    masks ``m_c = Phi[c] > percentile(Phi[c], p_a)`` and weight masks
    ``M_c = |Phi[c]|[None, :] * W > percentile(., p_w)`` (over all ``K * D``
    entries, signed ``W``). Score: ``hc = min(h, clip_)``,
    ``yhat = argmax(hc W^T + b)``, ``logsumexp((hc * m_yhat) (W * M_yhat)^T + b)``;
    higher means more ID. See :func:`line_scores`.

    The class means are accumulated in float64 by chunks, so ``partial_fit``
    on the chunks of ``X``, in any order, gives them up to rounding, and the
    masks are recomputed from them after every call (see ``partial_fit``).
    The head must not change between calls (without ``y`` the classes are
    its predictions). ``partial_fit`` refuses ``clip_percentile``: an exact
    percentile of all training entries does not add up over calls (an
    absolute ``clip``, the paper's, needs no statistic).

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
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    n_samples_seen_ : int
        Number of in-distribution training rows seen by ``fit`` and the
        ``partial_fit`` calls since.
    classes_seen_, statistics_, statistics_params_, reservoir_
        What ``partial_fit`` continues from (as documented in
        :class:`~sklearn_ood._base.AccumulatingDetector`): the sorted class
        labels seen (or ``None``), the accumulated statistics, the parameters
        they depend on, and the reservoir of training rows that sets ``offset_``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    Notes
    -----
    ``y`` must hold the class indices ``0 .. K-1`` of the head's rows. Without
    ``y``, the predicted labels ``argmax(h W^T + b)`` of the (unclipped)
    training features are used instead. A class with no training sample gets
    ``Phi[c] = W[c] * mean(h)`` (the mean over all training rows), with a
    warning when labels were given.

    See Also
    --------
    sklearn_ood.detectors.dice.DICE, sklearn_ood.detectors.react.ReAct

    References
    ----------
    Ahn, Park & Kim, "LINe: Out-of-Distribution Detection by Leveraging
    Important Neurons", CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import LINe
    >>> h = np.array([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]])
    >>> head = (np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]), np.zeros(2))
    >>> det = LINe(head, clip=None, p_w=50, p_a=50).fit(h, [0, 1])
    >>> det.activation_masks_
    array([[ True, False, False],
           [False,  True, False]])
    >>> det.score_samples(h).round(4)
    array([2.1269, 2.1269])

    The same Shapley values from one row at a time (without ``y``, from the
    predicted classes, here the labels above):

    >>> det = LINe(head, clip=None, p_w=50, p_a=50).partial_fit(h[:1])
    >>> det.partial_fit(h[1:]).shapley_
    array([[2. , 0. , 0.5],
           [0. , 2. , 0.5]])
    """

    # Tuning: ``p_w`` and ``p_a`` over the paper's values (10, 90) and between, and
    # ``clip_percentile`` (a clip read from the training features fits any feature scale,
    # unlike the paper's absolute clip).
    _detector_tags = DetectorTags(
        input="features", head="required", labels="optional",
        grid={"p_w": [10, 50, 90], "p_a": [10, 50, 90], "clip_percentile": [90, 99]},
        paper="Ahn, Park & Kim, CVPR 2023")

    _scatter = False  # class means only
    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "clip": [Interval(Real, None, None, closed="neither"), None],
        "p_w": [Interval(Real, 0, 100, closed="both")],
        "p_a": [Interval(Real, 0, 100, closed="both")],
        "clip_percentile": [Interval(Real, 0, 100, closed="both"), None],
    }

    def __init__(self, head=None, *, clip=1.0, p_w=90, p_a=90, clip_percentile=None,
                 contamination=0.05):
        self.head = head
        self.clip = clip
        self.p_w = p_w
        self.p_a = p_a
        self.clip_percentile = clip_percentile
        self.contamination = contamination

    def partial_fit(self, X, y=None):
        """Add a chunk of training rows to the class means, then refit.

        As :meth:`~sklearn_ood._base.AccumulatingDetector.partial_fit`; with
        ``clip_percentile=None`` only (an exact percentile of all training
        entries cannot be accumulated over calls).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training features.
        y : array-like of shape (n_samples,), default=None
            Class indices of the chunk (negative: OOD, ignored), in every
            call or in none.

        Returns
        -------
        self : object
            The fitted detector.
        """
        if self.clip_percentile is not None:
            raise ValueError(
                f"LINe.partial_fit needs clip_percentile=None (got "
                f"{self.clip_percentile!r}): the percentile of all training entries "
                "cannot be accumulated exactly over calls. Pass an absolute clip, or "
                "call fit on all the rows."
            )
        return super().partial_fit(X, y)

    def _class_codes(self, X, y, reset):
        """The head's classes, each row's class (``y``, else predicted), the means so far."""
        coef_before = None if reset else (self.coef_, self.intercept_)
        self._fit_head(X)
        n_classes = self.coef_.shape[0]
        if coef_before is not None and not (
                np.array_equal(coef_before[0], self.coef_)
                and np.array_equal(coef_before[1], self.intercept_)):
            raise ValueError(
                "LINe's class means were accumulated with another head; call fit, or "
                "partial_fit on a fresh estimator, to change it."
            )
        if not reset and (y is None) != (self.classes_seen_ is None):
            given, before = ("without", "with") if y is None else ("with", "without")
            raise ValueError(
                f"LINe received y {given} class labels after a fit {before} them; pass "
                "labels in every call or in none."
            )
        if y is None:  # classes_seen_ stays None: the classes are the head's predictions
            codes = np.concatenate([np.argmax(self._logits(X[rows].astype(np.float64)), axis=1)
                                    for rows in row_chunks(X.shape[0])])
        else:
            codes = _check_class_indices(y, n_classes)
        classes = None if y is None else np.arange(n_classes)
        return classes, codes, None if reset else self.statistics_

    def _merge(self, X, codes, n_classes, statistics):
        if self.clip_percentile is not None:  # fit only (partial_fit refuses it)
            self.clip_ = react_threshold(X, self.clip_percentile)
        return super()._merge(X, codes, self.coef_.shape[0], statistics)  # the head's classes

    def _fit_statistics(self, classes, counts, means, scatter, sample, *, partial):
        missing = [] if classes is None else classes[counts == 0].tolist()
        if missing:  # with labels only: without, the classes are the predicted ones
            warnings.warn(
                f"LINe: no training sample for class(es) {missing} of the "
                f"{counts.size}-class head; their Shapley values use the mean of all "
                "training features.",
                UserWarning,
                stacklevel=5,
            )
        self.shapley_ = _shapley_from_means(self.coef_, counts, means)
        self.activation_masks_, self.weight_thresholds_ = line_masks(
            self.shapley_, self.coef_, self.p_a, self.p_w
        )
        if self.clip_percentile is None:
            self.clip_ = None if self.clip is None else float(self.clip)

    def _score(self, X):
        return line_scores(
            X, self.coef_, self.intercept_, self.shapley_, self.activation_masks_,
            self.weight_thresholds_, self.clip_,
        )
