"""OOD-detection metrics and scikit-learn scorers (a leaf module).

Conventions, shared with every estimator of the package:

- ``y_true`` holds labels where a **negative** value marks an OOD sample and any
  other value an in-distribution (ID) sample (class labels can be passed as
  they are). A boolean array is read as an "is ID" mask.
- ``score``: higher means more in-distribution (``score_samples`` of a detector).
- Every curve is the exact step curve over all distinct thresholds: no
  interpolation, no subsampling; tied scores move together.
"""

import numpy as np
from sklearn.metrics import average_precision_score, make_scorer, roc_auc_score, roc_curve
from sklearn.utils.validation import column_or_1d

from ._validation import check_labels

_POSITIVES = ("id", "ood")


def _is_id_and_score(y_true, score):
    score = column_or_1d(score).astype(np.float64)
    _, is_id = check_labels(column_or_1d(y_true), len(score), name="y_true")
    if not np.all(np.isfinite(score)):
        raise ValueError("score contains NaN or infinity.")
    n_id = int(is_id.sum())
    if n_id == 0 or n_id == len(is_id):
        raise ValueError(
            f"OOD metrics need both ID and OOD samples; got {n_id} ID and "
            f"{len(is_id) - n_id} OOD. Mark OOD rows with a negative label (e.g. -1)."
        )
    return is_id, score


def _check_positive(positive):
    if positive not in _POSITIVES:
        raise ValueError(f"positive must be 'id' or 'ood'; got {positive!r}.")


def auroc(y_true, score):
    """Area under the ROC curve of ID-vs-OOD separation.

    Equals the probability that a random ID sample scores higher than a random
    OOD sample (ties count 1/2); the same whichever class is called positive.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels; negative marks OOD (or a boolean "is ID" mask).
    score : array-like of shape (n_samples,)
        Higher means more in-distribution.

    Returns
    -------
    auroc : float

    Examples
    --------
    >>> from sklearn_ood.metrics import auroc
    >>> auroc([0, 1, -1, -1], [0.9, 0.8, 0.85, 0.1])
    0.75
    """
    is_id, score = _is_id_and_score(y_true, score)
    return float(roc_auc_score(is_id, score))


def aupr(y_true, score, *, positive="id"):
    """Area under the precision-recall curve (average precision, a step sum).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels; negative marks OOD (or a boolean "is ID" mask).
    score : array-like of shape (n_samples,)
        Higher means more in-distribution.
    positive : {"id", "ood"}, default="id"
        ``"id"`` gives AUPR-In (ID positive, ranked by ``score``); ``"ood"``
        gives AUPR-Out (OOD positive, ranked by ``-score``).

    Returns
    -------
    aupr : float

    Examples
    --------
    >>> from sklearn_ood.metrics import aupr
    >>> aupr([0, 0, -1], [0.9, 0.1, 0.5], positive="id")
    0.8333333333333333
    """
    _check_positive(positive)
    is_id, score = _is_id_and_score(y_true, score)
    if positive == "id":
        return float(average_precision_score(is_id, score))
    return float(average_precision_score(~is_id, -score))


def fpr_at_tpr(y_true, score, *, tpr=0.95, positive="id"):
    """False-positive rate at the first threshold whose TPR reaches ``tpr``.

    With ``positive="id"`` (the convention of the papers this package
    implements): the threshold is the largest score ``t`` such that at least
    ``tpr`` of the ID samples have ``score >= t``; the result is the fraction
    of OOD samples with ``score >= t`` (OOD accepted as ID). With
    ``positive="ood"`` (OpenOOD, pytorch-ood): the roles swap, OOD samples are
    detected by ``-score`` and the result is the fraction of ID samples
    flagged as OOD when ``tpr`` of the OOD samples are. Ties move together, so
    the achieved TPR may exceed ``tpr``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels; negative marks OOD (or a boolean "is ID" mask).
    score : array-like of shape (n_samples,)
        Higher means more in-distribution.
    tpr : float, default=0.95
        Target true-positive rate in (0, 1].
    positive : {"id", "ood"}, default="id"

    Returns
    -------
    fpr : float

    Examples
    --------
    >>> from sklearn_ood.metrics import fpr_at_tpr
    >>> y = [0, 0, 0, 0, -1, -1]
    >>> fpr_at_tpr(y, [4, 3, 2, 1, 2.5, 0], tpr=0.75)
    0.5
    """
    _check_positive(positive)
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1]; got {tpr!r}.")
    is_id, score = _is_id_and_score(y_true, score)
    positives, ranking = (is_id, score) if positive == "id" else (~is_id, -score)
    fprs, tprs, _ = roc_curve(positives, ranking, drop_intermediate=False)
    return float(fprs[np.searchsorted(tprs, tpr, side="left")])


def _fpr95(y_true, score):
    return fpr_at_tpr(y_true, score, tpr=0.95, positive="id")


def _aupr_in(y_true, score):
    return aupr(y_true, score, positive="id")


def _aupr_out(y_true, score):
    return aupr(y_true, score, positive="ood")


def _scorer(metric, greater_is_better=True):
    # Every metric here depends on the ranking only, which decision_function =
    # score_samples - offset_ shares (up to ties its rounding can make); scores
    # need no threshold, so a search may fit its candidates without one.
    return make_scorer(metric, response_method=("score_samples", "decision_function"),
                       greater_is_better=greater_is_better)


#: Scorers for ``GridSearchCV(scoring=...)``: they rank by ``score_samples``
#: (``decision_function`` for an estimator without it) and read negative ``y``
#: as OOD. ``fpr95`` is negated (scikit-learn maximises scores).
auroc_scorer = _scorer(auroc)
aupr_in_scorer = _scorer(_aupr_in)
aupr_out_scorer = _scorer(_aupr_out)
fpr95_scorer = _scorer(_fpr95, greater_is_better=False)

#: All scorers by name, for multi-metric search: ``scoring=OOD_SCORERS``.
OOD_SCORERS = {
    "auroc": auroc_scorer,
    "aupr_in": aupr_in_scorer,
    "aupr_out": aupr_out_scorer,
    "fpr95": fpr95_scorer,
}
