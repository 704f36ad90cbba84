"""Pseudo-OOD tuning: a tuned row after each detector with a grid, and the overall choice.

No OOD data is used. Each candidate of a spec's grid is fitted like the
default row (the same fit rows) and judged on every pseudo-OOD source
(:mod:`~sklearn_ood.benchmark.sources`: held-out classes, and the validation
images vs their jigsaw puzzles, noisy, blurred and pixel-permuted copies) by
FPR@95 (ties: AUROC); the candidate with the default row's parameters is that
row. :func:`~sklearn_ood.selection.combine_sources` combines the sources' ranks:
the tuned row is the spec's candidate with the best mean rank
(:data:`TUNE_RULE`: knobs of one method trade one kind of OOD for another
smoothly, and the mean evens out each source's sampling noise), and the last
row repeats the row with the best worst rank among all rows
(:data:`CHOOSE_RULE`: methods fail in kinds, and the worst rank keeps a method
that one source finds blind out). The winner is scored like a default row
(fitted in the search without its threshold, it is fitted once more for it).
"""

import math
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
from sklearn.model_selection import ParameterGrid

from .._base import scores_only
from ..selection import combine_sources
from .evaluate import build_detector, failure_reason, fit_detector, score_detector
from .result import CHOSEN_NAME, TUNED_SUFFIX
from .sources import SOURCES, class_splits, source_metrics

__all__ = ["CHOOSE_RULE", "TUNE_RULE", "Candidate", "add_tuned_rows", "rule_values", "search",
           "tune_detector"]

#: How the sources' ranks are combined (:func:`~sklearn_ood.selection.combine_sources`)
#: to tune a spec's knobs, and to choose the method among all rows.
TUNE_RULE, CHOOSE_RULE = "mean_rank", "worst_rank"


def add_tuned_rows(evaluations, inputs, log):
    """Add the tuned rows and the row of the best detector on pseudo-OOD.

    Parameters
    ----------
    evaluations : list of Evaluation
        The default rows, in table order.
    inputs : Inputs
        With the validation features and labels and the pseudo-OOD sets.
    log : callable
        Called with one progress message at a time.

    Returns
    -------
    evaluations : list of Evaluation
        Each default row followed by its tuned row (when its spec has a grid),
        then the chosen row.
    info : dict
        ``pseudo`` (row -> source -> pseudo-OOD ``fpr95`` and ``auroc``: the
        default rows, then the tuned ones), ``tuned`` (tuned row -> its
        parameters), ``sources``, ``rule`` (:data:`CHOOSE_RULE`),
        ``tune_rule`` (:data:`TUNE_RULE`), ``held_out`` (the classes each
        held-out split leaves out), ``selection`` (row -> the rule's value
        among all rows, lower is better), ``chosen`` (the row it picks) and
        ``failed`` (row -> why its tuning raised; such a row is left out, the
        others are not affected).
    """
    splits = class_splits(inputs.labels["fit"], inputs.seed)
    log("held-out class splits: " + "; ".join(" ".join(map(str, h)) for h in splits))
    pseudo, failed = {}, {}
    for e in evaluations:
        try:
            pseudo[e.name] = source_metrics(e.spec, e.detector, inputs, {}, splits)
        except Exception as exc:  # noqa: BLE001 - the row stays, out of the choice
            failed[f"{e.name} (pseudo-OOD scoring)"] = failure_reason(exc)
    ordered = []
    for default in evaluations:
        ordered.append(default)
        if default.spec.grid is None:
            continue
        try:
            tuned, tuned_pseudo = tune_detector(
                default.spec, inputs, log, splits,
                default=(default, pseudo[default.name]) if default.name in pseudo else None)
        except Exception as exc:  # noqa: BLE001 - one detector never costs the other rows
            failed[default.name + TUNED_SUFFIX] = failure_reason(exc)
            log(f"  {default.name + TUNED_SUFFIX} failed: {failed[default.name + TUNED_SUFFIX]}")
            continue
        ordered.append(tuned)
        pseudo[tuned.name] = tuned_pseudo
    info = {"pseudo": pseudo, "tuned": {e.name: e.params for e in ordered if e.params},
            "sources": list(SOURCES), "rule": CHOOSE_RULE, "tune_rule": TUNE_RULE,
            "held_out": [h.tolist() for h in splits], "failed": failed}
    ranked = [e for e in ordered if e.name in pseudo]
    if ranked:
        values = rule_values([pseudo[e.name] for e in ranked], CHOOSE_RULE)
        info["selection"] = {e.name: float(v) for e, v in zip(ranked, values)}
        winner = ranked[int(np.argmin(values))]
        info["chosen"] = winner.name
        ordered.append(replace(winner, name=_chosen_name(winner)))
    return ordered, info


def rule_values(pseudo, rule):
    """A rule's value of each candidate (lower is better) from its per-source metrics.

    Each source ranks the candidates by FPR95, ties broken by AUROC (a NaN
    ranks last); ``rule`` combines the ranks.

    Parameters
    ----------
    pseudo : list of dict
        Per candidate: source -> ``{"fpr95", "auroc"}`` for every source of
        :data:`~sklearn_ood.benchmark.sources.SOURCES`.
    rule : {"worst_rank", "mean_rank"}

    Returns
    -------
    values : ndarray of shape (n_candidates,)

    Examples
    --------
    >>> from sklearn_ood.benchmark.tune import rule_values
    >>> sources = ("held_out", "jigsaw", "noise", "blur", "permute")
    >>> a = dict.fromkeys(sources, {"fpr95": 0.2, "auroc": 0.9})    # 2nd everywhere
    >>> b = dict(dict.fromkeys(sources, {"fpr95": 0.1, "auroc": 0.95}),
    ...          jigsaw={"fpr95": 0.9, "auroc": 0.5})                # last on jigsaw
    >>> c = dict.fromkeys(sources, {"fpr95": 0.3, "auroc": 0.8})
    >>> [round(float(v), 3) for v in rule_values([a, b, c], "worst_rank")]
    [2.225, 3.175, 3.35]
    >>> [round(float(v), 3) for v in rule_values([a, b, c], "mean_rank")]
    [1.8, 1.4, 2.8]
    """
    def key(m):
        fpr, auroc = m["fpr95"], m["auroc"]
        if math.isnan(fpr) or math.isnan(auroc):
            return np.nan
        return -fpr + 1e-4 * auroc  # FPR95 steps are >= 1/n_ood >= 1e-4 apart here

    scores = np.array([[key(p[s]) for s in SOURCES] for p in pseudo], dtype=np.float64)
    return combine_sources(scores, rule)


def tune_detector(spec, inputs, log, splits, default=None):
    """Search the spec's grid on pseudo-OOD, then score the fitted winner like a default row.

    ``default`` (the default row's Evaluation and its pseudo-OOD metrics) is
    passed on to :func:`search`.

    Returns
    -------
    evaluation : Evaluation
        Named ``spec.name + TUNED_SUFFIX``; its ``fit_s`` is the whole search.
    pseudo : dict
        The winner's per-source pseudo-OOD ``fpr95`` and ``auroc``.
    """
    grid = ParameterGrid(spec.grid(len(inputs.labels["fit"])))
    log(f"tuning {spec.name} on pseudo-OOD ({len(grid)} candidates)")
    start = time.perf_counter()
    best = search(spec, grid, inputs, log, splits, default)
    search_s = time.perf_counter() - start
    tuned = score_detector(spec, inputs, best.detector, name=spec.name + TUNED_SUFFIX,
                           params=best.params, fit_s=search_s, n_fit=best.n_fit)
    log(f"  {tuned.name}: {_format(tuned.params)}")
    return tuned, best.pseudo


@dataclass(frozen=True)
class Candidate:
    """One candidate of a search: its parameters, detector and pseudo-OOD metrics.

    ``detector`` is fitted on the fit rows, without its threshold (unless its
    fit gave the training scores anyway), or ``None`` when the candidate shared
    another's fit (see :func:`search`); the search's winner has both.
    """

    params: dict
    detector: object
    n_fit: int
    pseudo: dict


def search(spec, grid, inputs, log, splits, default=None):
    """Fit each candidate of ``grid`` like the spec's rows; keep the rule's best.

    Each candidate is fitted on the spec's fit rows (:func:`~.evaluate.fit_detector`)
    and judged on every source (:func:`~.sources.source_metrics`); a candidate
    with the parameters of ``default``'s detector is that row's detector and
    metrics, not fitted again. The candidates are compared by
    :func:`rule_values` with :data:`TUNE_RULE` (the first among equals wins). A candidate whose fit
    or scoring raises an ``Exception`` loses, as with ``GridSearchCV``'s
    ``error_score=nan``, and is logged; if every candidate fails, the last
    error is raised.

    Only the scores of a candidate are read, so it is fitted without its
    threshold (:func:`~sklearn_ood._base.scores_only`: scoring the offset
    sample, leave-one-out for KNN, a forward pass per image for a model
    detector, was most of the search's cost); the winner is then fitted again
    with it (if that raises, the next best candidate wins).
    Candidates that differ only in the detector's ``_scoring_param`` (ODIN's
    ``magnitude``, AdaSCALE's ``percentiles``: its fit does not depend on it)
    share one fit per fold and one pass per image set, which computes what
    they share once (the input gradient, the features); a failure there
    fails them all.

    Parameters
    ----------
    spec : DetectorSpec
    grid : ParameterGrid
    inputs : Inputs
    log : callable
    splits : list of ndarray
        The held-out classes of each split.
    default : (Evaluation, dict) or None, default=None
        The default row and its pseudo-OOD metrics.

    Returns
    -------
    best : Candidate
    """
    param = _scoring_param(spec, inputs, grid)
    found, error = {}, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for group in _groups(grid, param):
            todo = []
            for i, params in group:
                if default is not None and _has_params(default[0].detector, params):
                    row, pseudo = default
                    found[i] = Candidate(params, row.detector, row.n_fit, pseudo)
                else:
                    todo.append((i, params))
            if not todo:
                continue
            first = todo[0][1]
            try:
                with scores_only():  # a candidate's threshold is never read
                    detector, _, n_fit = fit_detector(spec, inputs, first)
                if param is None:
                    pseudo = [source_metrics(spec, detector, inputs, first, splits)]
                else:
                    pseudo = source_metrics(spec, detector, inputs, first, splits,
                                            values=[params[param] for _, params in todo])
            except Exception as exc:  # noqa: BLE001 - a failing candidate loses
                for _, params in todo:
                    log(f"  {_format(params)} failed: {exc!r}")
                error = exc
                continue
            for k, ((i, params), metrics) in enumerate(zip(todo, pseudo)):
                found[i] = Candidate(params, detector if k == 0 else None, n_fit, metrics)
        if not found:
            raise error
        return _winner(spec, inputs, [found[i] for i in sorted(found)], log)


def _winner(spec, inputs, candidates, log):
    """The best candidate by :data:`TUNE_RULE`, fitted with its threshold.

    A candidate fitted without its threshold (or not fitted: it shared the
    fit of another) is fitted again; if that raises, the next best one wins,
    as if its search fit had failed.
    """
    values = rule_values([c.pseudo for c in candidates], TUNE_RULE)
    best, error = int(np.argmin(values)), None
    for i in [best, *(i for i in np.argsort(values, kind="stable") if i != best)]:
        if hasattr(candidates[i].detector, "offset_"):
            return candidates[i]
        try:
            detector, _, n_fit = fit_detector(spec, inputs, candidates[i].params)
        except Exception as exc:  # noqa: BLE001 - a failing candidate loses
            log(f"  {_format(candidates[i].params)} failed: {exc!r}")
            error = exc
            continue
        return replace(candidates[i], detector=detector, n_fit=n_fit)
    raise error


def _scoring_param(spec, inputs, grid):
    """The grid's parameter the spec's detector scores several values of in one pass, or None.

    A model detector's ``_scoring_param`` (its fit does not depend on it):
    the candidates that differ only in it share one fit and one pass.
    """
    param = getattr(build_detector(spec, inputs), "_scoring_param", None)
    return param if param is not None and any(param in params for params in grid) else None


def _groups(grid, param):
    """The candidates ``(index, params)`` of ``grid`` in groups that differ only in
    ``param`` (``None``: one candidate per group), in grid order."""
    groups = {}
    for i, params in enumerate(grid):
        key = i if param is None else repr(sorted((k, v) for k, v in params.items()
                                                  if k != param))
        groups.setdefault(key, []).append((i, params))
    return list(groups.values())


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
