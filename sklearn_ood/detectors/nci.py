"""Neural-collapse inspired (NCI): alignment with the predicted class weight plus an L1 norm.

Liu & Qin, "Detecting Out-of-Distribution Through the Lens of Neural
Collapse", CVPR 2025, https://arxiv.org/abs/2311.01479.

The pure function :func:`nci_score` holds the method; :class:`NCI` stores the
training mean and the head.
"""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._base import AccumulatingDetector, BaseDetector
from .._tags import DetectorTags
from ._features import in_precision
from ._head import HeadMixin, linear_logits

_TINY = np.finfo(np.float64).tiny


def nci_score(X, coef, intercept, mean, alpha):
    """``w_yhat^T (h - mu) / ||h - mu|| + alpha ||h||_1``.

    ``||h - mu||`` is floored at the smallest positive float.

    Examples
    --------
    >>> import numpy as np
    >>> nci_score(np.array([[3.0, -4.0]]), np.eye(2), np.zeros(2), np.zeros(2), 0.1)
    array([1.3])
    """
    X = in_precision(X)  # float32 features: every product in float32
    coef = coef.astype(X.dtype, copy=False)
    pred = np.argmax(linear_logits(X, coef, intercept), axis=1)
    centred = X - np.asarray(mean, dtype=X.dtype)
    dist = np.maximum(np.linalg.norm(centred, axis=1).astype(np.float64), _TINY)
    alignment = np.einsum("ij,ij->i", centred, coef[pred]).astype(np.float64)
    return alignment / dist + alpha * np.abs(X).sum(axis=1, dtype=np.float64)


class NCI(HeadMixin, AccumulatingDetector):
    """Neural-collapse inspired (NCI): alignment with the predicted class weight plus an L1 norm.

    Score (NCI ``nci_postprocessor.py``, identical in OpenOOD):
    ``w_yhat^T (h - mu) / ||h - mu||_2 + alpha ||h||_1`` with ``mu`` the mean
    training feature (no labels) and ``yhat`` the head's prediction, in float32 for
    float32 features, else in float64. As the code, the first term ("pScore")
    is not divided by ``||w_yhat||`` (equinorm weights under neural collapse).
    Higher means more ID.

    ``mu`` is accumulated in float64 by chunks, so ``partial_fit`` on the
    chunks of ``X``, in any order, gives it up to rounding (see
    ``partial_fit``).

    Parameters
    ----------
    head : torch.nn.Linear or (coef, intercept)
        The final linear layer (required).
    alpha : float >= 0, default=1e-4
        Weight of the L1 feature norm (the official and OpenOOD default;
        pytorch-ood defaults to 0).
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
    Liu & Qin, "Detecting Out-of-Distribution Through the Lens of Neural
    Collapse", CVPR 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import NCI
    >>> det = NCI((np.eye(2), np.zeros(2)), alpha=0.0).fit(np.array([[1.0, 1.0], [-1.0, -1.0]]))
    >>> det.score_samples(np.array([[3.0, 4.0]]))  # w_1 = e_2, cosine 4/5
    array([0.8])
    """

    # Tuning: ``alpha`` of OpenOOD's sweep and 0 (pScore alone, pytorch-ood's default).
    _detector_tags = DetectorTags(
        input="features", head="required",
        grid={"alpha": [0.0, 1e-4, 1e-3, 1e-2, 0.1]}, paper="Liu & Qin, CVPR 2025")

    _scatter = False  # the mean only
    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "head": "no_validation",
        "alpha": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, head=None, *, alpha=1e-4, contamination=0.05):
        self.head = head
        self.alpha = alpha
        self.contamination = contamination

    def _fit_statistics(self, classes, counts, means, scatter, sample, *, partial):
        self._fit_head(sample)
        self.mean_ = means[0]

    def _score(self, X):
        return nci_score(X, self.coef_, self.intercept_, self.mean_,
                         self.alpha)
