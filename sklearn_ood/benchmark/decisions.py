"""What each detector decides: the share of each set accepted at its deployed thresholds.

A row's detector is deployed with a threshold: ``predict`` accepts an input
(+1) when its score is at least the threshold. Two thresholds are compared:

* **plain**: the detector's ``offset_``, the ``contamination`` quantile of the
  scores of the rows it was fitted on;
* **conformal**: the finite-sample conformal quantile
  (:func:`~sklearn_ood.conformal.conformal_threshold`) of the scores of the
  validation images, which neither the models nor the detector's modelling
  statistics were fitted on, so that an ID input exchangeable with them is
  accepted with probability at least ``1 - contamination``. The detectors
  with calibrating statistics fitted them on the same images (one
  temperature, a few scales or templates: a small departure from
  exchangeability).

The ID test and OOD sets are scored once, by the row itself; only the
validation images are scored here.
"""

import warnings

import numpy as np

from ..conformal import conformal_threshold
from .evaluate import failure_reason

__all__ = ["decide"]


def decide(evaluations, inputs):
    """Each row's thresholds and the share of every set each one accepts.

    Parameters
    ----------
    evaluations : list of Evaluation
        Fitted rows with their scores (``"ID test"`` and each OOD set).
    inputs : Inputs
        With the ``"validation"`` features: the calibration images (at most
        the row's ``max_eval``, as its other sets).

    Returns
    -------
    thresholds : dict
        Row -> ``{"offset", "conformal", "alpha", "n_calibration", "n_test"}``
        (``n_test``: the ID test rows the shares are measured on; the
        conformal threshold is ``None`` when it cannot be computed: too few
        validation images for ``alpha``, or non-finite validation scores).
    accepted : dict
        Row -> ``{"plain": {set: share}, "conformal": {set: share}}``, shares
        in [0, 1] of the rows of each set with a score ``>=`` the threshold.
    failed : dict
        ``"<row> (decisions)"`` -> the error its validation scoring raised;
        such a row is left out of ``thresholds`` and ``accepted``.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from sklearn_ood import Energy
    >>> from sklearn_ood.benchmark.decisions import decide
    >>> rng = np.random.default_rng(0)
    >>> head = (np.eye(4, 8), np.zeros(4))
    >>> detector = Energy(head=head).fit(rng.normal(size=(500, 8)))
    >>> val = rng.normal(size=(400, 8))
    >>> inputs = SimpleNamespace(scored=lambda spec, image_set: val)
    >>> row = SimpleNamespace(name="Energy", spec=None, detector=detector, scores={
    ...     "ID test": detector.score_samples(rng.normal(size=(1000, 8))),
    ...     "far": detector.score_samples(rng.normal(3, 1, size=(1000, 8)))})
    >>> thresholds, accepted, failed = decide([row], inputs)
    >>> thresholds["Energy"]["n_calibration"], thresholds["Energy"]["alpha"]
    (400, 0.05)
    >>> 0.9 < accepted["Energy"]["conformal"]["ID test"] < 1.0
    True
    """
    thresholds, accepted, failed = {}, {}, {}
    for e in evaluations:
        try:
            thresholds[e.name], accepted[e.name] = _decide(e, inputs)
        except Exception as exc:  # noqa: BLE001 - one row never costs the others
            failed[f"{e.name} (decisions)"] = failure_reason(exc)
    return thresholds, accepted, failed


def _decide(e, inputs):
    detector = e.detector
    offset = float(detector.offset_)
    alpha = float(getattr(detector, "contamination", 0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        calibration = np.asarray(detector.score_samples(
            inputs.scored(e.spec, "validation")), dtype=np.float64)
    try:
        conformal = conformal_threshold(calibration, alpha)
    except ValueError:  # too few validation images for alpha, or NaN scores
        conformal = None
    threshold = {"offset": offset, "conformal": conformal, "alpha": alpha,
                 "n_calibration": int(calibration.size),
                 "n_test": int(np.size(e.scores["ID test"]))}
    return threshold, {"plain": _shares(e.scores, offset),
                       "conformal": None if conformal is None else _shares(e.scores, conformal)}


def _shares(scores, threshold):
    return {name: float(np.mean(np.asarray(s, dtype=np.float64) >= threshold))
            for name, s in scores.items()}
