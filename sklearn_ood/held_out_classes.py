"""Held-out classes as pseudo-OOD: fit on some ID classes, score the others as OOD.

A semantic, near-OOD source of pseudo-OOD that needs no image corruption:
a detector fitted on the rows of ``K - m`` classes (its head restricted to
those classes' rows) meets the rows of the ``m`` held-out classes as images of
classes it has never seen, which is what near-OOD is. Repeated over seeded
class splits and averaged, as Mondal et al. do with networks retrained per
split; here nothing is retrained (post hoc).

Where it is biased: the network itself was trained on the held-out classes.
Its features separate them from the kept classes better than they separate
a class the network never learned, and the head rows that are dropped were
trained against the kept rows. So held-out classes are an *easy*, optimistic
near-OOD that favours the scores built on the head (logits, energies) and on
class structure; they say little about far-OOD (textures, other domains).

- :class:`HeldOutClassSplit`: cross-validation folds whose training rows
  leave ``m`` classes out and whose test rows hold the left-out classes.
- :class:`ClassSubsetDetector`: fits a detector on the classes of its
  training rows, with the head restricted to their rows, and records them
  (``classes_``), so that a scorer can tell the classes it never saw.
- :func:`held_out_schedule`: which classes each split leaves out.

The scorers that read these folds are in :mod:`sklearn_ood.selection`.

References
----------
Mondal, Ghosh, Mukherjee & Banerjee, "Tuning Out-of-Distribution Detectors
Without Given OOD Data", arXiv 2602.05935, 2026.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.model_selection import BaseCrossValidator, KFold, StratifiedKFold
from sklearn.utils import _safe_indexing, check_random_state, indexable
from sklearn.utils.validation import _num_samples, check_is_fitted

from ._validation import check_head, check_labels, check_splitter

__all__ = ["ClassSubsetDetector", "HeldOutClassSplit", "held_out_schedule", "reads_head",
           "restrict_head"]


def reads_head(detector):
    """Whether ``detector`` reads logits through its final layer: a ``head`` parameter.

    The one test of that property, kept in one place.

    Examples
    --------
    >>> from sklearn_ood import Energy, KNN
    >>> reads_head(Energy()), reads_head(KNN())
    (True, False)
    """
    return "head" in detector.get_params(deep=False)


def restrict_head(head, classes):
    """The rows ``classes`` of a head: ``(coef[classes], intercept[classes])``.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        A final linear layer whose row ``c`` gives the logit of class ``c``.
    classes : array-like of int
        The rows to keep, in this order.

    Returns
    -------
    head : tuple of ndarray
        ``(coef, intercept)`` of shapes ``(len(classes), D)`` and ``(len(classes),)``.

    Examples
    --------
    >>> import numpy as np
    >>> coef, intercept = restrict_head((np.eye(3), np.array([0.0, 1.0, 2.0])), [0, 2])
    >>> coef, intercept
    (array([[1., 0., 0.],
           [0., 0., 1.]]), array([0., 2.]))
    """
    if isinstance(head, str):
        raise TypeError(
            f"A head given by module name ({head!r}) cannot be restricted to some classes: "
            "pass the layer itself (an nn.Linear) or a (coef, intercept) pair."
        )
    coef, intercept = check_head(head)
    classes = np.asarray(classes)
    if classes.size and (classes.min() < 0 or classes.max() >= coef.shape[0]):
        raise ValueError(
            f"The class labels must index the head's {coef.shape[0]} rows (0 to "
            f"{coef.shape[0] - 1}); got {classes.tolist()}. Encode the labels in the "
            "model's class order."
        )
    return coef[classes], intercept[classes]


def held_out_schedule(classes, n_splits, n_held_out, random_state=None):
    """The classes each split leaves out: ``n_held_out`` consecutive classes of a cycle.

    The classes are shuffled once (unless ``random_state`` is ``False``); split
    ``k`` leaves out the classes at positions ``k*m, ..., k*m + m - 1`` of the
    cycle (modulo ``K``), so each class is left out ``n_splits * m / K`` times,
    up to one.

    Parameters
    ----------
    classes : array-like of shape (K,)
        The distinct ID classes.
    n_splits : int
    n_held_out : int
        Classes left out per split, ``1 <= m < K``.
    random_state : int, RandomState instance, None or False, default=None
        Seeds the shuffle; ``False``: no shuffle (the classes in sorted order).

    Returns
    -------
    held_out : list of ndarray
        One sorted array of ``m`` classes per split.

    Examples
    --------
    >>> held_out_schedule([0, 1, 2, 3, 4], 3, 2, random_state=False)
    [array([0, 1]), array([2, 3]), array([0, 4])]
    """
    classes = np.unique(np.asarray(classes))
    K = classes.size
    if not 1 <= n_held_out < K:
        raise ValueError(
            f"n_held_out must leave at least one class in and out: 1 <= n_held_out < "
            f"{K} (the number of ID classes); got {n_held_out}."
        )
    order = classes if random_state is False else \
        check_random_state(random_state).permutation(classes)
    return [np.sort(order[(k * n_held_out + np.arange(n_held_out)) % K])
            for k in range(n_splits)]


def _n_held_out(n_held_out, n_classes):
    """An int, or a fraction of the classes rounded (at least 1, at most K - 1)."""
    if isinstance(n_held_out, Integral) and not isinstance(n_held_out, bool):
        return int(n_held_out)
    return min(max(1, int(round(n_held_out * n_classes))), n_classes - 1)


class HeldOutClassSplit(BaseCrossValidator):
    """K-fold splitter whose training rows leave ``m`` ID classes out.

    ID rows (``y >= 0``) are split into ``n_splits`` folds, stratified by
    class (``KFold`` when a class has fewer than ``n_splits`` rows); OOD rows
    (negative label, e.g. corrupted images from
    :func:`~sklearn_ood.selection.make_pseudo_ood_sources`) into ``n_splits``
    parts. Fold ``k`` leaves out the classes ``H_k`` of
    :func:`held_out_schedule`:

    - train: the ID rows outside fold ``k`` whose class is not in ``H_k``;
    - test: the ID rows of fold ``k``, **every** row of the classes in ``H_k``
      (none of them was trained on) and the OOD rows of part ``k``.

    A scorer of :mod:`sklearn_ood.selection` then reads the ID rows of the
    classes the detector saw in ``fit`` as ID and, for the held-out source,
    the rows of the other classes as OOD. Wrap the detector in
    :class:`ClassSubsetDetector` so that its head and labels follow the
    classes of each training fold.

    Parameters
    ----------
    n_splits : int >= 2, default=5
        Number of folds (and of class splits).
    n_held_out : int or float, default=0.2
        Classes left out per fold: an int, or a fraction of the ``K`` ID
        classes (rounded; at least 1, at most ``K - 1``).
    shuffle : bool, default=True
        Shuffle the rows (within classes) and the order in which classes are
        left out.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffles; must be ``None`` when ``shuffle=False``.

    See Also
    --------
    ClassSubsetDetector, sklearn_ood.tuning.PseudoOODSplit

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.held_out_classes import HeldOutClassSplit
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> for train, test in HeldOutClassSplit(2, n_held_out=1, shuffle=False).split(y, y):
    ...     print(train, test)
    [3 5] [0 1 2 4]
    [0 4] [1 2 3 5]
    """

    def __init__(self, n_splits=5, *, n_held_out=0.2, shuffle=True, random_state=None):
        check_splitter(n_splits, shuffle, random_state)
        if isinstance(n_held_out, bool) or not (
                (isinstance(n_held_out, Integral) and n_held_out >= 1)
                or (isinstance(n_held_out, Real) and 0 < n_held_out < 1)):
            raise ValueError(
                "n_held_out must be an integer >= 1 (classes) or a fraction in (0, 1) of "
                f"the classes; got {n_held_out!r}."
            )
        self.n_splits = n_splits
        self.n_held_out = n_held_out
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of folds.

        Parameters
        ----------
        X, y, groups : ignored

        Returns
        -------
        n_splits : int
        """
        return self.n_splits

    def split(self, X, y, groups=None):
        """Generate ``(train, test)`` index arrays.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
            Class labels of the ID rows; a negative label marks an OOD row.
        groups : ignored

        Yields
        ------
        train : ndarray of int
            ID rows outside fold ``k``, of the classes not held out.
        test : ndarray of int
            ID rows of fold ``k``, all rows of the held-out classes, OOD rows
            of part ``k``; sorted.
        """
        if y is None:
            raise ValueError("HeldOutClassSplit needs y: the class label of every ID row "
                             "(and a negative label for OOD rows).")
        X, y = indexable(X, y)
        y, is_id = check_labels(y, _num_samples(X))
        id_rows, ood_rows = np.flatnonzero(is_id), np.flatnonzero(~is_id)
        y_id = y[id_rows]
        if y_id.dtype.kind == "f" and np.isnan(y_id).any():
            raise ValueError("HeldOutClassSplit needs the class of every ID row; y holds "
                             "NaN (class unknown).")
        classes, counts = np.unique(y_id, return_counts=True)
        if classes.size < 2:
            raise ValueError(f"HeldOutClassSplit needs at least 2 ID classes; got "
                             f"{classes.size}.")
        k = self.n_splits
        if len(id_rows) < k or 0 < len(ood_rows) < k:
            raise ValueError(
                f"HeldOutClassSplit with n_splits={k} needs at least {k} ID rows and no OOD "
                f"row or at least {k}; got {len(id_rows)} and {len(ood_rows)}."
            )
        seed = self.random_state if self.shuffle else False
        if self.shuffle and not isinstance(seed, Integral):
            seed = check_random_state(seed).randint(np.iinfo(np.int32).max)
        held = held_out_schedule(classes, k, _n_held_out(self.n_held_out, classes.size),
                                 random_state=seed)
        kw = dict(shuffle=self.shuffle, random_state=seed if self.shuffle else None)
        id_cv = (StratifiedKFold if counts.min() >= k else KFold)(k, **kw)
        id_folds = id_cv.split(np.zeros((len(id_rows), 1)), y_id)
        ood_parts = (KFold(k, **kw).split(np.zeros((len(ood_rows), 1))) if len(ood_rows)
                     else ((None, np.array([], dtype=int)) for _ in range(k)))
        for out, (id_train, id_test), (_, ood_test) in zip(held, id_folds, ood_parts):
            is_out = np.isin(y_id, out)
            train = id_train[~is_out[id_train]]
            test = np.union1d(id_test, np.flatnonzero(is_out))
            yield id_rows[train], np.sort(np.concatenate([id_rows[test], ood_rows[ood_test]]))


class ClassSubsetDetector(OutlierMixin, BaseEstimator):
    """A detector fitted on the classes present in ``y``, its head restricted to them.

    ``fit(X, y)`` records the ID classes of ``y`` (``classes_``), restricts
    the detector's head, when it reads one (:func:`reads_head`), to these
    classes' rows (:func:`restrict_head`; the labels are the head's row
    indices), and fits a clone of the detector on the ID rows, with the
    labels re-encoded as positions in ``classes_`` (``0 .. len(classes_) - 1``,
    the rows of the restricted head). Fitted on every class, it is the
    detector itself, with the head untouched.

    It is how a ``GridSearchCV`` with :class:`HeldOutClassSplit` folds scores
    held-out classes as OOD: the detector of each fold knows only the kept
    classes, and the scorers of :mod:`sklearn_ood.selection` read
    ``classes_`` to tell the classes it never saw.

    Parameters
    ----------
    detector : estimator
        The detector to fit (cloned).
    use_labels : bool, default=True
        Whether the detector's ``fit`` gets the (re-encoded) class labels;
        ``False``: ``fit(X)``.

    Attributes
    ----------
    detector_ : estimator
        The fitted clone.
    classes_ : ndarray
        The ID classes seen in ``fit``, sorted.
    n_features_in_ : int
        Number of features of the fitted detector (when it records one).

    See Also
    --------
    HeldOutClassSplit, sklearn_ood.selection.SourceScorer

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import Energy
    >>> from sklearn_ood.held_out_classes import ClassSubsetDetector
    >>> head = (np.eye(3), np.zeros(3))
    >>> X, y = np.eye(3), np.array([0, 2, 2])
    >>> det = ClassSubsetDetector(Energy(head=head)).fit(X, y)
    >>> det.classes_, det.detector_.coef_
    (array([0, 2]), array([[1., 0., 0.],
           [0., 0., 1.]]))
    """

    def __init__(self, detector, *, use_labels=True):
        self.detector = detector
        self.use_labels = use_labels

    def fit(self, X, y):
        """Fit a clone of the detector on the ID rows, head restricted to their classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
            Class labels of the ID rows (the head's row indices when the
            detector reads a head); negative labels (OOD rows) are dropped.

        Returns
        -------
        self : object
        """
        if y is None:
            raise ValueError("ClassSubsetDetector needs y: the class label of every ID row.")
        if not isinstance(self.use_labels, (bool, np.bool_)):
            raise TypeError(f"use_labels must be True or False; got {self.use_labels!r}.")
        X, y = indexable(X, y)
        y, is_id = check_labels(y, _num_samples(X))
        rows = np.flatnonzero(is_id)
        y_id = y[rows]
        if rows.size == 0 or (y_id.dtype.kind == "f" and np.isnan(y_id).any()):
            raise ValueError("ClassSubsetDetector needs the class label of every ID row "
                             "(labels >= 0, no NaN) and at least one ID row.")
        classes, codes = np.unique(y_id, return_inverse=True)
        detector = clone(self.detector)
        if reads_head(detector) and detector.get_params(deep=False)["head"] is not None:
            head = detector.get_params(deep=False)["head"]
            n_rows = check_head(head)[0].shape[0] if not isinstance(head, str) else None
            if not (n_rows == classes.size and np.array_equal(classes, np.arange(n_rows))):
                detector.set_params(head=restrict_head(head, classes))
        X_id = X if rows.size == _num_samples(X) else _safe_indexing(X, rows)
        detector.fit(X_id, codes if self.use_labels else None)
        self.detector_, self.classes_ = detector, classes
        if hasattr(detector, "n_features_in_"):
            self.n_features_in_ = detector.n_features_in_
        return self

    def score_samples(self, X):
        """The fitted detector's scores (higher = more in-distribution)."""
        check_is_fitted(self)
        return self.detector_.score_samples(X)

    def decision_function(self, X):
        """The fitted detector's ``decision_function``."""
        check_is_fitted(self)
        return self.detector_.decision_function(X)

    def predict(self, X):
        """The fitted detector's predictions (+1 ID, -1 OOD)."""
        check_is_fitted(self)
        return self.detector_.predict(X)
