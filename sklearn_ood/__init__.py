"""sklearn-ood: out-of-distribution detection for PyTorch models, the scikit-learn way.

Every detector follows scikit-learn's outlier-detector API: ``fit`` on
in-distribution data, then ``score_samples`` (higher means more
in-distribution), ``decision_function`` and ``predict`` (+1 ID, -1 OOD).
"""

from .model_detectors import BlockSelection
from .detectors import (
    ASH,
    DICE,
    FDBD,
    KNN,
    NAP,
    NCI,
    NECO,
    SHE,
    Energy,
    FeatureNorm,
    GaussianDensity,
    GaussianMixture,
    GradNorm,
    LINe,
    Mahalanobis,
    MaxLogit,
    MaxSoftmax,
    NegativeAwareNorm,
    NNGuide,
    OpenMax,
    ReAct,
    RelativeMahalanobis,
    ViM,
)
from .diagnostics import neural_collapse
from .display import ScoreDistributionDisplay, plot_precision_recall, plot_roc
from .extraction import BlockFeatureExtractor
from .pseudo_ood import Jigsaw, jigsaw, make_pseudo_ood
from .tuning import PseudoOODSplit, tune_on_pseudo_ood

__version__ = "0.1.0"

__all__ = [
    "ASH",
    "BlockFeatureExtractor",
    "BlockSelection",
    "DICE",
    "Energy",
    "FDBD",
    "FeatureNorm",
    "GaussianDensity",
    "GaussianMixture",
    "GradNorm",
    "Jigsaw",
    "KNN",
    "LINe",
    "Mahalanobis",
    "MaxLogit",
    "MaxSoftmax",
    "NAP",
    "NCI",
    "NECO",
    "NNGuide",
    "NegativeAwareNorm",
    "OpenMax",
    "PseudoOODSplit",
    "ReAct",
    "RelativeMahalanobis",
    "SHE",
    "ScoreDistributionDisplay",
    "ViM",
    "jigsaw",
    "make_pseudo_ood",
    "neural_collapse",
    "plot_precision_recall",
    "plot_roc",
    "tune_on_pseudo_ood",
]
