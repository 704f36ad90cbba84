"""Detectors: arrays in, scores out (higher means more in-distribution).

One method per module, each naming its paper, holding the pure score
functions and the estimator; the small logit scores share :mod:`.logits`.
"""

from .ash import ASH
from .dice import DICE
from .feature_norm import FeatureNorm
from .gaussian_density import GaussianDensity
from .gram import Gram
from .kl_matching import KLMatching
from .knn import KNN
from .line import LINe
from .logits import GEN, Energy, Entropy, MaxLogit, MaxSoftmax
from .mahalanobis import Mahalanobis
from .multi_block_mahalanobis import MultiBlockMahalanobis
from .nap import NAP
from .negative_aware_norm import NegativeAwareNorm
from .rankfeat import RankFeat
from .react import ReAct
from .scale import SCALE
from .vim import ViM
from .vra import VRA

__all__ = [
    "ASH",
    "DICE",
    "Energy",
    "Entropy",
    "FeatureNorm",
    "GEN",
    "GaussianDensity",
    "Gram",
    "KLMatching",
    "KNN",
    "LINe",
    "Mahalanobis",
    "MaxLogit",
    "MaxSoftmax",
    "MultiBlockMahalanobis",
    "NAP",
    "NegativeAwareNorm",
    "RankFeat",
    "ReAct",
    "SCALE",
    "VRA",
    "ViM",
]
