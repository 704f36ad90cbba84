"""Quickstart: train a small CNN, then detect out-of-distribution images with Energy.

In-distribution (ID): scikit-learn's 8x8 digits 0-7. OOD: digits 8-9 and patches
of photos (:func:`sklearn_ood.datasets.load_digits_ood`, no download). The
detector is an ordinary scikit-learn pipeline: a feature extractor that reads
the network's penultimate features, then the Energy score computed with the
network's own final layer. Higher scores mean "more in-distribution"; a
negative label marks an OOD row. Runs in a few seconds on a CPU.

    python examples/quickstart.py --epochs 5
"""

import argparse
import sys

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from sklearn_ood import BlockFeatureExtractor, Energy
from sklearn_ood.datasets import load_digits_ood
from sklearn_ood.metrics import auroc, auroc_scorer, fpr_at_tpr
from sklearn_ood.models import SmallCNN, make_classifier


def main(argv=None):
    parser = argparse.ArgumentParser(description="sklearn-ood quickstart")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_digits_ood(random_state=args.seed)
    net = make_classifier(SmallCNN, max_epochs=args.epochs, random_state=args.seed,
                          batch_size=64, num_classes=len(data.classes), width=16)
    net.fit(data.X_train, data.y_train)
    print(f"test accuracy: {net.score(data.X_test, data.y_test):.3f}")

    detector = make_pipeline(BlockFeatureExtractor(net.module_, "penultimate"),
                             Energy(head=net.module_.fc))
    detector.fit(data.X_train)  # learns only the threshold offset_ here
    id_scores = detector.score_samples(data.X_test)
    for name, X_ood in data.ood.items():
        y = np.r_[np.zeros(len(id_scores)), -np.ones(len(X_ood))]  # -1 = OOD
        scores = np.r_[id_scores, detector.score_samples(X_ood)]
        print(f"{name:>14}: AUROC {auroc(y, scores):.3f}  "
              f"FPR@95%TPR {fpr_at_tpr(y, scores):.3f}")

    # Tune a hyper-parameter on a mixed ID/OOD set (use a validation set in practice).
    X_mix = np.concatenate([data.X_test, data.ood["photo_patches"]])
    y_mix = np.r_[data.y_test, np.full(len(data.ood["photo_patches"]), -1)]
    search = GridSearchCV(detector, {"energy__temperature": [0.5, 1.0, 2.0]},
                          scoring=auroc_scorer,
                          cv=StratifiedKFold(3, shuffle=True, random_state=args.seed))
    search.fit(X_mix, y_mix)
    print(f"grid search: best {search.best_params_}, CV AUROC {search.best_score_:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
