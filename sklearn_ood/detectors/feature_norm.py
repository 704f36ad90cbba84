"""FeatureNorm: the mean per-channel norm of a block's rectified feature map.

Yu, Shin, Lee, Jun & Lee, "Block Selection Method for Using Feature Norm in
Out-of-distribution Detection", CVPR 2023, https://arxiv.org/abs/2212.02295.

The pure function :func:`feature_norm` holds the score; :class:`FeatureNorm`
fits nothing but the threshold. The paper's choice of the block by the jigsaw
NormRatio runs the model, so it lives in
:class:`~sklearn_ood.model_detectors.BlockSelection`.
"""

import numpy as np

from .._base import BaseDetector
from .._tags import DetectorTags


def _as_maps(X, name="maps"):
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(
            f"{name} must be (n_samples, channels[, height, width]); got shape {X.shape}."
        )
    return X.reshape(X.shape[0], X.shape[1], -1)


def feature_norm(maps):
    """FeatureNorm of each sample: mean over channels of ``||ReLU(map_c)||_2``.

    ``maps`` has shape ``(n, C, H, W)`` (any number of spatial dimensions,
    flattened per channel). 2-D input ``(n, C)`` is read as ``H = W = 1``, so
    each channel's norm is ``ReLU(x_c)``: this is what makes the output of
    ``BlockFeatureExtractor(..., reduce="norm")`` (the per-channel norms)
    give the same score as the maps themselves.

    Parameters
    ----------
    maps : array-like of shape (n_samples, C, ...) or (n_samples, C)

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> maps = np.array([[[[3.0, -1.0], [0.0, 4.0]], [[-2.0, 0.0], [0.0, 0.0]]]])
    >>> feature_norm(maps)  # channel norms 5 and 0
    array([2.5])
    >>> feature_norm(np.array([[5.0, -3.0]]))  # already per-channel values
    array([2.5])
    """
    flat = np.maximum(_as_maps(maps), 0)  # a new array: safe to divide in place
    flat = flat.astype(np.promote_types(flat.dtype, np.float32), copy=False)
    # Scale each channel by its maximum so that the squares cannot overflow
    # (an all-zero channel, peak 0, stays zero).
    peak = flat.max(axis=2, keepdims=True)
    np.divide(flat, peak, out=flat, where=peak > 0)
    norms = peak[..., 0] * np.sqrt(np.square(flat).sum(axis=2, dtype=np.float64))
    return norms.mean(axis=1)


class FeatureNorm(BaseDetector):
    """FeatureNorm of a block's feature maps (Yu et al., CVPR 2023).

    Score: ``mean_c ||ReLU(F_c)||_2`` -- the mean over channels of the
    per-channel spatial L2 norm of the rectified block output ``F``
    (``(N, C, H, W)``). Not the Frobenius norm of ``F`` and not the norm of
    the pooled vector. Higher means more in-distribution, as in the paper.
    Nothing is fitted but the threshold; to choose the block from data, see
    :class:`~sklearn_ood.model_detectors.BlockSelection`.

    2-D input ``(N, C)`` is read as maps with ``H = W = 1``: the score is
    ``mean_c ReLU(x_c)``. This makes the per-batch path exact:
    ``BlockFeatureExtractor(net, block, reduce="norm")`` outputs the
    per-channel norms ``||ReLU(F_c)||_2``, computed batch by batch, and

        ``make_pipeline(BlockFeatureExtractor(net, "layer3", reduce="norm"), FeatureNorm())``

    gives the same scores as ``FeatureNorm`` on the full ``layer3`` maps
    without ever holding the maps. This is the recommended way to use it.

    Parameters
    ----------
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Channels ``C``.
    input_ndim_ : int
        2 or 4, the input dimensionality seen in ``fit`` (enforced later).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).

    See Also
    --------
    feature_norm : the scoring function.
    sklearn_ood.model_detectors.BlockSelection : FeatureNorm with the block
        chosen by the jigsaw NormRatio.

    References
    ----------
    Yu, Shin, Lee, Jun & Lee, "Block Selection Method for Using Feature Norm
    in Out-of-distribution Detection", CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import FeatureNorm
    >>> maps = np.array([[[[3.0, -1.0], [0.0, 4.0]], [[-2.0, 0.0], [0.0, 0.0]]]])
    >>> FeatureNorm().fit(maps).score_samples(maps)
    array([2.5])
    >>> norms = np.array([[5.0, 0.0]])  # what reduce="norm" yields for these maps
    >>> FeatureNorm().fit(norms).score_samples(norms)
    array([2.5])
    """

    _detector_tags = DetectorTags(
        input="maps", ndim=(2, 4), paper="Yu et al., CVPR 2023")


    def __init__(self, *, contamination=0.05):
        self.contamination = contamination

    def _fit(self, X, y):
        pass

    def _score(self, X):
        return feature_norm(X)
