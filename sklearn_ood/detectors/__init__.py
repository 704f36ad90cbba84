"""Detectors: arrays in, scores out (higher means more in-distribution).

One method per module, each naming its paper, holding the pure score
functions and the estimator; the small logit scores share :mod:`.logits`.
"""

from .ash import ASH
from .dice import DICE
from .fdbd import FDBD
from .feature_norm import FeatureNorm
from .gaussian_density import GaussianDensity
from .gaussian_mixture import GaussianMixture
from .gradnorm import GradNorm
from .knn import KNN
from .line import LINe
from .logits import Energy, MaxLogit, MaxSoftmax
from .mahalanobis import Mahalanobis
from .nap import NAP
from .nci import NCI
from .neco import NECO
from .negative_aware_norm import NegativeAwareNorm
from .nnguide import NNGuide
from .openmax import OpenMax
from .react import ReAct
from .relative_mahalanobis import RelativeMahalanobis
from .she import SHE
from .vim import ViM

__all__ = [
    "ASH",
    "DICE",
    "Energy",
    "FDBD",
    "FeatureNorm",
    "GaussianDensity",
    "GaussianMixture",
    "GradNorm",
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
    "ReAct",
    "RelativeMahalanobis",
    "SHE",
    "ViM",
]
