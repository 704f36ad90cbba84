"""sklearn-ood: out-of-distribution detection for PyTorch models, the scikit-learn way.

Every detector follows scikit-learn's outlier-detector API: ``fit`` on
in-distribution data, then ``score_samples`` (higher means more
in-distribution), ``decision_function`` and ``predict`` (+1 ID, -1 OOD).
"""

from .model_detectors import ODIN, AdaSCALE, BlockSelection, InputPreprocessedMahalanobis, MCDropout
from .detectors import (
    ASH,
    DICE,
    Energy,
    Entropy,
    FDBD,
    FeatureNorm,
    GaussianDensity,
    GaussianMixture,
    GEN,
    GradNorm,
    Gram,
    KLMatching,
    KNN,
    LINe,
    Mahalanobis,
    MaxLogit,
    MaxSoftmax,
    MultiBlockMahalanobis,
    NAP,
    NCI,
    NECO,
    NegativeAwareNorm,
    NNGuide,
    OpenMax,
    RankFeat,
    ReAct,
    RelativeMahalanobis,
    SCALE,
    SHE,
    ViM,
    VRA,
)
from .conformal import ConformalDetector
from .diagnostics import neural_collapse
from .display import ScoreDistributionDisplay, plot_precision_recall, plot_roc
from .extraction import BlockFeatureExtractor
from .pseudo_ood import Jigsaw, jigsaw, make_pseudo_ood
from .tuning import PseudoOODSplit, tune_on_pseudo_ood

__version__ = "0.1.0"

__all__ = [
    "AdaSCALE",
    "ASH",
    "BlockFeatureExtractor",
    "BlockSelection",
    "ConformalDetector",
    "DICE",
    "Energy",
    "Entropy",
    "FDBD",
    "FeatureNorm",
    "GaussianDensity",
    "GaussianMixture",
    "GEN",
    "GradNorm",
    "Gram",
    "InputPreprocessedMahalanobis",
    "Jigsaw",
    "jigsaw",
    "KLMatching",
    "KNN",
    "LINe",
    "Mahalanobis",
    "make_pseudo_ood",
    "MaxLogit",
    "MaxSoftmax",
    "MCDropout",
    "MultiBlockMahalanobis",
    "NAP",
    "NCI",
    "NECO",
    "NegativeAwareNorm",
    "neural_collapse",
    "NNGuide",
    "ODIN",
    "OpenMax",
    "plot_precision_recall",
    "plot_roc",
    "PseudoOODSplit",
    "RankFeat",
    "ReAct",
    "RelativeMahalanobis",
    "SCALE",
    "ScoreDistributionDisplay",
    "SHE",
    "tune_on_pseudo_ood",
    "ViM",
    "VRA",
]
