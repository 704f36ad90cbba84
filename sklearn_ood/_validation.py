"""Input validation shared by every estimator (a leaf module)."""

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
        if reset:
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


def split_id_rows(X, y):
    """Keep the in-distribution rows of ``X``: those whose label is not negative.

    Returns ``(X_id, y_id)``; ``y_id`` is ``None`` when ``y`` is ``None``.
    """
    if y is None:
        return X, None
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must be 1-D with one label per row of X ({X.shape[0]}); got shape "
            f"{y.shape}."
        )
    if not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
        # String class labels carry no OOD marker: every row is ID.
        return X, y
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinity.")
    is_id = y >= 0
    if not is_id.any():
        raise ValueError(
            "y marks every row as OOD (negative label); fit needs in-distribution "
            "rows (label >= 0)."
        )
    return X[is_id], y[is_id]


def check_images(X, name="X"):
    """Check a finite, non-empty, real numeric batch of images (N, C, H, W)."""
    X = np.asarray(X)
    if X.dtype == object or X.dtype == bool or not np.issubdtype(X.dtype, np.number) \
            or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{name} must be a real numeric array of images; got dtype {X.dtype}.")
    if X.ndim != 4:
        raise ValueError(
            f"{name} must be images of shape (n_samples, channels, height, width); got an "
            f"array of shape {X.shape}. Add the channel axis for grey images, e.g. X[:, None]."
        )
    if X.size == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}); need at least one image.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinity.")
    return X


def check_id_labels(y, n):
    """Check class labels of ID images (numeric, >= 0); ``None`` gives zeros."""
    if y is None:
        return np.zeros(n, dtype=np.int64)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must be 1-D with one label per image ({n}); got shape {y.shape}.")
    if y.dtype == bool or not np.issubdtype(y.dtype, np.number):
        raise TypeError(
            f"y must hold numeric class labels (pseudo-OOD rows get -1); got dtype "
            f"{y.dtype}. Encode the classes as integers, e.g. with LabelEncoder."
        )
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinity.")
    if np.any(y < 0):
        raise ValueError(
            "y has negative labels, which mark OOD rows; X must hold in-distribution "
            "images only (labels >= 0)."
        )
    return y


def _ndim(X):
    # Not np.ndim: it dispatches through __array_function__, which array-likes
    # such as scikit-learn's _NotAnArray refuse.
    return X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim


def _is_dataframe(X):
    return hasattr(X, "columns") and hasattr(X, "iloc")
