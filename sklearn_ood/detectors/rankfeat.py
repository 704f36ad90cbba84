"""RankFeat: remove the rank-1 part of the feature map, pool, then energy.

Song, Sebe & Wang, "RankFeat: Rank-1 Feature Removal for Out-of-distribution
Detection", NeurIPS 2022, https://arxiv.org/abs/2209.08590.

It reads the last block's feature map ``F`` of each sample (4-D ``X`` of
shape ``(N, C, H, W)``), reshaped to ``X_i`` of shape ``(C, H*W)``; removes
``sigma_1 u_1 v_1^T`` (the top singular triplet, exact SVD); averages the
result over the positions and scores the head's logits with the energy
``T * logsumexp(z / T)``, ``T = 1``. Higher means more in-distribution.

This is the paper's single-block variant. The official default fuses it with
a second branch (rank-1 removed from block 3's output, then block 4 run
again): that branch needs the model, not its cached features, and is not
here. The head consumes the pooled result directly (a torchvision-style
``avgpool`` + ``fc``); a network with more layers between the map and the fc
(BiT's GroupNorm + ReLU) is not reproduced.
"""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import BaseDetector
from .._tags import DetectorTags
from ._features import in_precision, one_blas_thread
from ._head import HeadMixin
from .logits import energy


def batched_svd(M):
    """``np.linalg.svd(M, full_matrices=False)`` of a stack of small matrices, on one BLAS thread.

    NumPy runs one LAPACK call per matrix; for matrices this small, more
    BLAS threads only add synchronisation (measured: 13x the CPU time with two
    threads, 1,000 float32 64 x 64 matrices).
    """
    with one_blas_thread():
        return np.linalg.svd(M, full_matrices=False)


def remove_rank1(maps):
    """``X - sigma_1 u_1 v_1^T`` for each sample's ``(C, H*W)`` matrix; shape kept.

    Examples
    --------
    >>> import numpy as np
    >>> F = np.array([[[[3.0, 0.0]], [[0.0, 1.0]]]])  # C = 2, H*W = 2: diag(3, 1)
    >>> remove_rank1(F)[0, :, 0, :]
    array([[0., 0.],
           [0., 1.]])
    """
    F = in_precision(maps)  # float32 maps: the SVD in float32
    n, c = F.shape[:2]
    M = F.reshape(n, c, -1)
    u, s, vt = batched_svd(M)
    rank1 = s[:, 0, None, None] * u[:, :, :1] @ vt[:, :1, :]
    return (M - rank1).reshape(F.shape)


def rankfeat_pooled(maps):
    """The rank-1-removed maps averaged over positions: ``(N, C)``.

    Examples
    --------
    >>> import numpy as np
    >>> rankfeat_pooled(np.array([[[[3.0, 0.0]], [[0.0, 1.0]]]]))
    array([[0. , 0.5]])
    """
    F = in_precision(maps)
    n, c = F.shape[:2]
    M = F.reshape(n, c, -1)
    # The mean over positions of M - s u v^T is mean(M) - s u mean(v): no rank-1 map.
    u, s, vt = batched_svd(M)
    top = (s[:, 0] * vt[:, 0, :].mean(axis=1))[:, None] * u[:, :, 0]
    return M.mean(axis=2) - top


class RankFeat(HeadMixin, BaseDetector):
    """RankFeat: energy of the head on the pooled, rank-1-removed feature map.

    Score: ``T * logsumexp(W GAP(F - sigma_1 u_1 v_1^T) / T + b / T)``;
    higher means more ID. Nothing is fitted besides the head and ``offset_``.

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer, taking the ``C`` pooled channels (required).
    temperature : float, default=1.0
        Energy temperature ``T`` (1 in the official code).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray
        The head as arrays.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of channels ``C`` seen in ``fit``.
    input_ndim_ : int
        4: the dimensions of the input seen in ``fit``.

    See Also
    --------
    sklearn_ood.detectors.react.ReAct, sklearn_ood.detectors.ash.ASH

    References
    ----------
    Song, Sebe & Wang, "RankFeat: Rank-1 Feature Removal for
    Out-of-distribution Detection", NeurIPS 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import RankFeat
    >>> F = np.array([[[[3.0, 0.0]], [[0.0, 1.0]]]])
    >>> det = RankFeat((np.eye(2), np.zeros(2))).fit(F)
    >>> det.score_samples(F).round(4)  # logsumexp([0, 0.5])
    array([0.9741])
    """

    _detector_tags = DetectorTags(
        input="maps", ndim=(4,), head="required",
        paper="Song, Sebe & Wang, NeurIPS 2022")

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, head=None, *, temperature=1.0, contamination=0.05):
        self.head = head
        self.temperature = temperature
        self.contamination = contamination

    def _validate_input(self, X, *, reset):
        X = super()._validate_input(X, reset=reset)
        if X.ndim != 4:
            raise ValueError(
                "RankFeat needs 4-D feature maps (n_samples, channels, height, width): "
                f"got 2-D features of shape {X.shape}. Pass the last block's map before "
                "pooling, e.g. BlockFeatureExtractor(model, 'layer4', reduce=None), or "
                "flattened maps reshaped to (N, C, H*W, 1)."
            )
        return X

    def _fit(self, X, y):
        self._fit_head(X)

    def _score(self, X):
        return energy(self._logits(rankfeat_pooled(X)), self.temperature)
