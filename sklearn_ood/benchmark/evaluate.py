"""Fit each detector on the fit set and score the ID test set and every OOD set.

Every spec goes through the same code: ``spec.make(net)`` builds the detector,
``spec.features`` names its input, ``spec.labels`` whether ``fit`` gets the
class labels and ``spec.max_fit`` caps its fit rows. No detector is
special-cased by name.
"""

import time
import warnings
from dataclasses import dataclass

import numpy as np

from .._validation import check_head
from .features import head_of
from .result import metric_rows

__all__ = ["Evaluation", "Inputs", "accuracies", "build_detector", "evaluate", "evaluate_all",
           "fit_rows"]


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


def fit_rows(n, max_fit, seed):
    """The fit rows a detector learns from: all, or a seeded sample of ``max_fit``.

    Parameters
    ----------
    n : int
        Number of fit rows.
    max_fit : int or None
        The cap (``None``: no cap).
    seed : int

    Returns
    -------
    rows : slice or ndarray of int
        ``slice(None)`` (all rows), or the sampled rows in increasing order.

    Examples
    --------
    >>> from sklearn_ood.benchmark.evaluate import fit_rows
    >>> fit_rows(5, None, 0), fit_rows(5, 5, 0)
    (slice(None, None, None), slice(None, None, None))
    >>> fit_rows(10, 3, 0)
    array([2, 4, 8])
    """
    if max_fit is None or n <= max_fit:
        return slice(None)
    return np.sort(np.random.RandomState(seed).permutation(n)[:max_fit])


def evaluate(spec, inputs, *, params=None):
    """Build the spec's detector, fit it on ``spec.fit_set``, score the evaluation sets.

    Parameters
    ----------
    spec : DetectorSpec
    inputs : Inputs
    params : dict, default=None
        Parameters to set over the spec's defaults (a tuned row).

    Returns
    -------
    Evaluation
        Named ``spec.name``.
    """
    detector = build_detector(spec, inputs, params)
    rows = fit_rows(len(inputs.labels[spec.fit_set]), spec.max_fit, inputs.seed)
    X = inputs.of(spec, spec.fit_set)[rows]
    y = inputs.labels[spec.fit_set][rows] if spec.labels else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        start = time.perf_counter()
        detector.fit(X, y)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        scores = {s: detector.score_samples(inputs.of(spec, s)) for s in inputs.eval_sets}
        score_s = time.perf_counter() - start
    note = None if spec.note is None else spec.note(detector, len(X))
    return Evaluation(spec.name, spec, detector, dict(params or {}), scores, fit_s, score_s,
                      note)


def evaluate_all(specs, inputs, log):
    """:func:`evaluate` each spec with its default parameters, in order."""
    evaluations = []
    for spec in specs:
        log(f"detector {spec.name}")
        evaluations.append(evaluate(spec, inputs))
    return evaluations


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
