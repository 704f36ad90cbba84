"""What a benchmark run returns: :class:`BenchmarkResult`, its rows and their metrics.

The evaluation and tuning stages build rows with :func:`metric_rows`;
:mod:`~sklearn_ood.benchmark.report` reads a :class:`BenchmarkResult` and
needs nothing else of the run.
"""

from dataclasses import dataclass, field

import numpy as np

from .. import metrics

__all__ = [
    "CHOSEN_NAME", "GROUP_SUFFIX", "METRIC_COLUMNS", "NEAR_CHANCE", "ROW_COLUMNS", "TUNED_SUFFIX",
    "BenchmarkResult", "decision_summary", "finite_for_ranking", "group_rows", "metric_rows", "near_chance",
    "ood_metrics",
]

METRIC_COLUMNS = ("auroc", "fpr95", "aupr_in", "aupr_out")
#: The columns of a row (:attr:`BenchmarkResult.rows`, ``results.csv``).
ROW_COLUMNS = ("detector", "ood_set", *METRIC_COLUMNS, "fit_s", "score_s")
#: A model's ID test accuracy below this multiple of chance (1 / classes) is near chance.
NEAR_CHANCE = 1.5
#: Appended to a detector's name for its row tuned on pseudo-OOD.
TUNED_SUFFIX = ", tuned (pseudo-OOD)"
#: Start of the name of the row repeating the detector the pseudo-OOD rule picks.
CHOSEN_NAME = "tuned, method chosen by pseudo-OOD"
#: Appended to an OOD group's name (e.g. ``"near"``) for the ``ood_set`` of its average row.
GROUP_SUFFIX = " average"


@dataclass
class BenchmarkResult:
    """What :func:`~sklearn_ood.benchmark.run_benchmark` returns.

    Attributes
    ----------
    rows : list of dict
        One per detector x OOD set, then one per OOD group (``ood_set``
        ``"near average"``, ...) when the ID set defines groups, then one
        ``ood_set="average"`` (over all OOD sets) per detector: ``detector,
        ood_set, auroc, fpr95, aupr_in, aupr_out, fit_s, score_s``.
    scores : dict
        Detector name -> {"ID test" or OOD set name -> scores}, as returned
        by ``score_samples`` (may hold infinities; metrics rank them).
    ood_sets : list of str
        The OOD sets, in table order.
    config : dict
        The settings actually used.
    info : dict
        ``accuracy`` (and ``accuracy_l2``) on the ID test set, ``timings``
        (seconds per stage), ``n_images`` per set, ``validation`` (which
        images validated), ``tuned`` (row -> parameters), ``pseudo`` (row ->
        pseudo-OOD source -> FPR95/AUROC), ``sources``, ``rule``,
        ``held_out`` (the classes each held-out split leaves out),
        ``selection`` (row -> the rule's value, lower is better), ``chosen``
        (the row the rule picks), ``nc1`` (model kind -> NC1 of its fit-set
        fc inputs), ``notes``, ``n_classes``, ``near_chance``
        (the warning of :func:`near_chance`, or ``None``), ``skipped`` (row ->
        what its detector needs that the model lacks) and ``failed`` (row ->
        the error it raised); skipped and failed rows are not in ``rows``.
        ``thresholds`` (row -> plain ``offset`` and ``conformal`` threshold)
        and ``accepted`` (row -> ``"plain"`` / ``"conformal"`` -> set ->
        share of its rows accepted), from
        :func:`~sklearn_ood.benchmark.decisions.decide`.

    Examples
    --------
    >>> from sklearn_ood.benchmark.result import BenchmarkResult, metric_rows
    >>> rows = metric_rows("Energy", {"ID test": [3.0, 2.0], "a": [1.0], "b": [2.5]}, 0.1, 0.2)
    >>> result = BenchmarkResult(rows=rows, scores={}, ood_sets=["a", "b"], config={})
    >>> result.to_frame()[["detector", "ood_set", "auroc", "fpr95"]]
      detector  ood_set  auroc  fpr95
    0   Energy        a   1.00    0.0
    1   Energy        b   0.50    1.0
    2   Energy  average   0.75    0.5
    """

    rows: list
    scores: dict
    ood_sets: list
    config: dict
    info: dict = field(default_factory=dict)

    def to_records(self):
        """The rows as a list of dicts with the keys :data:`ROW_COLUMNS`.

        Metrics are fractions, times in seconds: the contents of ``results.csv``
        (unrounded). ``pandas.DataFrame(result.to_records())`` is :meth:`to_frame`.
        """
        return [{column: row[column] for column in ROW_COLUMNS} for row in self.rows]

    def to_frame(self):
        """The rows as a pandas ``DataFrame``: one row per detector x OOD set (and average).

        Columns :data:`ROW_COLUMNS`: ``detector``, ``ood_set``, ``auroc``,
        ``fpr95``, ``aupr_in``, ``aupr_out`` (fractions), ``fit_s`` and
        ``score_s`` (seconds). pandas is imported here, not by the benchmark.

        Returns
        -------
        frame : pandas.DataFrame

        Raises
        ------
        ImportError
            Without pandas (:meth:`to_records` needs nothing).

        Examples
        --------
        >>> from sklearn_ood.benchmark.result import BenchmarkResult, metric_rows
        >>> rows = [*metric_rows("Energy", {"ID test": [3.0, 2.0], "a": [1.0]}, 0.1, 0.2),
        ...         *metric_rows("KNN", {"ID test": [3.0, 2.0], "a": [2.5]}, 0.3, 0.4)]
        >>> frame = BenchmarkResult(rows, scores={}, ood_sets=["a"], config={}).to_frame()
        >>> frame.query("ood_set == 'average'").sort_values("auroc")[["detector", "auroc"]]
          detector  auroc
        3      KNN    0.5
        1   Energy    1.0
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "BenchmarkResult.to_frame needs pandas: install it (pip install pandas), "
                "or use to_records(), a list of dicts.") from exc
        return pd.DataFrame.from_records(self.to_records(), columns=list(ROW_COLUMNS))


def near_chance(info):
    """A warning when a model's ID test accuracy is near chance, else ``None``.

    Near chance: below :data:`NEAR_CHANCE` times ``1 / n_classes``. The
    model has then not learnt the ID classes, and the detectors' metrics say
    little about them: the report marks no row best.

    Parameters
    ----------
    info : dict
        With ``n_classes``, ``accuracy`` and optionally ``accuracy_l2``
        (:attr:`BenchmarkResult.info`).

    Returns
    -------
    warning : str or None

    Examples
    --------
    >>> from sklearn_ood.benchmark.result import near_chance
    >>> near_chance({"n_classes": 10, "accuracy": 0.9}) is None
    True
    >>> print(near_chance({"n_classes": 3, "accuracy": 0.4}))  # doctest: +NORMALIZE_WHITESPACE
    ID test accuracy near chance: plain model 40.0 %, chance 33.3 % (3 classes). The model
    has not learnt the ID classes: the detectors' metrics say little, and no row is marked best.
    """
    chance = 1 / info["n_classes"]
    low = [f"{kind} model {100 * info[key]:.1f} %"
           for key, kind in (("accuracy", "plain"), ("accuracy_l2", "L2"))
           if key in info and info[key] < NEAR_CHANCE * chance]
    if not low:
        return None
    return (f"ID test accuracy near chance: {', '.join(low)}, chance {100 * chance:.1f} % "
            f"({info['n_classes']} classes). The model has not learnt the ID classes: the "
            "detectors' metrics say little, and no row is marked best.")


def finite_for_ranking(scores):
    """Replace +-inf/NaN by values just beyond the finite range (ranking kept).

    NaN counts as the most OOD score.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)

    Returns
    -------
    scores : ndarray of shape (n_samples,)
        Finite float64 scores.
    n_replaced : int
        How many were not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.benchmark.result import finite_for_ranking
    >>> s, n = finite_for_ranking(np.array([1.0, np.inf, -np.inf, 2.0]))
    >>> bool(s[1] > 2.0 and s[2] < 1.0 and np.isfinite(s).all()), n
    (True, 2)
    """
    s = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(s)
    if not bad.any():
        return s, 0
    finite = s[~bad]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    s = s.copy()
    s[np.isposinf(s)] = np.nextafter(hi, np.inf)
    s[np.isneginf(s) | np.isnan(s)] = np.nextafter(lo, -np.inf)
    return s, int(bad.sum())


def ood_metrics(id_scores, ood_scores):
    """AUROC, FPR@95 % ID TPR, AUPR-In, AUPR-Out of ID vs one OOD set.

    Parameters
    ----------
    id_scores, ood_scores : array-like of shape (n_id,) and (n_ood,)
        Scores (higher = more in-distribution); non-finite ones are ranked
        by :func:`finite_for_ranking`.

    Returns
    -------
    metrics : dict
        ``auroc``, ``fpr95``, ``aupr_in``, ``aupr_out`` as fractions.

    Examples
    --------
    >>> from sklearn_ood.benchmark.result import ood_metrics
    >>> m = ood_metrics([3.0, 2.0, 1.0], [1.5, 0.0])
    >>> round(m["auroc"], 4), m["fpr95"]
    (0.8333, 0.5)
    """
    score, _ = finite_for_ranking(np.concatenate([id_scores, ood_scores]))
    y = np.concatenate([np.zeros(len(id_scores), int), -np.ones(len(ood_scores), int)])
    return {
        "auroc": metrics.auroc(y, score),
        "fpr95": metrics.fpr_at_tpr(y, score, tpr=0.95, positive="id"),
        "aupr_in": metrics.aupr(y, score, positive="id"),
        "aupr_out": metrics.aupr(y, score, positive="ood"),
    }


def metric_rows(name, scores, fit_s, score_s):
    """The table rows of one detector: one per OOD set, then their average.

    Parameters
    ----------
    name : str
        The detector's row name.
    scores : dict
        ``"ID test"`` and each OOD set -> scores.
    fit_s, score_s : float
        Seconds to fit and to score.

    Returns
    -------
    rows : list of dict

    Examples
    --------
    >>> from sklearn_ood.benchmark.result import metric_rows
    >>> rows = metric_rows("X", {"ID test": [3.0, 2.0], "a": [1.0], "b": [2.5]}, 0.0, 0.0)
    >>> [(r["ood_set"], r["auroc"]) for r in rows]
    [('a', 1.0), ('b', 0.5), ('average', 0.75)]
    """
    rows = [{"detector": name, "ood_set": ood, **ood_metrics(scores["ID test"], scores[ood]),
             "fit_s": fit_s, "score_s": score_s}
            for ood in scores if ood != "ID test"]
    average = {m: float(np.mean([r[m] for r in rows])) for m in METRIC_COLUMNS}
    rows.append({"detector": name, "ood_set": "average", **average,
                 "fit_s": fit_s, "score_s": score_s})
    return rows


def group_rows(rows, groups):
    """Add, per detector, the average row of each OOD group before its overall average.

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`metric_rows`, detector after detector.
    groups : dict
        Group name -> its OOD sets (e.g. ``{"near": ["tin"], "far": ["dtd", "mnist"]}``).
        A group's metrics are the means over its sets, as OpenOOD averages its
        near- and far-OOD sets; empty: ``rows`` unchanged.

    Returns
    -------
    rows : list of dict

    Examples
    --------
    >>> from sklearn_ood.benchmark.result import group_rows, metric_rows
    >>> scores = {"ID test": [3.0, 2.0], "a": [1.0], "b": [2.5], "c": [1.0]}
    >>> rows = group_rows(metric_rows("X", scores, 0.0, 0.0), {"near": ["b"], "far": ["a", "c"]})
    >>> [(r["ood_set"], r["auroc"]) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    [('a', 1.0), ('b', 0.5), ('c', 1.0), ('near average', 0.5), ('far average', 1.0),
     ('average', 0.8333333333333334)]
    """
    if not groups:
        return list(rows)
    out = []
    for row in rows:
        if row["ood_set"] == "average":
            sets = {r["ood_set"]: r for r in out if r["detector"] == row["detector"]}
            for group, members in groups.items():
                out.append({"detector": row["detector"], "ood_set": group + GROUP_SUFFIX,
                            **{m: float(np.mean([sets[o][m] for o in members]))
                               for m in METRIC_COLUMNS},
                            "fit_s": row["fit_s"], "score_s": row["score_s"]})
        out.append(row)
    return out


def decision_summary(accepted):
    """Over the rows: the lowest, mean and highest share of ID test images accepted.

    Parameters
    ----------
    accepted : dict
        As returned by :func:`~sklearn_ood.benchmark.decisions.decide`.

    Returns
    -------
    summary : dict
        ``"plain"`` and ``"conformal"`` -> ``(lowest, mean, highest)``, or
        ``None`` when no row has that threshold.

    Examples
    --------
    >>> from sklearn_ood.benchmark.result import decision_summary
    >>> decision_summary({"a": {"plain": {"ID test": 0.9}, "conformal": {"ID test": 0.95}},
    ...                   "b": {"plain": {"ID test": 0.94}, "conformal": None}})
    {'plain': (0.9, 0.92, 0.94), 'conformal': (0.95, 0.95, 0.95)}
    """
    out = {}
    for kind in ("plain", "conformal"):
        shares = [a[kind]["ID test"] for a in accepted.values() if a[kind] is not None]
        out[kind] = (min(shares), round(float(np.mean(shares)), 12), max(shares)) \
            if shares else None
    return out
