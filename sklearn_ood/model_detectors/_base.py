"""The contract of detectors that hold a model and take images."""

from numbers import Integral

import torch
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from ..extraction import as_input_tensor


class ModelDetector(BaseDetector):
    """Base class of detectors that run a PyTorch model on images.

    The same contract as :class:`~sklearn_ood._base.BaseDetector` (``_fit``,
    ``_score``, the threshold ``offset_``, atomic ``fit``, the label
    convention), with images ``(n_samples, channels, height, width)`` as
    input, as an array or a tensor, instead of features. A subclass stores
    ``model``, ``batch_size`` and ``device`` as parameters and runs the model
    either with :func:`~sklearn_ood.extraction.iter_block_batches` (forward
    passes only) or inside :func:`~sklearn_ood.model_detectors._model_state.model_run`
    (forward and input-gradient passes, batches from ``iter_input_batches``),
    both of which leave the model as it was: hooks removed, train/eval flags,
    ``requires_grad`` and ``.grad`` restored, also when a pass raises.

    Attributes
    ----------
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Channels of the images seen in ``fit``.
    """

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "model": [torch.nn.Module],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
    }

    def _validate_input(self, X, *, reset):
        X = as_input_tensor(X)
        if X.ndim != 4:
            raise ValueError(
                f"{type(self).__name__} expects images of shape (n_samples, channels, "
                f"height, width); got shape {tuple(X.shape)}. Add the channel axis for "
                "grey images, e.g. X[:, None]."
            )
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} channels, but {type(self).__name__} was fitted on "
                f"images with {self.n_features_in_} channels."
            )
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
