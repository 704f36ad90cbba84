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
from .gram import Gram
from .kl_matching import KLMatching
from .knn import KNN
from .line import LINe
from .logits import GEN, Energy, Entropy, MaxLogit, MaxSoftmax
from .lts import LTS
from .mahalanobis import Mahalanobis
from .multi_block_mahalanobis import MultiBlockMahalanobis
from .nap import NAP
from .nci import NCI
from .neco import NECO
from .negative_aware_norm import NegativeAwareNorm
from .nnguide import NNGuide
from .openmax import OpenMax
from .rankfeat import RankFeat
from .react import ReAct
from .relative_mahalanobis import RelativeMahalanobis
from .scale import SCALE
from .she import SHE
from .vim import ViM
from .vra import VRA

__all__ = [
    "ASH",
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
    "KLMatching",
    "KNN",
    "LINe",
    "LTS",
    "Mahalanobis",
    "MaxLogit",
    "MaxSoftmax",
    "MultiBlockMahalanobis",
    "NAP",
    "NCI",
    "NECO",
    "NegativeAwareNorm",
    "NNGuide",
    "OpenMax",
    "RankFeat",
    "ReAct",
    "RelativeMahalanobis",
    "SCALE",
    "SHE",
    "ViM",
    "VRA",
]
