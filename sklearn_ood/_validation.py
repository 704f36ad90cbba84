"""Validation of features, labels and heads shared by every estimator (a leaf module).

Images and other model input are checked by :mod:`sklearn_ood.streaming`.
"""

from numbers import Integral

import numpy as np
from sklearn.utils.validation import check_array, validate_data

FLOAT_DTYPES = (np.float64, np.float32)


def validate_features(estimator, X, *, reset, allow_nd=False):
    """Validate the feature input of a detector.

    2-D input goes through scikit-learn's ``validate_data`` (standard messages,
    ``n_features_in_`` and ``feature_names_in_``). With ``allow_nd=True`` a 4-D
    ``(N, C, H, W)`` array is accepted too; ``n_features_in_`` is then the channel
    count ``C`` and the spatial size may vary between calls. The number of
    dimensions seen in ``fit`` is stored in ``input_ndim_`` and enforced later.
    """
    if not allow_nd or _ndim(X) == 2 or _is_dataframe(X):
        if allow_nd and not reset and getattr(estimator, "input_ndim_", 2) != 2:
            raise ValueError(
                f"{type(estimator).__name__} was fitted on {estimator.input_ndim_}-D "
                f"feature maps but received 2-D input of shape {np.shape(X)}."
            )
        X = validate_data(estimator, X, reset=reset, dtype=FLOAT_DTYPES)
        if reset and allow_nd:
            estimator.input_ndim_ = 2
        return X
    X = check_array(
        X, allow_nd=True, dtype=FLOAT_DTYPES, input_name="X", ensure_min_features=1
    )
    if X.ndim != 4:
        raise ValueError(
            f"{type(estimator).__name__} expects 2-D features (n_samples, n_features) "
            f"or 4-D feature maps (n_samples, channels, height, width); got an array "
            f"of shape {X.shape}."
        )
    if reset:
        estimator.n_features_in_ = X.shape[1]
        estimator.input_ndim_ = 4
    else:
        if estimator.input_ndim_ != 4:
            raise ValueError(
                f"{type(estimator).__name__} was fitted on 2-D features but received "
                f"4-D maps of shape {X.shape}."
            )
        if X.shape[1] != estimator.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} channels, but {type(estimator).__name__} is "
                f"expecting {estimator.n_features_in_} channels as input."
            )
    return X


def check_labels(y, n_samples, *, allow_ood=True, name="y"):
    """Check labels under the library's convention; return ``(y, is_id)``.

    The one label convention of sklearn-ood, for ``fit``, cross-validation
    splitters and metrics alike:

    - a label ``>= 0`` (or any non-numeric class label, e.g. a string) marks
      an in-distribution (ID) row of that class;
    - ``NaN`` marks an ID row whose class is unknown (what
      :func:`~sklearn_ood.pseudo_ood.make_pseudo_ood` gives ID images when
      called without labels);
    - a negative label marks an OOD row.

    A boolean ``y`` is read as "is ID" (``True`` ID, ``False`` OOD), as the
    metrics have always accepted it.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    n_samples : int
        Number of rows ``y`` must label.
    allow_ood : bool, default=True
        ``False``: every row must be ID (the input holds ID rows only).
    name : str, default="y"
        The name used in error messages.

    Returns
    -------
    y : ndarray of shape (n_samples,)
    is_id : ndarray of bool of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> check_labels([0, 2, -1, np.nan], 4)[1]
    array([ True,  True, False,  True])
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(
            f"{name} must be 1-D with one label per row ({n_samples}); got shape {y.shape}."
        )
    if y.dtype == bool:
        is_id = y.copy()
    elif np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.complexfloating):
        if np.isinf(y).any():
            raise ValueError(f"{name} contains infinity.")
        is_id = ~(y < 0)  # NaN: an ID row of unknown class
    elif y.dtype.kind in "OUS":
        is_id = np.ones(n_samples, dtype=bool)  # class names carry no OOD marker
    else:
        raise TypeError(
            f"{name} must hold class labels (numeric, negative marks OOD); got dtype "
            f"{y.dtype}."
        )
    if not allow_ood and not is_id.all():
        raise ValueError(
            f"{name} has negative labels, which mark OOD rows; the input must hold "
            "in-distribution rows only (labels >= 0, or NaN for an unknown class)."
        )
    return y, is_id


def split_id_rows(X, y):
    """Keep the in-distribution rows of ``X`` (see :func:`check_labels`).

    Returns ``(X_id, y_id)``; ``y_id`` is ``None`` when ``y`` is ``None`` or
    when no ID row has a known class (all ``NaN``).
    """
    if y is None:
        return X, None
    y, is_id = check_labels(y, X.shape[0])
    if not is_id.any():
        raise ValueError(
            "y marks every row as OOD (negative label); fit needs in-distribution "
            "rows (label >= 0)."
        )
    if not is_id.all():
        X, y = X[is_id] if isinstance(X, np.ndarray) else X[np.flatnonzero(is_id)], y[is_id]
    if y.dtype.kind == "f":
        unknown = np.isnan(y)
        if unknown.all():
            return X, None
        if unknown.any():
            raise ValueError(
                "y gives some in-distribution rows a class and marks others as of "
                "unknown class (NaN); label all of them or none."
            )
    return X, y


def check_id_labels(y, n):
    """Class labels of ID images; ``None`` gives NaN (ID, class unknown)."""
    if y is None:
        return np.full(n, np.nan)
    y, _ = check_labels(y, n, allow_ood=False)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.number):
        raise TypeError(
            f"y must hold numeric class labels (pseudo-OOD rows get -1); got dtype "
            f"{y.dtype}. Encode the classes as integers, e.g. with LabelEncoder."
        )
    return y


def check_head(head, n_features=None, *, n_classes=None, dtype=np.float64):
    """Return ``(coef, intercept)`` as NumPy arrays of shapes ``(K, D)`` and ``(K,)``.

    Parameters
    ----------
    head : torch.nn.Linear or tuple of (coef, intercept)
        The classifier's final linear layer. ``coef`` has shape
        ``(n_classes, n_features)``; ``intercept`` has shape ``(n_classes,)``
        or is ``None`` (no bias).
    n_features : int, default=None
        When given, the feature dimension ``D`` the head must accept.
    n_classes : int, default=None
        When given, the number of classes ``K`` the head must have.
    dtype : numpy dtype, default=np.float64

    Returns
    -------
    coef : ndarray of shape (K, D)
    intercept : ndarray of shape (K,)
    """
    if hasattr(head, "weight") and hasattr(head, "in_features"):
        coef = head.weight.detach().cpu().numpy()
        bias = head.bias
        intercept = None if bias is None else bias.detach().cpu().numpy()
    elif isinstance(head, (tuple, list)) and len(head) == 2:
        coef, intercept = head
        coef = as_numpy(coef)
        intercept = None if intercept is None else as_numpy(intercept)
    else:
        raise TypeError(
            "head must be a torch.nn.Linear or a (coef, intercept) pair with shapes "
            f"(n_classes, n_features) and (n_classes,); got {type(head).__name__}."
        )
    coef = np.asarray(coef, dtype=dtype)
    if coef.ndim != 2 or coef.shape[0] < 1 or coef.shape[1] < 1:
        raise ValueError(
            f"head coef must have shape (n_classes, n_features); got {coef.shape}."
        )
    if intercept is None:
        intercept = np.zeros(coef.shape[0], dtype=dtype)
    intercept = np.asarray(intercept, dtype=dtype)
    if intercept.shape != (coef.shape[0],):
        raise ValueError(
            f"head intercept must have shape ({coef.shape[0]},) to match coef "
            f"{coef.shape}; got {intercept.shape}."
        )
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise ValueError("head contains NaN or infinite weights.")
    if n_classes is not None and coef.shape != (n_classes, n_features):
        raise ValueError(
            f"head coef must have shape (n_classes, n_features) = ({n_classes}, "
            f"{n_features}) to match the features and labels; got {coef.shape}."
        )
    if n_features is not None and coef.shape[1] != n_features:
        raise ValueError(
            f"head expects {coef.shape[1]} features (coef shape {coef.shape}) but X "
            f"has {n_features} features. Pass the layer that consumes these features "
            "(e.g. the model's final nn.Linear) or extract the matching block."
        )
    return coef, intercept


def as_numpy(a):
    """A NumPy view of an array-like or a torch tensor (without importing torch)."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _ndim(X):
    # Not np.ndim: it dispatches through __array_function__, which array-likes
    # such as scikit-learn's _NotAnArray refuse.
    return X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim


def _is_dataframe(X):
    return hasattr(X, "columns") and hasattr(X, "iloc")


def check_splitter(n_splits, shuffle, random_state):
    """Check a cross-validation splitter's common parameters, as scikit-learn's ``KFold``.

    Examples
    --------
    >>> from sklearn_ood._validation import check_splitter
    >>> check_splitter(3, True, 0)
    >>> check_splitter(1, True, 0)
    Traceback (most recent call last):
    ...
    ValueError: n_splits must be an integer >= 2; got 1.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, Integral) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2; got {n_splits!r}.")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False; got {shuffle!r}.")
    if not shuffle and random_state is not None:
        raise ValueError(
            "random_state has no effect when shuffle=False; leave random_state=None "
            "or set shuffle=True."
        )
