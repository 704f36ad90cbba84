"""Fit each detector on the fit set and score the ID test set and every OOD set.

Every spec goes through the same code: ``spec.make(net)`` builds the detector,
``spec.features`` names its input, ``spec.labels`` whether ``fit`` gets the
class labels, ``spec.max_fit`` caps its fit rows and ``spec.max_eval`` the rows
it is scored on. No detector is special-cased by name.
"""

import time
import warnings
from dataclasses import dataclass

import numpy as np

from .._validation import check_head
from .features import head_of
from .result import metric_rows

__all__ = ["Evaluation", "Inputs", "accuracies", "build_detector", "evaluate", "evaluate_all",
           "failure_reason", "fit_detector", "sample_rows", "score_detector"]


@dataclass(frozen=True)
class Inputs:
    """What the detectors read: the models, their cached features, the labels.

    Attributes
    ----------
    nets : dict
        Model kind -> ``torch.nn.Module``.
    features : dict
        Model kind -> image set -> feature name -> array (see
        :func:`~sklearn_ood.benchmark.features.extract_all`).
    labels : dict
        Image set -> class labels (``"fit"``, ``"validation"``, ``"ID test"``).
    eval_sets : tuple of str
        The sets every detector is scored on: ``"ID test"``, then the OOD sets.
    seed : int
        Seeds the fit-row samples and randomised detectors.
    """

    nets: dict
    features: dict
    labels: dict
    eval_sets: tuple
    seed: int

    def of(self, spec, image_set):
        """The input of ``spec``'s detector on one image set."""
        return self.features[spec.model][image_set][spec.features]

    def scored(self, spec, image_set):
        """What ``spec``'s detector is scored on: at most ``spec.max_eval`` rows of the set.

        The sample is seeded by the run's seed and the set's size, so a set and
        its jigsaw puzzles (the same size) keep the same rows.
        """
        X = self.of(spec, image_set)
        return X[sample_rows(len(X), spec.max_eval, self.seed)]


@dataclass(frozen=True)
class Evaluation:
    """One detector's rows: the fitted detector, its scores and times.

    Attributes
    ----------
    name : str
        The row name.
    spec : DetectorSpec
        How the detector was built and fed.
    detector : estimator
        The fitted detector.
    params : dict
        Parameters set over the spec's defaults (empty for a default row).
    scores : dict
        ``"ID test"`` and each OOD set -> scores.
    fit_s, score_s : float
        Seconds to fit (tuned rows: search included) and to score.
    n_fit : int
        Number of rows the detector was fitted on.
    note : str or None
        A line for the report's notes.
    """

    name: str
    spec: object
    detector: object
    params: dict
    scores: dict
    fit_s: float
    score_s: float
    n_fit: int
    note: object = None

    def rows(self):
        """The table rows: one per OOD set, then the average (see ``metric_rows``)."""
        return metric_rows(self.name, self.scores, self.fit_s, self.score_s)


def build_detector(spec, inputs, params=None):
    """The spec's unfitted detector; a ``random_state`` parameter gets the run's seed.

    Parameters
    ----------
    spec : DetectorSpec
    inputs : Inputs
    params : dict, default=None
        Parameters to set over the spec's defaults.

    Returns
    -------
    detector : estimator
    """
    detector = spec.make(inputs.nets[spec.model])
    if "random_state" in detector.get_params(deep=False):
        detector.set_params(random_state=inputs.seed)
    return detector.set_params(**(params or {}))


def sample_rows(n, cap, seed):
    """The rows a detector reads of a set: all, or a seeded sample of ``cap``.

    Parameters
    ----------
    n : int
        Number of rows of the set.
    cap : int or None
        The cap (``None``: no cap).
    seed : int

    Returns
    -------
    rows : slice or ndarray of int
        ``slice(None)`` (all rows), or the sampled rows in increasing order.

    Examples
    --------
    >>> from sklearn_ood.benchmark.evaluate import sample_rows
    >>> sample_rows(5, None, 0), sample_rows(5, 5, 0)
    (slice(None, None, None), slice(None, None, None))
    >>> sample_rows(10, 3, 0)
    array([2, 4, 8])
    """
    if cap is None or n <= cap:
        return slice(None)
    return np.sort(np.random.RandomState(seed).permutation(n)[:cap])


def fit_detector(spec, inputs, params=None):
    """Build the spec's detector and fit it on (at most ``spec.max_fit`` of) the fit set.

    With ``spec.calibrate`` the validation images are its calibration rows
    (``X_cal``, and ``y_cal`` with ``spec.labels``).

    Parameters
    ----------
    spec : DetectorSpec
    inputs : Inputs
    params : dict, default=None
        Parameters to set over the spec's defaults.

    Returns
    -------
    detector : estimator
        Fitted.
    fit_s : float
        Seconds ``fit`` took.
    n_fit : int
        Number of rows it was fitted on.
    """
    detector = build_detector(spec, inputs, params)
    rows = sample_rows(len(inputs.labels["fit"]), spec.max_fit, inputs.seed)
    X = inputs.of(spec, "fit")[rows]
    y = inputs.labels["fit"][rows] if spec.labels else None
    calibration = {}
    if spec.calibrate:
        calibration["X_cal"] = inputs.of(spec, "validation")
        if spec.labels:
            calibration["y_cal"] = inputs.labels["validation"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        start = time.perf_counter()
        detector.fit(X, y, **calibration)
        return detector, time.perf_counter() - start, len(X)


def score_detector(spec, inputs, detector, *, name, params, fit_s, n_fit):
    """Score a fitted detector on every evaluation set (at most ``spec.max_eval`` rows each).

    Parameters
    ----------
    spec : DetectorSpec
    inputs : Inputs
    detector : estimator
        Fitted by :func:`fit_detector`.
    name : str
        The row name.
    params : dict
        Parameters set over the spec's defaults.
    fit_s : float
        Seconds of fitting to report.
    n_fit : int
        Number of rows it was fitted on (for the spec's note).

    Returns
    -------
    Evaluation
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        start = time.perf_counter()
        scores = {s: detector.score_samples(inputs.scored(spec, s)) for s in inputs.eval_sets}
        score_s = time.perf_counter() - start
    note = None if spec.note is None else spec.note(detector, n_fit)
    return Evaluation(name, spec, detector, dict(params or {}), scores, fit_s, score_s, n_fit,
                      note)


def evaluate(spec, inputs, *, params=None):
    """Build the spec's detector, fit it (:func:`fit_detector`), score the evaluation sets.

    Parameters
    ----------
    spec : DetectorSpec
    inputs : Inputs
    params : dict, default=None
        Parameters to set over the spec's defaults.

    Returns
    -------
    Evaluation
        Named ``spec.name``.
    """
    detector, fit_s, n_fit = fit_detector(spec, inputs, params)
    return score_detector(spec, inputs, detector, name=spec.name, params=params, fit_s=fit_s,
                          n_fit=n_fit)


def evaluate_all(specs, inputs, log):
    """:func:`evaluate` each spec with its default parameters, in order, each in isolation.

    Returns
    -------
    evaluations : list of Evaluation
        The rows that ran.
    failed : dict
        Row name -> why it failed (:func:`failure_reason`), for the specs whose
        detector raised an ``Exception``; the other rows are not affected.
    """
    evaluations, failed = [], {}
    for spec in specs:
        log(f"detector {spec.name}")
        try:
            evaluations.append(evaluate(spec, inputs))
        except Exception as exc:  # noqa: BLE001 - one detector never costs the other rows
            failed[spec.name] = failure_reason(exc)
            log(f"  {spec.name} failed: {failed[spec.name]}")
    return evaluations, failed


def failure_reason(exc):
    """A failed row's reason: the exception's type and message, on one line.

    Examples
    --------
    >>> from sklearn_ood.benchmark.evaluate import failure_reason
    >>> failure_reason(ValueError("head expects 32 features\\nbut X has 16."))
    'ValueError: head expects 32 features but X has 16.'
    """
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def accuracies(inputs, log):
    """ID test accuracy of each model, from its cached fc input and its final layer.

    Returns
    -------
    accuracies : dict
        ``"accuracy"`` (the plain model) and ``"accuracy_l2"`` (the L2 model,
        when it ran).
    """
    result = {}
    for kind, net in inputs.nets.items():
        coef, intercept = check_head(head_of(net), dtype=np.float32)
        logits = inputs.features[kind]["ID test"]["h"] @ coef.T + intercept
        accuracy = float(np.mean(np.argmax(logits, axis=1) == inputs.labels["ID test"]))
        result["accuracy" if kind == "plain" else "accuracy_l2"] = accuracy
        log(f"{kind} model: ID test accuracy {accuracy:.4f}")
    return result
