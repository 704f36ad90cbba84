"""Simplified Hopfield energy (SHE): inner product with the predicted class's pattern.

Zhang, Fu, Liu, Li, Chen & Wang, "Out-of-Distribution Detection based on
In-Distribution Data Patterns Memorization with Modern Hopfield Energy",
ICLR 2023, https://openreview.net/forum?id=KkazG4lgKL.

The pure functions :func:`she_patterns` and :func:`she_score` hold the
method; :class:`SHE` stores one pattern per class of the head.
"""

import warnings

import numpy as np

from .._base import BaseDetector
from .._tags import DetectorTags
from ._features import in_precision, row_chunks
from ._head import HeadMixin


def she_patterns(X, labels, predictions, n_classes):
    """Mean feature of the correctly classified training rows of each class.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Read by chunks of rows, each cast to float64 (no float64 copy of ``X``).
    labels, predictions : ndarray of shape (n_samples,)
        Integer class indices ``0..n_classes-1``.
    n_classes : int

    Returns
    -------
    patterns : ndarray of shape (n_classes, n_features)
        Row ``c`` is NaN where class ``c`` has no correctly classified row.

    Examples
    --------
    >>> import numpy as np
    >>> she_patterns(np.array([[1.0], [3.0], [9.0]]), np.array([0, 0, 0]),
    ...              np.array([0, 0, 1]), 2)
    array([[ 2.],
           [nan]])
    """
    sums, counts = np.zeros((n_classes, X.shape[1])), np.zeros(n_classes, np.int64)
    for rows in row_chunks(X.shape[0]):
        correct = labels[rows] == predictions[rows]
        np.add.at(sums, labels[rows][correct], X[rows][correct].astype(np.float64))
        counts += np.bincount(labels[rows][correct], minlength=n_classes)
    return np.divide(sums, counts[:, None], out=np.full_like(sums, np.nan),
                     where=counts[:, None] > 0)


def she_score(X, logits, patterns):
    """SHE score ``<h, S_yhat>`` with ``yhat = argmax`` of the logits.

    Examples
    --------
    >>> import numpy as np
    >>> she_score(np.array([[1.0, 2.0]]), np.array([[0.0, 5.0]]),
    ...           np.array([[1.0, 0.0], [3.0, 1.0]]))
    array([5.])
    """
    X = in_precision(X)  # float32 features: the products in float32
    patterns = np.asarray(patterns, dtype=X.dtype)
    return np.einsum("ij,ij->i", X, patterns[np.argmax(logits, axis=1)]).astype(np.float64)


def check_class_indices(y, n_classes, method):
    """Return ``y`` as integer class indices into the head's rows, or raise."""
    y = np.asarray(y)
    valid = np.issubdtype(y.dtype, np.number) or y.dtype == bool
    as_int = y.astype(np.int64) if valid else None
    if not valid or not np.array_equal(as_int, y) or as_int.min() < 0 \
            or as_int.max() >= n_classes:
        raise ValueError(
            f"{method} needs y as integer class indices 0..{n_classes - 1} matching the "
            f"head's classes (the logits' columns); got labels {np.unique(y)[:5].tolist()}"
            f"{' ...' if np.unique(y).size > 5 else ''} (dtype {y.dtype}). Encode the "
            "labels in the model's class order."
        )
    return as_int


class SHE(HeadMixin, BaseDetector):
    """Simplified Hopfield energy (SHE): inner product with the predicted class's pattern.

    Patterns (SHE ``generate_stored_pattern.py``, OpenOOD ``she``): ``S_c`` is
    the mean training feature of the rows of label ``c`` that the head
    classifies correctly (prediction == label == c), in float64. Score:
    ``<h, S_yhat>`` with ``yhat`` the head's prediction, OpenOOD's default
    ``inner_product`` metric (the official code returns its negative as an
    energy), in float32 for float32 features. Higher means more ID.

    Needs the head and class labels: ``fit(X, y)`` with ``y`` the class
    indices of the head's rows, every class with at least one training row.
    A class without a correctly classified training row (pytorch-ood raises;
    the official code would average an empty set) gets the mean of all its
    training rows, with a ``UserWarning`` naming it.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray
        The head.
    patterns_ : ndarray of shape (n_classes, n_features)
        Stored pattern ``S_c`` of each class.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    References
    ----------
    Zhang, Fu, Liu, Li, Chen & Wang, "Out-of-Distribution Detection based on
    In-Distribution Data Patterns Memorization with Modern Hopfield Energy",
    ICLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import SHE
    >>> X = np.array([[2.0, 0.0], [4.0, 0.0], [0.0, 2.0], [0.0, 1.0]])
    >>> det = SHE(head=(np.eye(2), np.zeros(2))).fit(X, [0, 0, 1, 0])
    >>> det.patterns_  # row 3 is misclassified and left out
    array([[3., 0.],
           [0., 2.]])
    >>> det.score_samples(np.array([[1.0, 0.5], [1.0, 3.0]]))
    array([3., 6.])
    """

    _detector_tags = DetectorTags(
        input="features", head="required", labels="required",
        paper="Zhang et al., ICLR 2023")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
    }

    def __init__(self, head=None, *, contamination=0.05):
        self.head = head
        self.contamination = contamination

    def _fit(self, X, y):
        if y is None:
            raise ValueError(
                "SHE requires y to be passed, but the target y is None: its patterns are "
                "the class means of correctly classified training rows, so pass the class "
                "labels (fit(X, y), indices of the head's rows)."
            )
        self._fit_head(X)
        n_classes = self.coef_.shape[0]
        labels = check_class_indices(y, n_classes, "SHE")
        predictions = np.concatenate([
            np.argmax(self._logits(in_precision(X[rows])), axis=1)  # as scoring predicts
            for rows in row_chunks(X.shape[0])
        ])
        self.patterns_ = she_patterns(X, labels, predictions, n_classes)
        missing = np.flatnonzero(np.isnan(self.patterns_[:, 0]))
        absent = np.setdiff1d(missing, labels)
        if absent.size:
            raise ValueError(
                f"SHE: class(es) {absent.tolist()} of the {n_classes}-class head have no "
                "training row, so no stored pattern. Fit on in-distribution rows of every "
                "class (or check that y follows the head's class order)."
            )
        if missing.size:
            warnings.warn(
                f"SHE: class(es) {missing.tolist()} of the {n_classes}-class head have no "
                "correctly classified training row; their patterns are the mean of all "
                "their training rows instead.",
                UserWarning,
                stacklevel=3,
            )
            # every row counted as correct: the mean of all the rows of each class
            self.patterns_[missing] = she_patterns(X, labels, labels, n_classes)[missing]

    def _score(self, X):
        X = in_precision(X)
        return she_score(X, self._logits(X), self.patterns_)

