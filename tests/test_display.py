"""Displays: drawn with the Agg backend and read back from the artists."""

import matplotlib

matplotlib.use("Agg")

import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_ood import (  # noqa: E402
    KNN, ScoreDistributionDisplay, plot_precision_recall, plot_roc,
)
from sklearn_ood.metrics import aupr, auroc  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def two_ood_sets():
    """ID rows with class labels, and two OOD sets labelled -1 and -2."""
    rng = np.random.default_rng(0)
    y = np.r_[rng.integers(0, 3, 40), np.full(25, -1), np.full(15, -2)]
    score = np.r_[rng.normal(2, 1, 40), rng.normal(0, 1, 25), rng.normal(1, 0.5, 15)]
    perm = rng.permutation(len(y))  # groups are found by label, not by position
    return y[perm], score[perm]


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# ------------------------------------------------------------ ScoreDistributionDisplay
def test_hand_checked_histogram_counts_and_edges():
    display = ScoreDistributionDisplay.from_predictions(
        [0, 0, 0, -1], [0.0, 0.0, 1.0, 2.0], bins=2, density=False)
    np.testing.assert_array_equal(display.bin_edges_, [0.0, 1.0, 2.0])
    id_patch, ood_patch = display.hist_
    np.testing.assert_array_equal(id_patch.get_data().values, [2, 1])  # 0, 0 | 1
    np.testing.assert_array_equal(ood_patch.get_data().values, [0, 1])  # | 2 (last bin closed)
    assert display.ax_.get_ylabel() == "Count"


@pytest.mark.parametrize("density", [True, False])
def test_bar_heights_are_the_histogram_of_each_group(two_ood_sets, density):
    y, score = two_ood_sets
    display = ScoreDistributionDisplay.from_predictions(y, score, bins=12, density=density)
    edges = np.histogram_bin_edges(score, bins=12)  # shared: computed on all the scores
    for patch, mask in zip(display.hist_, [y >= 0, y == -1, y == -2]):
        values, drawn_edges, _ = patch.get_data()
        np.testing.assert_allclose(drawn_edges, edges)
        np.testing.assert_allclose(values, np.histogram(score[mask], bins=edges,
                                                        density=density)[0])
        assert patch in display.ax_.patches  # drawn, not only computed
    if density:  # each group integrates to one on the shared bins
        for patch in display.hist_:
            assert np.sum(patch.get_data().values * np.diff(edges)) == pytest.approx(1.0)


def test_explicit_edges_drop_outside_scores_like_numpy():
    y, score = [0, 0, 0, -1, -1], [0.5, 1.5, 9.0, 1.2, 7.0]
    display = ScoreDistributionDisplay.from_predictions(y, score, bins=[0, 1, 2])
    np.testing.assert_allclose(display.hist_[0].get_data().values, [0.5, 0.5])  # 9 dropped
    np.testing.assert_allclose(display.hist_[1].get_data().values, [0.0, 1.0])  # 7 dropped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0 / 0 warning for a group outside the edges
        outside = ScoreDistributionDisplay.from_predictions(y, score, bins=[5, 6])
    np.testing.assert_array_equal(outside.hist_[1].get_data().values, [0.0])


def test_each_ood_set_is_its_own_named_group(two_ood_sets):
    y, score = two_ood_sets
    display = ScoreDistributionDisplay.from_predictions(
        y, score, id_name="digits", ood_names={-1: "textures", -2: "SVHN", -3: "unused"})
    assert display.group_names == ["digits", "textures", "SVHN"]
    np.testing.assert_array_equal(display.scores[0], score[y >= 0])
    np.testing.assert_array_equal(display.scores[2], score[y == -2])
    assert _legend(display.ax_) == ["digits", "textures", "SVHN"]


def test_default_ood_names(two_ood_sets):
    y, score = two_ood_sets
    several = ScoreDistributionDisplay.from_predictions(y, score)
    assert several.group_names == ["ID", "OOD (-1)", "OOD (-2)"]
    pooled = ScoreDistributionDisplay.from_predictions(np.where(y < 0, -1, y), score)
    assert pooled.group_names == ["ID", "OOD"]
    assert len(pooled.scores[1]) == np.sum(y < 0)
    named = ScoreDistributionDisplay.from_predictions(y >= 0, score, ood_names="far")
    assert named.group_names == ["ID", "far"]  # a boolean y is an "is ID" mask
    np.testing.assert_array_equal(named.scores[1], score[y < 0])


def test_nan_label_is_an_id_row_and_id_only_input_is_allowed():
    display = ScoreDistributionDisplay.from_predictions([np.nan, 1, -1], [1.0, 2.0, 0.0])
    np.testing.assert_array_equal(display.scores[0], [1.0, 2.0])
    id_only = ScoreDistributionDisplay.from_predictions([0, 1], [1.0, 2.0], threshold=1.5)
    assert id_only.group_names == ["ID"] and _legend(id_only.ax_) == ["ID", "threshold = 1.5"]


def test_threshold_line_is_at_offset_in_data_coordinates(two_ood_sets):
    y, score = two_ood_sets
    display = ScoreDistributionDisplay.from_predictions(y, score, threshold=0.7)
    line, ax = display.threshold_line_, display.ax_
    np.testing.assert_array_equal(line.get_xdata(), [0.7, 0.7])
    # The line's x maps to the same pixel as x = 0.7 in the axes' data coordinates.
    pixel = line.get_transform().transform([[0.7, 0.5]])[0, 0]
    assert pixel == pytest.approx(ax.transData.transform([[0.7, 0.0]])[0, 0])
    assert ax.get_xlim()[0] < 0.7 < ax.get_xlim()[1]
    assert _legend(ax)[-1] == "threshold = 0.7"
    no_line = ScoreDistributionDisplay.from_predictions(y, score)
    assert no_line.threshold_line_ is None and len(_legend(no_line.ax_)) == 3


def test_threshold_outside_the_scores_is_still_shown():
    display = ScoreDistributionDisplay.from_predictions([0, -1], [0.0, 1.0], threshold=5.0)
    assert display.ax_.get_xlim()[1] > 5.0


def test_from_estimator_equals_from_predictions_on_the_same_scores():
    rng = np.random.default_rng(1)
    X_id, X_ood = rng.normal(size=(80, 3)), rng.normal(2.5, 1, size=(30, 3))
    knn = KNN(n_neighbors=5).fit(X_id[:50])
    X, y = np.vstack([X_id[50:], X_ood]), np.r_[np.zeros(30), -np.ones(30)]
    est = ScoreDistributionDisplay.from_estimator(knn, X, y, bins=10)
    pred = ScoreDistributionDisplay.from_predictions(
        y, knn.score_samples(X), threshold=knn.offset_, name="KNN", bins=10)
    assert est.threshold == knn.offset_ and est.name == "KNN"
    assert est.group_names == pred.group_names
    for a, b in zip(est.scores, pred.scores):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(est.hist_, pred.hist_):
        np.testing.assert_array_equal(a.get_data().values, b.get_data().values)
    np.testing.assert_array_equal(est.threshold_line_.get_xdata(), [knn.offset_] * 2)
    assert est.ax_.get_legend().get_title().get_text() == "KNN"
    # without the line, and through a pipeline: its last step gives threshold and name
    bare = ScoreDistributionDisplay.from_estimator(knn, X, y, plot_threshold=False)
    assert bare.threshold is None and bare.threshold_line_ is None
    pipe = make_pipeline(StandardScaler(), KNN(n_neighbors=5)).fit(X_id[:50])
    piped = ScoreDistributionDisplay.from_estimator(pipe, X, y)
    assert piped.threshold == pipe[-1].offset_ and piped.name == "KNN"
    np.testing.assert_array_equal(piped.scores[1], pipe.score_samples(X)[30:])


def test_plot_draws_into_the_given_axes_and_can_be_saved(two_ood_sets, tmp_path):
    y, score = two_ood_sets
    fig, (left, right) = plt.subplots(1, 2)
    display = ScoreDistributionDisplay.from_predictions(y, score, ax=right, threshold=1.0)
    assert display.ax_ is right and display.figure_ is fig
    assert len(left.patches) == 0 and len(right.patches) == 3
    again = display.plot(ax=left, bins=5, name="Energy")  # re-plot the stored data elsewhere
    assert again is display and display.ax_ is left and len(left.patches) == 3
    assert display.bin_edges_.shape == (6,)
    assert left.get_legend().get_title().get_text() == "Energy"
    path = tmp_path / "scores.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_constructor_stores_and_plot_styles_groups():
    display = ScoreDistributionDisplay(scores=[[1.0, 2.0], [0.0]], group_names=["a", "b"])
    assert not hasattr(display, "ax_")  # nothing drawn before plot
    display.plot(hist_kwargs=[{"color": "red"}, {"lw": 3}], threshold_kwargs={"ls": ":"})
    first, second = display.hist_
    assert first.get_fill() and not second.get_fill()  # default: ID filled, OOD outlined
    assert matplotlib.colors.same_color(first.get_facecolor()[:3], "red")
    assert second.get_linewidth() == 3  # the alias lw overrides the default linewidth
    display.plot(hist_kwargs={"fill": True})  # one dict for every group
    assert all(patch.get_fill() for patch in display.hist_)


# -------------------------------------------------------------------- bad input
@pytest.mark.parametrize("y, score, match", [
    ([-1, -2], [0.1, 0.2], "no row as in-distribution"),
    ([0, -1, -1], [0.1, 0.2], "3 labels and 2 scores"),
    ([0, -1], [0.1, np.nan], "1 NaN or infinite"),
    ([0, -1], [0.1, np.inf], "1 NaN or infinite"),
    ([0, np.inf], [0.1, 0.2], "infinity"),
])
def test_bad_input_for_the_distribution(y, score, match):
    with pytest.raises(ValueError, match=match):
        ScoreDistributionDisplay.from_predictions(y, score)


def test_bad_names_and_parameters(two_ood_sets):
    y, score = two_ood_sets
    with pytest.raises(ValueError, match="one name .* 2 OOD labels"):
        ScoreDistributionDisplay.from_predictions(y, score, ood_names="textures")
    with pytest.raises(ValueError, match="negative labels .* id_name"):
        ScoreDistributionDisplay.from_predictions(y, score, ood_names={1: "textures"})
    with pytest.raises(TypeError, match="ood_names must be"):
        ScoreDistributionDisplay.from_predictions(y, score, ood_names=["textures"])
    with pytest.raises(ValueError, match="list of 3 dicts"):
        ScoreDistributionDisplay.from_predictions(y, score, hist_kwargs=[{}])
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        ScoreDistributionDisplay.from_predictions(y, score, threshold=np.nan)
    with pytest.raises(ValueError, match="X has 80 rows but y has 79 labels"):
        ScoreDistributionDisplay.from_estimator(KNN(), score[:, None], y[1:])
    with pytest.raises(TypeError, match="has no score_samples"):
        ScoreDistributionDisplay.from_estimator(StandardScaler().fit(score[:, None]),
                                                score[:, None], y)


def test_bad_constructor_data():
    with pytest.raises(TypeError, match="one array of scores per group"):
        ScoreDistributionDisplay(scores=np.ones(3), group_names=["ID"]).plot()
    with pytest.raises(TypeError, match="one array of scores per group"):
        ScoreDistributionDisplay(scores=[1.0, 2.0], group_names=["ID"]).plot()
    with pytest.raises(ValueError, match="same, non-zero length"):
        ScoreDistributionDisplay(scores=[[1.0]], group_names=["ID", "OOD"]).plot()
    with pytest.raises(ValueError, match="'OOD' has no scores"):
        ScoreDistributionDisplay(scores=[[1.0], []], group_names=["ID", "OOD"]).plot()


# --------------------------------------------------------------------- ROC and PR
@pytest.mark.parametrize("positive", ["id", "ood"])
def test_roc_is_scikit_learns_display_with_our_auroc(two_ood_sets, positive):
    y, score = two_ood_sets
    display = plot_roc(y, score, positive=positive, name="Energy")
    assert isinstance(display, RocCurveDisplay)
    assert display.roc_auc == pytest.approx(auroc(y, score), abs=1e-12)
    assert display.pos_label == positive.upper()
    assert display.ax_.get_xlabel() == f"False Positive Rate (Positive label: {positive.upper()})"
    assert _legend(display.ax_) == [f"Energy (AUC = {auroc(y, score):0.2f})"]
    assert len(display.fpr) == len(np.unique(score)) + 1  # exact: every threshold kept


def test_roc_positive_class_orients_the_curve():
    # ID scores 3, 2, 1 and one OOD score 2.5: hand-computed step curves.
    y, score = [0, 0, 0, -1], [3.0, 2.0, 1.0, 2.5]
    id_pos = plot_roc(y, score, positive="id")
    # accept score >= 3, 2.5, 2, 1: (ID accepted, OOD accepted)
    np.testing.assert_allclose(id_pos.tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(id_pos.fpr, [0, 0, 1, 1, 1])
    ood_pos = plot_roc(y, score, positive="ood")
    # reject score <= 1, 2, 2.5, 3: (OOD detected, ID rejected)
    np.testing.assert_allclose(ood_pos.tpr, [0, 0, 0, 1, 1])
    np.testing.assert_allclose(ood_pos.fpr, [0, 1 / 3, 2 / 3, 2 / 3, 1])
    assert id_pos.roc_auc == pytest.approx(1 / 3) and auroc(y, score) == pytest.approx(1 / 3)
    assert ood_pos.roc_auc == pytest.approx(1 / 3)


@pytest.mark.parametrize("positive", ["id", "ood"])
def test_precision_recall_is_scikit_learns_display_with_our_aupr(two_ood_sets, positive):
    y, score = two_ood_sets
    display = plot_precision_recall(y, score, positive=positive)
    assert isinstance(display, PrecisionRecallDisplay)
    assert display.average_precision == pytest.approx(aupr(y, score, positive=positive),
                                                      abs=1e-12)
    assert display.pos_label == positive.upper()
    n_pos = np.sum((y >= 0) if positive == "id" else (y < 0))
    assert display.prevalence_pos_label == pytest.approx(n_pos / len(y))


def test_precision_recall_positive_class_matters():
    # AUPR-In and AUPR-Out differ here, so a wrong pos_label or sign would show.
    y, score = [0, 0, -1], [0.9, 0.1, 0.5]
    assert plot_precision_recall(y, score, positive="id").average_precision == pytest.approx(
        5 / 6)
    assert plot_precision_recall(y, score, positive="ood").average_precision == pytest.approx(
        1 / 2)


def test_curves_share_an_axes_and_forward_scikit_learn_options(two_ood_sets, tmp_path):
    y, score = two_ood_sets
    fig, ax = plt.subplots()
    for label, name in [(-1, "textures"), (-2, "SVHN")]:
        keep = (y >= 0) | (y == label)
        display = plot_roc(y[keep], score[keep], ax=ax, name=name)
        assert display.ax_ is ax
    plot_roc(y, score, ax=ax, name="all", plot_chance_level=True)
    assert len(ax.get_lines()) == 4 and _legend(ax)[-1].startswith("Chance level")
    fig.savefig(tmp_path / "roc.png")
    assert (tmp_path / "roc.png").stat().st_size > 1000


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=10),
    st.lists(st.integers(0, 5), min_size=1, max_size=10),
    st.sampled_from(["id", "ood"]),
)
def test_curves_agree_with_our_metrics_on_tied_scores(id_scores, ood_scores, positive):
    y = np.r_[np.zeros(len(id_scores)), -np.ones(len(ood_scores))]
    s = np.r_[id_scores, ood_scores].astype(float)
    fig, ax = plt.subplots()
    roc = plot_roc(y, s, positive=positive, ax=ax)
    pr = plot_precision_recall(y, s, positive=positive, ax=ax)
    plt.close(fig)
    assert roc.roc_auc == pytest.approx(auroc(y, s), abs=1e-12)
    assert pr.average_precision == pytest.approx(aupr(y, s, positive=positive), abs=1e-12)
    # the curve runs from (0, 0) to (1, 1) and never goes down
    assert (roc.fpr[0], roc.tpr[0], roc.fpr[-1], roc.tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(roc.fpr) >= 0) and np.all(np.diff(roc.tpr) >= 0)


@pytest.mark.parametrize("plot", [plot_roc, plot_precision_recall])
def test_curves_bad_input(plot):
    with pytest.raises(ValueError, match="both ID and OOD"):
        plot([0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN or infinity"):
        plot([0, -1], [0.1, np.nan])
    with pytest.raises(ValueError, match="one label per row"):
        plot([0, -1, -1], [0.1, 0.2])
    with pytest.raises(ValueError, match="positive must be 'id' or 'ood'"):
        plot([0, -1], [0.1, 0.2], positive="in")
    with pytest.raises(TypeError, match="do not pass pos_label"):
        plot([0, -1], [0.1, 0.2], pos_label="OOD")


def test_importing_the_package_does_not_import_matplotlib():
    code = "import sys, sklearn_ood; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
