"""Pseudo-OOD tuning: a tuned row after each detector with a grid, and the overall choice.

No OOD data is used. Each candidate of a spec's grid is fitted on the fit-set
features and judged on the validation images versus their 3x3 jigsaw
puzzles, by FPR@95 (ties: AUROC): ``GridSearchCV`` with that one split. The
winner is evaluated like a default row (:func:`~.evaluate.evaluate`). The last
row repeats the detector, default or tuned, with the best pseudo-OOD score.
"""

import time
import warnings
from dataclasses import replace

import numpy as np
from sklearn.model_selection import GridSearchCV, ParameterGrid

from ..metrics import OOD_SCORERS
from .evaluate import build_detector, evaluate
from .result import CHOSEN_NAME, TUNED_SUFFIX, ood_metrics

__all__ = ["add_tuned_rows", "lowest_fpr95", "pseudo_ood_metrics", "search", "tune_detector"]

#: The search's metrics; ``fpr95`` is negated (scikit-learn maximises).
SCORING = {"fpr95": OOD_SCORERS["fpr95"], "auroc": OOD_SCORERS["auroc"]}


def add_tuned_rows(evaluations, inputs, log):
    """Add the tuned rows and the row of the best detector on pseudo-OOD.

    Parameters
    ----------
    evaluations : list of Evaluation
        The default rows, in table order.
    inputs : Inputs
        With the ``"validation"`` and ``"pseudo-OOD"`` features and labels.
    log : callable
        Called with one progress message at a time.

    Returns
    -------
    evaluations : list of Evaluation
        Each default row followed by its tuned row (when its spec has a grid),
        then the chosen row.
    info : dict
        ``pseudo`` (row -> pseudo-OOD ``fpr95`` and ``auroc``: the default
        rows, then the tuned ones), ``tuned`` (tuned row -> its parameters)
        and ``chosen`` (the row with the best pseudo-OOD score).
    """
    pseudo = {e.name: pseudo_ood_metrics(e, inputs) for e in evaluations}
    ordered = []
    for default in evaluations:
        ordered.append(default)
        if default.spec.grid is not None:
            tuned, tuned_pseudo = tune_detector(default.spec, inputs, log)
            ordered.append(tuned)
            pseudo[tuned.name] = tuned_pseudo
    info = {"pseudo": pseudo, "tuned": {e.name: e.params for e in ordered if e.params}}
    if ordered:  # the first of the lowest FPR95, ties broken by the highest AUROC
        winner = min(ordered, key=lambda e: (pseudo[e.name]["fpr95"], -pseudo[e.name]["auroc"]))
        info["chosen"] = winner.name
        ordered.append(replace(winner, name=_chosen_name(winner)))
    return ordered, info


def pseudo_ood_metrics(evaluation, inputs):
    """Pseudo-OOD FPR95 and AUROC of a fitted detector: validation images vs their puzzles."""
    spec = evaluation.spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = [evaluation.detector.score_samples(inputs.of(spec, s))
                  for s in ("validation", "pseudo-OOD")]
    m = ood_metrics(*scores)
    return {"fpr95": m["fpr95"], "auroc": m["auroc"]}


def tune_detector(spec, inputs, log):
    """Search the spec's grid on pseudo-OOD, then evaluate the winner like a default row.

    Returns
    -------
    evaluation : Evaluation
        Named ``spec.name + TUNED_SUFFIX``; its ``fit_s`` includes the search.
    pseudo : dict
        The winner's pseudo-OOD ``fpr95`` and ``auroc``.
    """
    grid = spec.grid(len(inputs.labels["fit"]))
    log(f"tuning {spec.name} on pseudo-OOD ({len(ParameterGrid(grid))} candidates)")
    start = time.perf_counter()
    results = search(spec, grid, inputs).cv_results_
    search_s = time.perf_counter() - start
    best = lowest_fpr95(results)
    tuned = evaluate(spec, inputs, params=results["params"][best])
    tuned = replace(tuned, name=spec.name + TUNED_SUFFIX, fit_s=search_s + tuned.fit_s)
    fpr, auroc = _fpr_auroc(results)
    pseudo = {"fpr95": float(fpr[best]), "auroc": float(auroc[best])}
    log(f"  {tuned.name}: {_format(tuned.params)} (pseudo FPR95 {pseudo['fpr95']:.3f})")
    return tuned, pseudo


def search(spec, grid, inputs):
    """``GridSearchCV`` over ``grid``: fit on the fit rows, test on validation + puzzles.

    The one split trains on the fit rows and tests on the validation rows and
    their jigsaw puzzles (labelled -1, so every detector's ``fit`` drops them).
    The search does not refit (``refit=False``): :func:`lowest_fpr95` picks the
    winner from ``cv_results_`` and :func:`tune_detector` fits it on the fit rows.

    Returns
    -------
    search : GridSearchCV
        Fitted; ``cv_results_`` is read.
    """
    X_fit, X_val, X_pseudo = (inputs.of(spec, s) for s in ("fit", "validation", "pseudo-OOD"))
    y_fit, y_val = inputs.labels["fit"], inputs.labels["validation"]
    y_pseudo = np.full(len(X_pseudo), -1, dtype=np.result_type(y_val.dtype, np.int8))
    X, y = np.concatenate([X_fit, X_val, X_pseudo]), np.concatenate([y_fit, y_val, y_pseudo])
    split = [(np.arange(len(y_fit)), np.arange(len(y_fit), len(y)))]
    searcher = GridSearchCV(build_detector(spec, inputs), grid, scoring=SCORING,
                            refit=False, cv=split)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return searcher.fit(X, y)


def lowest_fpr95(cv_results):
    """Index of the candidate with the lowest FPR95, ties broken by the highest AUROC.

    A candidate whose fit or scoring failed (NaN) comes last, and among
    equals the first candidate wins.

    Parameters
    ----------
    cv_results : dict
        ``GridSearchCV.cv_results_`` with ``mean_test_fpr95`` (negated FPR)
        and ``mean_test_auroc``.

    Returns
    -------
    index : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.benchmark.tune import lowest_fpr95
    >>> lowest_fpr95({"mean_test_fpr95": np.array([-0.2, -0.1, -0.1, np.nan]),
    ...               "mean_test_auroc": np.array([0.99, 0.9, 0.95, np.nan])})
    2
    """
    fpr, auroc = _fpr_auroc(cv_results)
    return int(np.lexsort((-auroc, fpr))[0])


def _fpr_auroc(cv_results):
    """FPR95 and AUROC per candidate; NaN (failed) gives FPR95 +inf, AUROC -inf."""
    fpr = -np.nan_to_num(cv_results["mean_test_fpr95"], nan=-np.inf)
    auroc = np.nan_to_num(cv_results["mean_test_auroc"], nan=-np.inf)
    return fpr, auroc


def _format(params):
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _chosen_name(winner):
    name = f"{CHOSEN_NAME}: {winner.name}"
    return f"{name} [{_format(winner.params)}]" if winner.params else name
