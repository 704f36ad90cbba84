"""sklearn-ood: out-of-distribution detection for PyTorch models, the scikit-learn way."""

from .detectors.logits import Energy, MaxLogit, MaxSoftmax
from .extraction import BlockFeatureExtractor

__version__ = "0.1.0"

__all__ = [
    "BlockFeatureExtractor",
    "Energy",
    "MaxLogit",
    "MaxSoftmax",
]
