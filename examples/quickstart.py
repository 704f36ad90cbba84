"""
Quickstart: detect out-of-distribution digits with Energy
=========================================================

Train a small CNN on scikit-learn's 8x8 digits 0-7 (the in-distribution, ID),
then detect two kinds of out-of-distribution (OOD) images: the held-out digits
8 and 9 (near-OOD) and patches of scikit-learn's sample photos (far-OOD), all
from :func:`sklearn_ood.datasets.load_digits_ood` (no download).

The detector is an ordinary scikit-learn pipeline: a
:class:`~sklearn_ood.BlockFeatureExtractor` that reads the network's
penultimate features, then the :class:`~sklearn_ood.Energy` score computed with
the network's own final layer. Higher scores mean "more in-distribution"; a
negative label marks an OOD row. Runs in a few seconds on a CPU::

    python examples/quickstart.py --epochs 5
"""

# %%
# Imports
# -------
import argparse
import sys

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from sklearn_ood import BlockFeatureExtractor, Energy
from sklearn_ood.datasets import load_digits_ood
from sklearn_ood.metrics import auroc, auroc_scorer, fpr_at_tpr
from sklearn_ood.models import SmallCNN, make_classifier


# %%
# Train the classifier
# --------------------
# :func:`~sklearn_ood.models.make_classifier` returns a seeded skorch
# classifier; ``net.module_`` is the trained ``torch.nn.Module`` whose blocks
# the extractor hooks.
def train(data, epochs, seed):
    """A SmallCNN trained on the ID training images."""
    net = make_classifier(SmallCNN, max_epochs=epochs, random_state=seed,
                          batch_size=64, num_classes=len(data.classes), width=16)
    net.fit(data.X_train, data.y_train)
    print(f"test accuracy: {net.score(data.X_test, data.y_test):.3f}")
    return net


# %%
# Detect OOD images
# -----------------
# ``fit`` sees ID images only; for Energy it learns nothing but the threshold
# ``offset_`` (the 5th percentile of the training scores, so ``predict`` keeps
# 95 % of ID images). The metrics read a negative label as OOD.
def evaluate(detector, data):
    """Fit on ID training images; print AUROC and FPR@95%TPR per OOD set."""
    detector.fit(data.X_train)
    id_scores = detector.score_samples(data.X_test)
    for name, X_ood in data.ood.items():
        y = np.r_[np.zeros(len(id_scores)), -np.ones(len(X_ood))]  # -1 = OOD
        scores = np.r_[id_scores, detector.score_samples(X_ood)]
        print(f"{name:>14}: AUROC {auroc(y, scores):.3f}  "
              f"FPR@95%TPR {fpr_at_tpr(y, scores):.3f}")
    return detector


# %%
# Plot the scores
# ---------------
# :class:`~sklearn_ood.ScoreDistributionDisplay` draws one histogram per group
# (ID, then one per negative label) with the threshold ``offset_``;
# :func:`~sklearn_ood.plot_roc` draws the ROC curve of each OOD set against the
# ID test images (matplotlib, the ``plot`` extra).
def plot(detector, data):
    """Score histograms and ROC curves of the fitted detector."""
    import matplotlib.pyplot as plt

    from sklearn_ood import ScoreDistributionDisplay, plot_roc

    names = list(data.ood)
    X = np.concatenate([data.X_test, *data.ood.values()])
    y = np.concatenate([data.y_test] + [np.full(len(data.ood[n]), -1 - i)
                                        for i, n in enumerate(names)])
    fig, (ax_hist, ax_roc) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ScoreDistributionDisplay.from_estimator(
        detector, X, y, ood_names={-1 - i: n for i, n in enumerate(names)}, ax=ax_hist)
    ax_hist.set_title("Energy scores (higher = more ID)")
    score = detector.score_samples(X)
    for i, name in enumerate(names):
        rows = (y >= 0) | (y == -1 - i)  # the ID test images and one OOD set
        plot_roc(y[rows], score[rows], name=name, ax=ax_roc)
    ax_roc.set_title("ROC, ID positive")
    return fig


# %%
# Tune a hyper-parameter
# ----------------------
# A mixed ID/OOD set goes straight into ``GridSearchCV``; the scorers read the
# negative labels as OOD (use a validation set in practice, or tune without
# OOD data with :func:`~sklearn_ood.tune_on_pseudo_ood`).
def tune(detector, data, seed):
    """Grid search over the Energy temperature, scored by AUROC."""
    X_mix = np.concatenate([data.X_test, data.ood["photo_patches"]])
    y_mix = np.r_[data.y_test, np.full(len(data.ood["photo_patches"]), -1)]
    search = GridSearchCV(detector, {"energy__temperature": [0.5, 1.0, 2.0]},
                          scoring=auroc_scorer,
                          cv=StratifiedKFold(3, shuffle=True, random_state=seed))
    search.fit(X_mix, y_mix)
    print(f"grid search: best {search.best_params_}, CV AUROC {search.best_score_:.3f}")
    return search


def main(argv=None):
    """Train, detect, plot and tune; return 0 (the process exit status)."""
    parser = argparse.ArgumentParser(description="sklearn-ood quickstart")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plot", action="store_true", help="skip the matplotlib figure")
    args = parser.parse_args(argv)

    data = load_digits_ood(random_state=args.seed)
    net = train(data, args.epochs, args.seed)
    detector = make_pipeline(BlockFeatureExtractor(net.module_, "penultimate"),
                             Energy(head=net.module_.fc))
    evaluate(detector, data)
    if not args.no_plot:
        plot(detector, data)
    tune(detector, data, args.seed)
    return 0


# %%
# Run
# ---
if __name__ == "__main__":
    status = main()
    if status:  # a gallery build runs this block too: exit only on failure
        sys.exit(status)
