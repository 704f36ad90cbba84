"""PNG plots of a :class:`~.result.BenchmarkResult`: summary bars, ROC curves, histograms.

Each ``*_figure`` function returns one matplotlib figure (to show, restyle or
save); each ``plot_*`` function writes its figures as PNGs and returns their
paths. The figures use matplotlib's constrained layout, so titles, tick labels
and legends stay inside the saved image. matplotlib is imported lazily, with
the Agg backend, so the tables need nothing beyond NumPy.
"""

import os
import re
import textwrap

import numpy as np

from ..display import ScoreDistributionDisplay, plot_roc
from .result import CHOSEN_NAME, finite_for_ranking

__all__ = [
    "BASELINES", "histogram_figure", "plot_histograms", "plot_roc_curves", "plot_summary",
    "roc_figure", "roc_rows", "summary_figure",
]

#: Rows every ROC figure shows (when the run has them), whatever their rank.
BASELINES = ("MaxSoftmax", "Energy")
_LINESTYLES = ("-", "--", ":", "-.")
_SCORE_LABEL = "score (higher = more in-distribution)"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _plotted(result):
    """Row names to plot (the chosen-method row duplicates another row)."""
    return [n for n in result.scores if not n.startswith(CHOSEN_NAME)]


def _save(fig, path, dpi):
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


# ------------------------------------------------------------------------- ROC
def roc_rows(result, ood_set, *, k=8):
    """The rows a ROC figure draws: the best ``k`` by AUROC on ``ood_set``, then the baselines.

    The baselines (:data:`BASELINES`) are added when the run has them and
    they are not among the best ``k``. Order: AUROC, best first.

    Parameters
    ----------
    result : BenchmarkResult
    ood_set : str
    k : int, default=8

    Returns
    -------
    rows : list of (str, float)
        Row name and its AUROC on ``ood_set``.

    Examples
    --------
    >>> from sklearn_ood.benchmark.result import BenchmarkResult, metric_rows
    >>> scores = {name: {"ID test": [3.0, 2.0], "a": [s]}
    ...           for name, s in [("KNN", 1.0), ("ViM", 2.5), ("Energy", 4.0)]}
    >>> rows = [r for name, s in scores.items() for r in metric_rows(name, s, 0.0, 0.0)]
    >>> result = BenchmarkResult(rows, scores, ood_sets=["a"], config={})
    >>> roc_rows(result, "a", k=1)
    [('KNN', 1.0), ('Energy', 0.0)]
    """
    aucs = {r["detector"]: r["auroc"] for r in result.rows if r["ood_set"] == ood_set}
    names = sorted((n for n in _plotted(result) if n in aucs), key=lambda n: -aucs[n])
    chosen = names[:k] + [n for n in BASELINES if n in names[k:]]
    return [(n, aucs[n]) for n in sorted(chosen, key=lambda n: -aucs[n])]


def _line_styles(n):
    """``n`` distinct (colour, linestyle) pairs: tab10's colours, then a new linestyle."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [dict(color=cmap(i % 10), linestyle=_LINESTYLES[(i // 10) % len(_LINESTYLES)])
            for i in range(n)]


def roc_figure(result, ood_set, *, k=8):
    """ROC curves (ID positive) of the rows of :func:`roc_rows` on one OOD set.

    Left: the whole curve with the chance diagonal; right: a zoom on the
    top-left corner (FPR <= 0.3; TPR >= 0.7, or lower when a curve is below
    0.7 at FPR 0.3) where good detectors differ, with the 95 % TPR line where
    FPR95 is read. One legend below both, each curve labelled with its AUROC.

    Parameters
    ----------
    result : BenchmarkResult
    ood_set : str
    k : int, default=8
        How many of the best rows to draw (besides the baselines).

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    plt = _pyplot()
    rows = roc_rows(result, ood_set, k=k)
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.5), layout="constrained")
    zoom_low = 0.7
    for (name, auc), style in zip(rows, _line_styles(len(rows))):
        s = result.scores[name]
        score, _ = finite_for_ranking(np.concatenate([s["ID test"], s[ood_set]]))
        y = np.r_[np.zeros(len(s["ID test"])), -np.ones(len(s[ood_set]))]
        curve = plot_roc(y, score, ax=axes[0], name=name, curve_kwargs=dict(
            label=f"{name} (AUROC {100 * auc:.1f} %)", lw=1.5, **style))
        axes[1].plot(curve.fpr, curve.tpr, lw=1.5, **style)
        tpr_at = curve.tpr[np.searchsorted(curve.fpr, 0.3, side="right") - 1]
        zoom_low = min(zoom_low, np.floor(20 * tpr_at) / 20)
    if rows:
        axes[0].get_legend().remove()  # scikit-learn's; one legend is drawn below
    for ax, lim in zip(axes, ((0, 1, 0, 1.01), (0, 0.3, zoom_low, 1.005))):
        ax.set_aspect("auto")
        ax.set(xlabel="false-positive rate (OOD accepted as ID)",
               ylabel="true-positive rate (ID accepted)", xlim=lim[:2], ylim=lim[2:])
        ax.grid(alpha=0.25)
    axes[0].plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="chance (AUROC 50 %)")
    axes[1].axhline(0.95, color="grey", lw=0.8, ls=":", label="_")
    axes[0].set_title(f"ROC: {result.config.get('id_set', 'ID')} (ID) vs {ood_set} (OOD)")
    axes[1].set_title("zoom (dotted line: 95 % TPR, where FPR95 is read)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2,
               fontsize=9, title=f"the best {k} rows by AUROC, and the baselines "
                                 + " and ".join(BASELINES))
    return fig


def plot_roc_curves(result, out_dir, *, k=8):
    """Write ``roc_<ood set>.png`` for each OOD set (:func:`roc_figure`); return the paths."""
    return [_save(roc_figure(result, ood, k=k), os.path.join(out_dir, f"roc_{_slug(ood)}.png"),
                  dpi=80)
            for ood in result.ood_sets]


# ------------------------------------------------------------------ histograms
def _two_line_title(name, second, width=60):
    """``name`` (wrapped at ``width`` characters) over ``second``."""
    return "\n".join([*(textwrap.wrap(name, width) or [""]), second])


def histogram_figure(result, name, *, bins=50):
    """Score histograms of one row: the ID test set and each OOD set.

    The range is the 0.5-99.5 % quantile range of all (finite) scores of the
    row; scores outside it are not shown (the title says how many). When
    that range is over 100 times the interquartile range of the ID scores
    (log-densities, distances), the scores are shown on the signed log scale
    ``sign(s) log(1 + |s|)`` (same ranking), as the x label says.

    The dashed line is the row's decision threshold, its fitted ``offset_``
    (``predict`` calls a row ID when its score is at least the threshold),
    when the run recorded it in ``result.info["thresholds"][name]["offset"]``.

    Parameters
    ----------
    result : BenchmarkResult
    name : str
        The row.
    bins : int, default=50

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    plt = _pyplot()
    avg = {r["detector"]: r for r in result.rows if r["ood_set"] == "average"}
    sets = dict(result.scores[name])
    offset = ((result.info.get("thresholds") or {}).get(name) or {}).get("offset")
    offset = float(offset) if offset is not None and np.isfinite(offset) else None
    finite = np.concatenate([v[np.isfinite(v)] for v in sets.values()])
    id_finite = sets["ID test"][np.isfinite(sets["ID test"])]
    xlabel, shown = _SCORE_LABEL, offset
    if finite.size and id_finite.size:
        span = np.ptp(np.quantile(finite, [0.005, 0.995]))
        iqr = np.subtract(*np.quantile(id_finite, [0.75, 0.25]))
        if span > 100 * iqr and span > 0:
            def signed_log(v):
                return np.sign(v) * np.log1p(np.abs(v))

            sets = {k: signed_log(v) for k, v in sets.items()}
            finite = signed_log(finite)
            shown = None if offset is None else float(signed_log(offset))
            xlabel = "sign(score) log(1 + |score|)  (higher = more in-distribution)"
    lo, hi = np.quantile(finite, [0.005, 0.995]) if finite.size else (0.0, 1.0)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    n_out = sum(int(np.sum((v < lo) | (v > hi) | ~np.isfinite(v))) for v in sets.values())

    fig, ax = plt.subplots(figsize=(7, 4.4), layout="constrained")
    groups = [(f"{k} (ID)" if k == "ID test" else f"{k} (OOD)", v[np.isfinite(v)])
              for k, v in sets.items()]
    groups = [(k, v) for k, v in groups if v.size]  # a histogram needs values
    if groups:
        ScoreDistributionDisplay(
            scores=[v for _, v in groups], group_names=[k for k, _ in groups], threshold=shown,
        ).plot(ax=ax, bins=np.linspace(lo, hi, bins + 1), threshold_kwargs=dict(
            label=f"threshold offset_ = {offset:.4g}" if offset is not None else "_"))
        ax.legend(fontsize=8)
    row = avg.get(name)
    second = (f"avg AUROC {100 * row['auroc']:.1f} %, avg FPR95 {100 * row['fpr95']:.1f} %"
              if row else "")
    if n_out:
        second += f"; {n_out} scores outside the range"
    ax.set(xlabel=xlabel, ylabel="density")
    ax.set_title(_two_line_title(name, second), fontsize=10)
    return fig


def plot_histograms(result, out_dir, bins=50):
    """Write ``hist_<row>.png`` for each row (:func:`histogram_figure`); return the paths."""
    return [_save(histogram_figure(result, name, bins=bins),
                  os.path.join(out_dir, f"hist_{_slug(name)}.png"), dpi=90)
            for name in _plotted(result)]


# --------------------------------------------------------------------- summary
def summary_figure(result):
    """Bars of the average AUROC and FPR95 of every row, best AUROC at the top.

    The figure's height grows with the number of rows (0.28 inch each), so
    the row names never overlap.

    Parameters
    ----------
    result : BenchmarkResult

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    plt = _pyplot()
    avg = sorted((r for r in result.rows if r["ood_set"] == "average"
                  and not r["detector"].startswith(CHOSEN_NAME)), key=lambda r: r["auroc"])
    n = len(avg)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.28 * n + 1.6), sharey=True,
                             layout="constrained")
    y = np.arange(n)
    auc, fpr = (np.array([100 * r[m] for r in avg]) for m in ("auroc", "fpr95"))
    lo = min(50.0, auc.min(initial=50.0)) - 1
    axes[0].barh(y, auc, color="tab:green")
    axes[1].barh(y, fpr, color="tab:red")
    for i in range(n):  # the value inside the bar's end when it fits, else beside it
        inside = auc[i] - lo > 8
        axes[0].text(auc[i] + (-0.3 if inside else 0.3), i, f"{auc[i]:.1f}", va="center",
                     ha="right" if inside else "left", fontsize=7,
                     color="white" if inside else "black")
        inside = fpr[i] > 88
        axes[1].text(fpr[i] + (-0.5 if inside else 0.5), i, f"{fpr[i]:.1f}", va="center",
                     ha="right" if inside else "left", fontsize=7,
                     color="white" if inside else "black")
    axes[0].set_yticks(y, [r["detector"] for r in avg], fontsize=9)
    axes[0].set(xlabel="average AUROC (%) ↑", xlim=(lo, 100), ylim=(-0.6, n - 0.4))
    axes[1].set(xlabel="average FPR95 (%) ↓", xlim=(0, 100))
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("\n".join(textwrap.wrap(
        f"{result.config.get('id_set', 'ID')} (ID) vs {', '.join(result.ood_sets)}", 100)))
    return fig


def plot_summary(result, out_dir):
    """Write ``summary.png`` (:func:`summary_figure`); return ``[path]``."""
    return [_save(summary_figure(result), os.path.join(out_dir, "summary.png"), dpi=90)]
