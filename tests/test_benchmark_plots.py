"""The benchmark's PNGs: drawn for real (Agg), their layout read back from the artists."""

import matplotlib

matplotlib.use("Agg")

import warnings  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sklearn_ood.benchmark.plots import (  # noqa: E402
    BASELINES, histogram_figure, plot_histograms, plot_roc_curves, plot_summary, roc_figure,
    roc_rows, summary_figure,
)
from sklearn_ood.benchmark.result import CHOSEN_NAME, BenchmarkResult, metric_rows  # noqa: E402

LONG = "GaussianDensity (L2 model, pre-norm h), tuned (pseudo-OOD)"
# Separation of ID from OOD, best first: the baselines are the two worst rows.
NAMES = ["KNN", "ViM", LONG, "Mahalanobis", "ReAct", "ASH", "DICE", "SHE", "GEN", "NCI",
         *BASELINES]


def fake_result(names=NAMES, thresholds=None, n=200):
    """A hand-built result: per row, ID scores N(0, 1) and OOD sets shifted down."""
    rng = np.random.default_rng(0)
    scores, rows = {}, []
    for i, name in enumerate(names):
        shift = 3.0 - 2.5 * i / max(len(names) - 1, 1)
        s = {"ID test": rng.normal(0, 1, n), "near": rng.normal(-shift / 2, 1, n // 2),
             "far OOD set with a long name": rng.normal(-shift, 1, n // 2)}
        if name == LONG:  # log-density-like: a few huge negative scores, an infinite one
            s["far OOD set with a long name"][:20] = -1e5
            s["near"][0] = -np.inf
        scores[name] = s
        rows += metric_rows(name, s, 0.1, 0.2)
    scores[f"{CHOSEN_NAME} ({names[0]})"] = scores[names[0]]
    rows += metric_rows(f"{CHOSEN_NAME} ({names[0]})", scores[names[0]], 0.1, 0.2)
    info = {} if thresholds is None else {"thresholds": thresholds}
    return BenchmarkResult(rows=rows, scores=scores, ood_sets=["near", "far OOD set with a long name"],
                           config={"id_set": "digits"}, info=info)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def inside(extent, figure):
    box = figure.bbox
    return (extent.x0 >= box.x0 - 0.5 and extent.y0 >= box.y0 - 0.5
            and extent.x1 <= box.x1 + 0.5 and extent.y1 <= box.y1 + 0.5)


def curves(ax):
    """The ROC curves of an axes: its labelled lines other than the chance diagonal."""
    return [line for line in ax.get_lines()
            if not line.get_label().startswith(("_", "chance"))]


def test_every_png_is_written_without_a_warning(tmp_path):
    result = fake_result(thresholds={"KNN": {"offset": -1.2, "contamination": 0.05}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a tight_layout or any other warning fails
        paths = (plot_summary(result, tmp_path) + plot_roc_curves(result, tmp_path)
                 + plot_histograms(result, tmp_path))
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == sorted(["summary.png", "roc_near.png", "roc_far_ood_set_with_a_long_name.png",
                            *(f"hist_{n}.png" for n in (
                                "knn", "vim", "gaussiandensity_l2_model_pre_norm_h_tuned_pseudo_ood",
                                "mahalanobis", "react", "ash", "dice", "she", "gen", "nci",
                                "maxsoftmax", "energy"))])  # the chosen row is not drawn twice
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / path.rsplit("/", 1)[-1]).stat().st_size > 5000


def test_roc_draws_the_best_rows_and_the_baselines_legend_inside():
    result = fake_result()
    aucs = {r["detector"]: r["auroc"] for r in result.rows if r["ood_set"] == "near"
            and not r["detector"].startswith(CHOSEN_NAME)}
    best = sorted(aucs, key=aucs.get, reverse=True)[:8]
    assert not set(BASELINES) & set(best)  # the fake makes them the worst rows
    fig = roc_figure(result, "near")
    fig.canvas.draw()
    full, zoom = fig.axes
    lines = curves(full)
    assert len(lines) == 10 and len(curves(zoom)) == 0  # the zoom repeats them unlabelled
    labels = [line.get_label() for line in lines]
    assert [label.split(" (AUROC")[0] for label in labels] == [*best, *BASELINES]
    assert labels[0] == f"{best[0]} (AUROC {100 * aucs[best[0]]:.1f} %)"
    styles = {(matplotlib.colors.to_hex(line.get_color()), line.get_linestyle())
              for line in lines}
    assert len(styles) == len(lines)  # no two curves alike
    diagonal = [line for line in full.get_lines() if line.get_label().startswith("chance")]
    np.testing.assert_array_equal(diagonal[0].get_xydata(), [[0, 0], [1, 1]])
    legend, = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [*labels, "chance (AUROC 50 %)"]
    assert inside(legend.get_window_extent(), fig)
    for ax in fig.axes:  # the legend covers no axes
        assert not legend.get_window_extent().overlaps(ax.get_window_extent())


def test_roc_baselines_are_not_repeated_and_more_than_ten_rows_get_linestyles():
    result = fake_result(names=["Energy", *NAMES[:-1]])  # Energy is the best row
    assert [n for n, _ in roc_rows(result, "near", k=3)] == ["Energy", "KNN", "ViM",
                                                             "MaxSoftmax"]
    fig = roc_figure(result, "far OOD set with a long name", k=11)
    lines = curves(fig.axes[0])
    assert len(lines) == 12  # 11 best and MaxSoftmax
    styles = [(matplotlib.colors.to_hex(line.get_color()), line.get_linestyle())
              for line in lines]
    assert len(set(styles)) == 12 and {ls for _, ls in styles} == {"-", "--"}


def test_histogram_has_a_two_line_title_and_the_threshold_line():
    result = fake_result(thresholds={"KNN": {"offset": -1.2}, LONG: {"offset": -3.0}})
    fig = histogram_figure(result, "KNN")
    fig.canvas.draw()
    ax, = fig.axes
    avg = next(r for r in result.rows if r["detector"] == "KNN" and r["ood_set"] == "average")
    name, metrics = ax.get_title().split("\n")
    assert name == "KNN" and metrics.startswith(
        f"avg AUROC {100 * avg['auroc']:.1f} %, avg FPR95 {100 * avg['fpr95']:.1f} %")
    assert inside(ax.title.get_window_extent(), fig)
    threshold = [line for line in ax.get_lines() if line.get_label().startswith("threshold")]
    np.testing.assert_array_equal(threshold[0].get_xdata(), [-1.2, -1.2])
    assert threshold[0].get_label() == "threshold offset_ = -1.2"
    assert [p.get_label() for p in ax.patches] == [
        "ID test (ID)", "near (OOD)", "far OOD set with a long name (OOD)"]
    assert inside(ax.get_legend().get_window_extent(), fig)

    # a long name wraps; on the signed log scale the threshold is moved with the scores
    fig = histogram_figure(result, LONG)
    fig.canvas.draw()
    ax, = fig.axes
    title = ax.get_title().split("\n")
    assert len(title) == 2 and title[0] == LONG and "scores outside the range" in title[1]
    assert inside(ax.title.get_window_extent(), fig)
    assert ax.get_xlabel().startswith("sign(score) log(1 + |score|)")
    line, = [line for line in ax.get_lines() if line.get_label().startswith("threshold")]
    np.testing.assert_allclose(line.get_xdata(), [-np.log(4.0)] * 2)
    assert line.get_label() == "threshold offset_ = -3"


def test_histogram_without_a_recorded_threshold_draws_no_line():
    for result in (fake_result(names=["KNN"]), fake_result(names=["KNN"], thresholds={})):
        ax, = histogram_figure(result, "KNN").axes
        assert not ax.get_lines() and len(ax.patches) == 3


def test_summary_of_66_rows_keeps_every_name_readable():
    names = [f"{base}{suffix}" for base in NAMES for suffix in (
        "", ", tuned (pseudo-OOD)", " (L2 model)", " (last block)", " (L2 model), tuned",
        " (w=0.4)")][:66]
    names[0] = LONG
    result = fake_result(names=names, n=40)
    small = summary_figure(fake_result(names=NAMES[:6], n=40))
    fig = summary_figure(result)
    assert fig.get_figheight() > 4 * small.get_figheight()  # grows with the rows
    fig.canvas.draw()
    left = fig.axes[0]
    labels = sorted((t.get_window_extent() for t in left.get_yticklabels()), key=lambda e: e.y0)
    assert len(labels) == 66
    assert all(a.y1 <= b.y0 for a, b in zip(labels, labels[1:]))  # no two names overlap
    assert all(inside(extent, fig) for extent in labels)
    assert fig._suptitle.get_window_extent().y0 >= left.get_window_extent().y1
