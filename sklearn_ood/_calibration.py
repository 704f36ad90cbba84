"""Held-out rows for a detector's calibrating statistics (part of the fit contract).

A detector's fitted statistics are of two kinds. *Modelling* statistics
describe the in-distribution data: class means and covariances, bounds, a
bank of rows, a clip value. *Calibrating* statistics set the scale of a score
or weigh scores against each other: a softmax temperature, the
standardisation of block scores, a combiner's weights, a normaliser. Fitted on
the rows the modelling statistics (or the network) were fitted on, a
calibrating statistic sees scores that are optimistic for those rows, and the
references fit them on held-out rows instead (Guo et al. fit the temperature
on validation data).

A detector declares its calibrating statistics in its tags
(:attr:`~sklearn_ood._tags.DetectorTags.calibrated`); its ``fit(X, y, *,
X_cal=None, y_cal=None)`` then fits them on rows its modelling statistics do
not see, chosen by :func:`split_calibration_rows` as scikit-learn's
:class:`~sklearn.ensemble.HistGradientBoostingClassifier` chooses its
validation rows (``validation_fraction`` and ``random_state``, or ``X_val``
and ``y_val`` given to ``fit``):

- ``X_cal`` (and ``y_cal``) given to ``fit``: the calibrating statistics are
  fitted on them, the modelling ones on ``X``; ``calibration_size`` is then
  ignored.
- else ``calibration_size`` (a share or a number of rows): a seeded split of
  the ID rows of ``X``, stratified by class when ``y`` is given, as
  :func:`~sklearn.model_selection.train_test_split` draws it with
  ``test_size=calibration_size``, ``stratify=y`` and the detector's
  ``random_state``: the drawn rows calibrate, the others model.
- else (``calibration_size=None``): both on the ID rows of ``X``.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, RealNotInt

from ._row_subset import RowSubset
from ._validation import check_labels, split_id_rows

__all__ = ["CALIBRATION_CONSTRAINTS", "split_calibration_rows"]

#: The parameter constraints of ``calibration_size`` and ``random_state``, which every
#: detector with calibrating statistics has.
CALIBRATION_CONSTRAINTS = {
    "calibration_size": [None, Interval(RealNotInt, 0, 1, closed="neither"),
                         Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
}


def split_calibration_rows(detector, X, y, X_cal=None, y_cal=None):
    """The rows a detector's modelling and calibrating statistics are fitted on.

    Parameters
    ----------
    detector : BaseDetector
        Validated ``X`` already (``n_features_in_`` is set); its
        ``calibration_size`` and ``random_state`` choose the split.
    X : ndarray of shape (n_samples, ...)
        The ID rows given to ``fit``.
    y : ndarray of shape (n_samples,) or None
        Their class labels.
    X_cal : array-like of shape (n_calibration, ...), default=None
        Held-out rows given to ``fit``, checked as ``X``; rows with a negative
        label in ``y_cal`` are OOD and returned apart.
    y_cal : array-like of shape (n_calibration,), default=None
        Their labels.

    Returns
    -------
    X_fit, y_fit : the rows for the modelling statistics (and their labels).
    X_cal, y_cal : the rows for the calibrating statistics (and their labels);
        ``X_cal`` is ``X_fit`` itself when nothing is held out. The rows a
        split selects are lazy views (:class:`~sklearn_ood._row_subset.RowSubset`:
        ``shape``, slicing, ``np.asarray``), not copies.
    X_cal_ood : ndarray or None
        The OOD rows of ``X_cal`` (``None`` when it has none).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import MaxSoftmax
    >>> det = MaxSoftmax(temperature="fit", calibration_size=4, random_state=0)
    >>> X, y = np.arange(24.0).reshape(12, 2), np.repeat([0, 1], 6)
    >>> det._validate_input(X, reset=True).shape
    (12, 2)
    >>> X_fit, y_fit, X_cal, y_cal, _ = split_calibration_rows(det, X, y)
    >>> len(X_fit), np.bincount(y_cal).tolist()
    (8, [2, 2])
    """
    name = type(detector).__name__
    if X_cal is None:
        if y_cal is not None:
            raise ValueError(f"{name}.fit got y_cal without X_cal: pass the calibration "
                             "rows as X_cal with their labels y_cal, or neither.")
        if detector.calibration_size is None:
            return X, y, X, y, None
        fit_rows, cal_rows = _split(name, detector.calibration_size, X.shape[0], y,
                                    detector.random_state)
        # lazy views: the rows are read by chunks, never copied all at once
        return (RowSubset(X, fit_rows), None if y is None else y[fit_rows],
                RowSubset(X, cal_rows), None if y is None else y[cal_rows], None)
    X_cal = detector._validate_input(X_cal, reset=False)
    if y_cal is None:
        return X, y, X_cal, None, None
    _, is_id = check_labels(y_cal, X_cal.shape[0], name="y_cal")
    X_cal_ood = X_cal[~is_id] if not is_id.all() else None
    try:
        X_cal, y_cal = split_id_rows(X_cal, y_cal)
    except ValueError as exc:
        raise ValueError(f"y_cal: {exc} The calibration rows must be in-distribution "
                         "rows.") from None
    return X, y, X_cal, y_cal, X_cal_ood


def _split(name, size, n, y, random_state):
    """``(fit_rows, calibration_rows)``: a seeded split of ``n`` rows, stratified by ``y``."""
    n_cal = int(np.ceil(size * n)) if isinstance(size, Real) and not isinstance(
        size, Integral) else int(size)
    if n_cal >= n:
        raise ValueError(
            f"{name}(calibration_size={size!r}) holds out {n_cal} of the {n} in-distribution "
            "rows of X, leaving none for the modelling statistics: "
            f"{_advice('a smaller calibration_size or more rows')}."
        )
    if y is None:
        fit_rows, cal_rows = train_test_split(np.arange(n), test_size=n_cal,
                                              random_state=random_state)
        return np.sort(fit_rows), np.sort(cal_rows)
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        raise ValueError(
            f"{name}(calibration_size={size!r}): class {classes[counts.argmin()]} has "
            f"{counts.min()} in-distribution row in X, and the split stratified by class "
            f"needs at least 2 rows of each (one to model, one to calibrate): "
            f"{_advice('more rows of that class')}."
        )
    if not classes.size <= n_cal <= n - classes.size:
        raise ValueError(
            f"{name}(calibration_size={size!r}) holds out {n_cal} of the {n} in-distribution "
            f"rows of X, but the split stratified by class needs at least one row of each of "
            f"the {classes.size} classes on each side, so between {classes.size} and "
            f"{n - classes.size} calibration rows: "
            f"{_advice(_resize(n_cal < classes.size))}."
        )
    fit_rows, cal_rows = train_test_split(np.arange(n), test_size=n_cal, stratify=y,
                                          random_state=random_state)
    for side, rows in (("model", fit_rows), ("calibrate", cal_rows)):
        missing = np.setdiff1d(classes, y[rows])
        if missing.size:
            raise ValueError(
                f"{name}(calibration_size={size!r}): the stratified split leaves class "
                f"{missing[0]} without a row to {side} on (a class with few rows): "
                f"{_advice(_resize(side == 'calibrate'))}."
            )
    return np.sort(fit_rows), np.sort(cal_rows)


def _resize(larger):
    return f"a {'larger' if larger else 'smaller'} calibration_size"


def _advice(change):
    """What to change, for the split's errors: ``change`` names the first option."""
    return (f"pass {change}, held-out rows as X_cal, or calibration_size=None (calibrate "
            "on the fit rows)")
