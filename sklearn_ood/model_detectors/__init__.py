"""Detectors that take images and run the model themselves.

They hold the model as a parameter (like :class:`~sklearn_ood.BlockFeatureExtractor`),
so they are the last step of a pipeline on images rather than on cached features.
"""

from ._base import ModelDetector
from .adascale import AdaSCALE
from .block_selection import BlockSelection, candidate_blocks
from .input_preprocessed_mahalanobis import InputPreprocessedMahalanobis
from .mc_dropout import MCDropout
from .odin import ODIN

__all__ = [
    "AdaSCALE",
    "BlockSelection",
    "InputPreprocessedMahalanobis",
    "MCDropout",
    "ModelDetector",
    "ODIN",
    "candidate_blocks",
]
