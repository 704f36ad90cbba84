"""What a deployed threshold accepts: the detector's own and a conformal one, from scores."""

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch

from .p_values import conformal_threshold

__all__ = ["acceptance_shares", "calibration_split"]


def calibration_split(n_or_y, calibration_size=1000, *, random_state=0):
    """Split the rows of a held-out ID set into calibration rows and test rows.

    A seeded draw of ``calibration_size`` rows, stratified by class when
    labels are given (each class keeps its share in both parts).

    Parameters
    ----------
    n_or_y : int or array-like of shape (n_samples,)
        The number of rows, or their class labels (to stratify).
    calibration_size : int or float in (0, 1), default=1000
        Number (or share) of calibration rows.
    random_state : int, RandomState instance or None, default=0
        Seeds the draw.

    Returns
    -------
    calibration_rows, test_rows : ndarray of int
        Sorted row indices; together, every row once.

    Examples
    --------
    >>> import numpy as np
    >>> calib, test = calibration_split(np.repeat([0, 1], 10), 4, random_state=0)
    >>> len(calib), len(test), np.bincount(np.repeat([0, 1], 10)[calib]).tolist()
    (4, 16, [2, 2])
    """
    y = None if np.ndim(n_or_y) == 0 else np.asarray(n_or_y)
    n = int(n_or_y) if y is None else len(y)
    test, calib = train_test_split(np.arange(n), test_size=calibration_size, stratify=y,
                                   random_state=random_state)
    return np.sort(calib), np.sort(test)


def acceptance_shares(scores, offset, *, id_set="ID test", alpha=0.05, delta=None,
                      calibration_size=1000, y=None, random_state=0):
    """Share of each set's rows that the plain and the conformal threshold accept.

    The plain threshold is the detector's ``offset_`` (from its training
    rows). The conformal one (:func:`~sklearn_ood.conformal.conformal_threshold`)
    comes from ``calibration_size`` rows of the ID set ``id_set``
    (:func:`calibration_split`, stratified by ``y`` when given); the ID
    shares of both thresholds are measured on the other rows of that set, the
    OOD shares on every row of each other set. A row is accepted when its
    score is ``>= threshold`` (``predict`` gives +1).

    Parameters
    ----------
    scores : dict
        Set name -> scores of a fitted detector (higher = more ID): the ID set
        ``id_set`` and any OOD sets.
    offset : float
        The detector's threshold ``offset_``.
    id_set : str, default="ID test"
        The key of the held-out ID set in ``scores``.
    alpha : float in (0, 1), default=0.05
        Share of ID rows the conformal threshold may reject (use the
        detector's ``contamination`` to compare like with like).
    delta : float in (0, 1), default=None
        Calibration-conditional threshold (see
        :class:`~sklearn_ood.conformal.ConformalDetector`).
    calibration_size : int or float in (0, 1), default=1000
        Number (or share) of ID rows that calibrate.
    y : array-like of shape (n_id,), default=None
        Class labels of the ID rows, to stratify the calibration draw.
    random_state : int, RandomState instance or None, default=0
        Seeds the calibration draw.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``plain`` and ``conformal``: dicts set name -> share of its rows
        accepted; ``conformal_offset``: the conformal threshold;
        ``calibration_rows``: the rows of ``id_set`` that calibrated.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scores = {"ID test": rng.normal(size=5000), "OOD": rng.normal(-3, 1, size=500)}
    >>> result = acceptance_shares(scores, offset=-1.4, calibration_size=1000)

    A threshold at -1.4 accepts 92.5 % of the 4,000 ID test rows; the one
    calibrated on 1,000 rows accepts 96.3 % here (over calibration draws: 95 %
    or a little more on average, with a standard deviation of 0.7 points):

    >>> round(result.plain["ID test"], 3), round(result.conformal["ID test"], 3)
    (0.925, 0.963)
    >>> sorted(result.conformal)
    ['ID test', 'OOD']
    """
    id_scores = np.asarray(scores[id_set], dtype=np.float64)
    calib, test = calibration_split(len(id_scores) if y is None else y, calibration_size,
                                    random_state=random_state)
    threshold = conformal_threshold(id_scores[calib], alpha, delta=delta)

    def shares(t):
        return {name: float(np.mean(np.asarray(s if name != id_set else id_scores[test]) >= t))
                for name, s in scores.items()}

    return Bunch(plain=shares(offset), conformal=shares(threshold), conformal_offset=threshold,
                 calibration_rows=calib)
