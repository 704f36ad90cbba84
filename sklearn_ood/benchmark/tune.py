"""Pseudo-OOD tuning: a tuned row after each detector with a grid, and the overall choice.

No OOD data is used. Each candidate of a spec's grid is fitted like the
default row (the same fit rows) and judged on the validation images versus
their 3x3 jigsaw puzzles, by FPR@95 (ties: AUROC); the candidate with the
default row's parameters is that row. The winner, already fitted, is scored
like a default row: nothing is fitted twice. The last row
repeats the detector, default or tuned, with the best pseudo-OOD score.
"""

import math
import time
import warnings
from dataclasses import dataclass, replace

from sklearn.model_selection import ParameterGrid

from .evaluate import failure_reason, fit_detector, score_detector
from .result import CHOSEN_NAME, TUNED_SUFFIX, ood_metrics

__all__ = ["Candidate", "add_tuned_rows", "lowest_fpr95", "pseudo_ood_metrics", "search",
           "tune_detector"]


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
        rows, then the tuned ones), ``tuned`` (tuned row -> its parameters),
        ``chosen`` (the row with the best pseudo-OOD score) and ``failed``
        (row -> why its tuning raised; such a row is left out, the others
        are not affected).
    """
    pseudo, failed = {}, {}
    for e in evaluations:
        try:
            pseudo[e.name] = pseudo_ood_metrics(e.spec, e.detector, inputs)
        except Exception as exc:  # noqa: BLE001 - the row stays, out of the choice
            failed[f"{e.name} (pseudo-OOD scoring)"] = failure_reason(exc)
    ordered = []
    for default in evaluations:
        ordered.append(default)
        if default.spec.grid is None:
            continue
        try:
            tuned, tuned_pseudo = tune_detector(
                default.spec, inputs, log,
                default=(default, pseudo[default.name]) if default.name in pseudo else None)
        except Exception as exc:  # noqa: BLE001 - one detector never costs the other rows
            failed[default.name + TUNED_SUFFIX] = failure_reason(exc)
            log(f"  {default.name + TUNED_SUFFIX} failed: {failed[default.name + TUNED_SUFFIX]}")
            continue
        ordered.append(tuned)
        pseudo[tuned.name] = tuned_pseudo
    info = {"pseudo": pseudo, "tuned": {e.name: e.params for e in ordered if e.params},
            "failed": failed}
    ranked = [e for e in ordered if e.name in pseudo]
    if ranked:
        winner = ranked[lowest_fpr95([pseudo[e.name] for e in ranked])]
        info["chosen"] = winner.name
        ordered.append(replace(winner, name=_chosen_name(winner)))
    return ordered, info


def pseudo_ood_metrics(spec, detector, inputs):
    """Pseudo-OOD FPR95 and AUROC of a fitted detector: validation images vs their puzzles."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = [detector.score_samples(inputs.scored(spec, s))
                  for s in ("validation", "pseudo-OOD")]
    m = ood_metrics(*scores)
    return {"fpr95": m["fpr95"], "auroc": m["auroc"]}


def tune_detector(spec, inputs, log, default=None):
    """Search the spec's grid on pseudo-OOD, then score the fitted winner like a default row.

    ``default`` (the default row's Evaluation and its pseudo-OOD metrics) is
    passed on to :func:`search`.

    Returns
    -------
    evaluation : Evaluation
        Named ``spec.name + TUNED_SUFFIX``; its ``fit_s`` is the whole search.
    pseudo : dict
        The winner's pseudo-OOD ``fpr95`` and ``auroc``.
    """
    grid = ParameterGrid(spec.grid(len(inputs.labels["fit"])))
    log(f"tuning {spec.name} on pseudo-OOD ({len(grid)} candidates)")
    start = time.perf_counter()
    best = search(spec, grid, inputs, log, default)
    search_s = time.perf_counter() - start
    tuned = score_detector(spec, inputs, best.detector, name=spec.name + TUNED_SUFFIX,
                           params=best.params, fit_s=search_s, n_fit=best.n_fit)
    log(f"  {tuned.name}: {_format(tuned.params)} (pseudo FPR95 {best.pseudo['fpr95']:.3f})")
    return tuned, best.pseudo


@dataclass(frozen=True)
class Candidate:
    """One fitted candidate of a search: its parameters, detector and pseudo-OOD metrics."""

    params: dict
    detector: object
    n_fit: int
    pseudo: dict


def search(spec, grid, inputs, log, default=None):
    """Fit each candidate of ``grid`` like the spec's rows; keep the best on pseudo-OOD.

    Each candidate is fitted on the spec's fit rows (:func:`~.evaluate.fit_detector`)
    and judged by :func:`pseudo_ood_metrics`; a candidate with the parameters
    of ``default``'s detector is that row's detector and metrics, not fitted
    again. Only the best candidate so far is
    kept (:func:`lowest_fpr95` order: the first of the lowest FPR95, ties broken
    by the highest AUROC). A candidate whose fit or scoring raises an
    ``Exception`` loses, as with ``GridSearchCV``'s ``error_score=nan``, and is
    logged; if every candidate fails, the last error is raised.

    Parameters
    ----------
    spec : DetectorSpec
    grid : ParameterGrid
    inputs : Inputs
    log : callable
    default : (Evaluation, dict) or None, default=None
        The default row and its pseudo-OOD metrics.

    Returns
    -------
    best : Candidate
    """
    best, error = None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for params in grid:
            if default is not None and _has_params(default[0].detector, params):
                row, pseudo = default
                candidate = Candidate(params, row.detector, row.n_fit, pseudo)
            else:
                try:
                    detector, _, n_fit = fit_detector(spec, inputs, params)
                    candidate = Candidate(params, detector, n_fit,
                                          pseudo_ood_metrics(spec, detector, inputs))
                except Exception as exc:  # noqa: BLE001 - a failing candidate loses
                    log(f"  {_format(params)} failed: {exc!r}")
                    error = exc
                    continue
            if best is None or lowest_fpr95([best.pseudo, candidate.pseudo]) == 1:
                best = candidate
    if best is None:
        raise error
    return best


def lowest_fpr95(pseudo):
    """Index of the lowest FPR95, ties broken by the highest AUROC; the first among equals.

    A NaN metric (a detector scoring NaN) ranks last.

    Parameters
    ----------
    pseudo : list of dict
        Each with ``fpr95`` and ``auroc``.

    Returns
    -------
    index : int

    Examples
    --------
    >>> from sklearn_ood.benchmark.tune import lowest_fpr95
    >>> lowest_fpr95([{"fpr95": 0.2, "auroc": 0.99}, {"fpr95": 0.1, "auroc": 0.9},
    ...               {"fpr95": 0.1, "auroc": 0.95}, {"fpr95": float("nan"), "auroc": 1.0}])
    2
    """
    def key(i):
        fpr, auroc = pseudo[i]["fpr95"], pseudo[i]["auroc"]
        return (math.inf if math.isnan(fpr) else fpr, math.inf if math.isnan(auroc) else -auroc)

    return min(range(len(pseudo)), key=key)


def _has_params(detector, params):
    """Whether ``detector`` already has ``params`` (same types and values)."""
    current = detector.get_params(deep=False)

    def same(a, b):
        try:
            return type(a) is type(b) and bool(a == b)
        except (TypeError, ValueError):  # e.g. arrays: not compared, fitted again
            return False

    return all(name in current and same(current[name], value)
               for name, value in params.items())


def _format(params):
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _chosen_name(winner):
    name = f"{CHOSEN_NAME}: {winner.name}"
    return f"{name} [{_format(winner.params)}]" if winner.params else name
