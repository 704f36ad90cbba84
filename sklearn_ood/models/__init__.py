"""Torch models with named, hookable blocks and reproducible skorch training."""

from .cnn import SmallCNN
from .resnet import L2Normalize, ResNet, resnet18
from .classifier import NeuralCollapseTracker, SeededNeuralNetClassifier, make_classifier

__all__ = [
    "L2Normalize",
    "NeuralCollapseTracker",
    "ResNet",
    "SeededNeuralNetClassifier",
    "SmallCNN",
    "make_classifier",
    "resnet18",
]
