"""Feature distance to the decision boundaries (fDBD), over the distance to the mean.

Liu & Qin, "Fast Decision Boundary based Out-of-Distribution Detector",
ICML 2024, https://arxiv.org/abs/2312.11536.

The pure function :func:`fdbd_score` holds the method; :class:`FDBD` stores
the training mean and the head.
"""

import numpy as np
from sklearn.utils._param_validation import StrOptions

from .._base import AccumulatingDetector, BaseDetector
from .._tags import DetectorTags
from ._features import in_precision
from ._head import HeadMixin, linear_logits

_TINY = np.finfo(np.float64).tiny


def fdbd_score(X, coef, intercept, normalizer):
    """``sum_{c != yhat} |z_yhat - z_c| / ||w_yhat - w_c||``, divided by ``normalizer``.

    A pair of identical weight rows (``||w_yhat - w_c|| = 0``) contributes 0,
    as the diagonal does.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    coef : ndarray of shape (n_classes, n_features)
    intercept : ndarray of shape (n_classes,)
    normalizer : ndarray of shape (n_samples,)
        ``||h - mu_train||`` (the paper) or ``||h||``; floored at the smallest
        positive float.

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> W, b = np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2)
    >>> fdbd_score(np.array([[3.0, 1.0]]), W, b, np.array([2.0]))  # 2 / sqrt2 / 2
    array([0.70710678])
    """
    logits = linear_logits(X, coef, intercept).astype(np.float64, copy=False)
    pred = np.argmax(logits, axis=1)
    # ||w_i - w_j||^2 from the Gram matrix: no (K, K, D) temporary
    sq = np.einsum("ij,ij->i", coef, coef)
    diff_norms = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * coef @ coef.T, 0.0))
    np.fill_diagonal(diff_norms, 0.0)
    gaps = np.abs(logits[np.arange(len(X)), pred][:, None] - logits)
    norms = diff_norms[pred]
    dist = np.divide(gaps, norms, out=np.zeros_like(gaps), where=norms > 0)
    return dist.sum(axis=1) / np.maximum(normalizer, _TINY)


class FDBD(HeadMixin, AccumulatingDetector):
    """Feature distance to the decision boundaries (fDBD), over the distance to the mean.

    For the affine head, the distance of ``h`` to the boundary between the
    predicted class ``yhat`` and class ``c`` is ``|z_yhat - z_c| / ||w_yhat -
    w_c||`` (bias in ``z``). Score (FDBD ``run_imagenet.py``): the sum of
    these distances over ``c != yhat``, divided by ``||h - mu||`` with ``mu``
    the mean training feature (no labels); float32 features are scored in
    float32 (the per-class gaps in float64), others in float64. Higher means more ID.
    The paper speaks of an average; the code sums, and pytorch-ood averages
    (``1/(K-1)``): the same ranking. We follow the code (the sum).

    ``mu`` is accumulated in float64 by chunks, so ``partial_fit`` on the
    chunks of ``X``, in any order, gives it up to rounding (see
    ``partial_fit``).

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    normalizer : {"distance", "norm"}, default="distance"
        Divide by ``||h - mu||`` (the paper) or by ``||h||`` (OpenOOD's
        alternative).
    contamination : float, default=0.05
        Fraction of training rows below the threshold ``offset_``.

    Attributes
    ----------
    coef_, intercept_ : ndarray
        The head.
    mean_ : ndarray of shape (n_features,)
        Mean training feature ``mu``.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; defined only when ``X`` has
        string column names (a pandas DataFrame).
    n_samples_seen_ : int
        Number of training rows seen by ``fit`` and the ``partial_fit``
        calls since.
    classes_seen_, statistics_, statistics_params_, reservoir_
        What ``partial_fit`` continues from (as documented in
        :class:`~sklearn_ood._base.AccumulatingDetector`): the sorted class
        labels seen (or ``None``), the accumulated statistics, the parameters
        they depend on, and the reservoir of training rows that sets ``offset_``.

    References
    ----------
    Liu & Qin, "Fast Decision Boundary based Out-of-Distribution Detector",
    ICML 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import FDBD
    >>> det = FDBD((np.eye(2), np.zeros(2))).fit(np.array([[1.0, 1.0], [-1.0, -1.0]]))
    >>> det.score_samples(np.array([[3.0, 0.0]])).round(4)  # 3 / sqrt2 / 3
    array([0.7071])
    """

    # Tuning: both normalisers (OpenOOD's sweep).
    _detector_tags = DetectorTags(
        input="features", head="required",
        grid={"normalizer": ["distance", "norm"]}, paper="Liu & Qin, ICML 2024")

    _scatter = False  # the mean only
    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "normalizer": [StrOptions({"distance", "norm"})],
    }

    def __init__(self, head=None, *, normalizer="distance", contamination=0.05):
        self.head = head
        self.normalizer = normalizer
        self.contamination = contamination

    def _fit_statistics(self, classes, counts, means, scatter, sample, *, partial):
        self._fit_head(sample)
        self.mean_ = means[0]

    def _score(self, X):
        X = in_precision(X)  # float32 features: logits and distances in float32
        centre = self.mean_.astype(X.dtype) if self.normalizer == "distance" else 0.0
        distance = np.linalg.norm(X - centre, axis=1).astype(np.float64)
        return fdbd_score(X, self.coef_, self.intercept_, distance)
